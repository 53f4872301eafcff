/// A small parser for the option styles that sendmail-compatible commands must accept: short flags
/// (`-t`), short options with the value attached or separate (`-ffrom@example.test`, `-f from@…`),
/// sendmail's two-letter `-oi`, long options (`--host mail.example.test`, `--host=…`) and `--` to end
/// the options.
struct ArgumentParser {
    struct Option {
        /// Every spelling, with dashes: `["-f", "-r"]` or `["--host"]`.
        let names: [String]
        let takesValue: Bool
        /// The name results are stored under.
        var key: String { names[0] }
    }

    struct Result {
        private(set) var values: [String: [String]] = [:]
        private(set) var positionals: [String] = []

        func flag(_ key: String) -> Bool { values[key] != nil }
        func value(_ key: String) -> String? { values[key]?.last }

        /// Returns these results with `defaults` (option keys and values, `""` for a flag) added
        /// for every option that was not given.
        func addingDefaults(_ defaults: [String: String]) -> Result {
            var result = self
            for (key, value) in defaults where result.values[key] == nil {
                result.values[key] = [value]
            }
            return result
        }

        /// Returns these results with other positional arguments.
        func replacingPositionals(_ positionals: [String]) -> Result {
            var result = self
            result.positionals = positionals
            return result
        }

        fileprivate mutating func add(_ key: String, _ value: String) {
            values[key, default: []].append(value)
        }

        fileprivate mutating func addPositional(_ value: String) {
            positionals.append(value)
        }
    }

    let command: String
    let options: [Option]

    func parse(_ arguments: [String]) throws(UsageError) -> Result {
        var result = Result()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                arguments[index...].forEach { result.addPositional($0) }
                break
            }
            guard argument.hasPrefix("-"), argument != "-" else {
                result.addPositional(argument)
                continue
            }
            let (option, attached) = try match(argument)
            guard option.takesValue else {
                if attached != nil {
                    throw UsageError("The option \(option.key) takes no value, but got \"\(argument)\".", command: command)
                }
                result.add(option.key, "")
                continue
            }
            if let attached {
                result.add(option.key, attached)
            } else if index < arguments.count {
                result.add(option.key, arguments[index])
                index += 1
            } else {
                throw UsageError("The option \(argument) needs a value.", command: command)
            }
        }
        return result
    }

    /// Finds the option an argument names, with the value attached to it if any.
    private func match(_ argument: String) throws(UsageError) -> (Option, String?) {
        if argument.hasPrefix("--") {
            // "--host=" attaches an empty value; it must not take the next argument as the value.
            let equals = argument.firstIndex(of: "=")
            let name = String(argument[..<(equals ?? argument.endIndex)])
            let attached = equals.map { String(argument[argument.index(after: $0)...]) }
            if let option = options.first(where: { $0.names.contains(name) }) {
                return (option, attached)
            }
            throw UsageError("Unknown option \(UsageError.printable(name)).", command: command)
        }
        if let option = options.first(where: { $0.names.contains(argument) }) {
            return (option, nil)
        }
        // A short option with its value attached, such as -ffrom@example.test.
        for option in options where option.takesValue {
            for name in option.names where name.count == 2 && argument.hasPrefix(name) {
                return (option, String(argument.dropFirst(2)))
            }
        }
        throw UsageError("Unknown option \(UsageError.printable(argument)).", command: command)
    }
}

/// A command line that cannot be carried out, with what to do about it. Exits with EX_USAGE.
struct UsageError: Error, CustomStringConvertible {
    let message: String
    let command: String

    init(_ message: String, command: String) {
        self.message = message
        self.command = command
    }

    var description: String {
        let separator = message.hasSuffix("\n") ? "" : " "
        return "\(message)\(separator)Run 'outbox \(command) --help' for the options."
    }

    /// Returns a command-line value with control characters escaped, for quoting it in a message.
    static func printable(_ value: String) -> String {
        value.unicodeScalars
            .map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? $0.escaped(asASCII: true) : String($0) }
            .joined()
    }
}
