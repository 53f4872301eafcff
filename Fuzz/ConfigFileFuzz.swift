// libFuzzer target for ConfigFile.parse (OutboxCLI). Built by Fuzz/run.sh together with
// Sources/SMTPCore, ConfigFile.swift and ConfigKeys.swift of Sources/OutboxCLI/Configuration and
// Sources/OutboxCLI/DSNOptions.swift, the files that parse a configuration file, because
// the OutboxCLI module as a whole needs every other module of the package.
//
// The input, decoded as UTF-8 with invalid sequences replaced by U+FFFD, is the file's text. Checked
// properties:
// - Parsing returns a file or throws a ConfigError that names the file, a line from 1 to the line count
//   and a message. Its description starts with "FILE:LINE: " and contains no control character, so a
//   value echoed from the file cannot forge a line of output.
// - Parsing the same text again gives the same outcome.
// - A returned file's settings name lines from 1 to the line count, and its account names are unique,
//   not empty and without blanks or commas.

func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fatalError(message())
    }
}

let path = "/fuzz/outboxrc"

/// Parses `text` and returns the outcome as text: the settings of each section, or the error.
func outcome(_ text: String) -> String {
    do {
        let file = try ConfigFile.parse(text, path: path, home: "/home/fuzz")
        let sections = [file.defaults] + file.accounts
        return sections.map { section in
            section.name + ":" + section.settings.keys.sorted().map { "\($0)=\(section.settings[$0]!.value)@\(section.settings[$0]!.line)" }.joined(separator: ",")
        }.joined(separator: "\n")
    } catch {
        return "error: " + error.description
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
    do {
        let file = try ConfigFile.parse(text, path: path, home: "/home/fuzz")
        var names = Set<String>()
        for account in file.accounts {
            require(!account.name.isEmpty, "an account without a name")
            require(!account.name.contains(where: { $0 == " " || $0 == "\t" || $0 == "," }), "account name \(account.name.debugDescription)")
            require(names.insert(account.name).inserted, "account \(account.name.debugDescription) defined twice")
        }
        for section in [file.defaults] + file.accounts {
            for (key, setting) in section.settings {
                require((1...lineCount).contains(setting.line), "setting \(key) on line \(setting.line) of \(lineCount)")
            }
        }
    } catch {
        require(error.file == path, "error names file \(error.file.debugDescription)")
        guard let line = error.line else {
            fatalError("error without a line: \(error)")
        }
        require((1...lineCount).contains(line), "error on line \(line) of \(lineCount): \(error)")
        require(!error.message.isEmpty, "error without a message on line \(line)")
        require(error.description.hasPrefix("\(path):\(line): "), "error description \(error.description.debugDescription)")
        let controls = error.description.unicodeScalars.filter { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
        require(controls.isEmpty, "error description with control characters: \(error.description.debugDescription)")
    }
    let first = outcome(text)
    require(outcome(text) == first, "two parses of the same text differ")
    return 0
}
