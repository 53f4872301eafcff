import Foundation

/// A setting read from a configuration file, with the place it was written, for error messages.
struct ConfigSetting: Sendable, Equatable {
    let value: String
    let line: Int
}

/// An account of a configuration file: its settings after the defaults and inherited accounts
/// are applied.
struct ConfigAccount: Sendable {
    let name: String
    var settings: [String: ConfigSetting]

    func value(_ key: String) -> String? { settings[key]?.value }
}

/// A configuration file's invalid line. Exits with EX_CONFIG.
struct ConfigError: Error, CustomStringConvertible {
    /// The file's path, or empty when no file was found.
    let file: String
    /// The line number, from 1, or nil for an error about the whole file.
    let line: Int?
    let message: String

    /// The error as `FILE:LINE: MESSAGE`. Control characters of the file name and the message, which
    /// may echo a value from the file, are written as Swift escapes such as `\r`, so that the output is
    /// one line.
    var description: String {
        let text = line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)"
        return Self.printable(file.isEmpty ? message : text)
    }

    private static func printable(_ text: String) -> String {
        text.unicodeScalars
            .map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? $0.escaped(asASCII: true) : String($0) }
            .joined()
    }
}

/// A configuration file in msmtp's format (as its manual describes it for version 1.8): one
/// command per line, a `defaults` section whose settings apply to the accounts defined after it,
/// and `account NAME` or `account NAME : OTHER, ...` sections.
///
/// Syntax: blank lines and lines whose first non-blank character is `#` are comments. A command is
/// a word followed by its argument, the rest of the line with surrounding blanks removed. The
/// argument may contain double-quoted parts, inside which `\"` and `\\` stand for `"` and `\` and
/// `#` has no special meaning. An unquoted `#` preceded by a blank starts a comment. As in msmtp,
/// a command never continues on the next line. A file name that starts with `~` has it replaced by
/// the home directory.
struct ConfigFile: Sendable {
    let path: String
    /// The accounts in the order the file defines them.
    let accounts: [ConfigAccount]
    /// The `defaults` settings as they stand at the end of the file, for commands that use no account.
    let defaults: ConfigAccount
    /// Whether users other than the owner can read the file.
    let readableByOthers: Bool
    /// Whether users other than the owner can change the file, and so the commands that
    /// `passwordeval` runs.
    var writableByOthers = false

    func account(named name: String) -> ConfigAccount? {
        accounts.first { $0.name == name }
    }

    /// Parses the text of a file. `home` replaces a leading `~` in file names.
    static func parse(_ text: String, path: String, home: String?) throws(ConfigError) -> ConfigFile {
        var defaults: [String: ConfigSetting] = [:]
        var accounts: [ConfigAccount] = []
        // The settings of the section being read: nil for the defaults section.
        var current: ConfigAccount?

        func finishAccount() {
            if let account = current {
                accounts.append(account)
            }
            current = nil
        }

        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            func fail(_ message: String) -> ConfigError {
                ConfigError(file: path, line: number, message: message)
            }
            guard let (command, argument) = try splitLine(String(rawLine), fail: fail) else { continue }
            switch command {
            case "defaults":
                guard argument.isEmpty else { throw fail("'defaults' takes no argument, but got \"\(argument)\".") }
                finishAccount()
            case "account":
                finishAccount()
                current = try startAccount(argument, defaults: defaults, accounts: accounts, fail: fail)
            default:
                let value = try ConfigKeys.validate(command, argument, home: home, fail: fail)
                let setting = ConfigSetting(value: value, line: number)
                if current != nil {
                    current?.settings[command] = setting
                } else {
                    defaults[command] = setting
                }
            }
        }
        finishAccount()
        return ConfigFile(
            path: path, accounts: accounts, defaults: ConfigAccount(name: "defaults", settings: defaults),
            readableByOthers: false)
    }

    /// Reads and parses a file, and notes whether other users can read it.
    static func load(path: String, home: String?) throws(ConfigError) -> ConfigFile {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw ConfigError(file: path, line: nil, message: "cannot be read: \(String(cString: strerror(errno))).")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG, let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: nil, message: "is not a readable regular file.")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, message: "is not valid UTF-8.")
        }
        let parsed = try parse(text, path: path, home: home)
        return ConfigFile(
            path: path, accounts: parsed.accounts, defaults: parsed.defaults,
            readableByOthers: status.st_mode & (S_IRGRP | S_IROTH) != 0,
            writableByOthers: status.st_mode & (S_IWGRP | S_IWOTH) != 0)
    }

    /// Whether any section sets `password`, which makes a file that others can read a risk.
    var containsPassword: Bool {
        defaults.settings["password"] != nil || accounts.contains { $0.settings["password"] != nil }
    }

    // MARK: - Lines

    /// Returns the command and argument of a line, or nil for a blank or comment line.
    private static func splitLine(
        _ line: String, fail: (String) -> ConfigError
    ) throws(ConfigError) -> (String, String)? {
        let trimmed = line.drop { $0 == " " || $0 == "\t" }
        if trimmed.isEmpty || trimmed.first == "#" || trimmed.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) {
            return nil
        }
        let command = String(trimmed.prefix { $0 != " " && $0 != "\t" && $0 != "\r" })
        let rest = trimmed.dropFirst(command.count)
        return (command, try parseArgument(rest, fail: fail))
    }

    /// Removes the blanks around an argument, resolves its quoted parts and drops a trailing comment.
    private static func parseArgument(_ text: Substring, fail: (String) -> ConfigError) throws(ConfigError) -> String {
        var result = ""
        // Blanks are kept only between other characters, so trailing ones are held back until then.
        var pendingBlanks = ""
        var quoted = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            index = text.index(after: index)
            if quoted {
                if character == "\"" {
                    quoted = false
                } else if character == "\\" {
                    guard index < text.endIndex, text[index] == "\"" || text[index] == "\\" else {
                        throw fail("Inside double quotes, a backslash must be followed by \" or \\.")
                    }
                    result.append(text[index])
                    index = text.index(after: index)
                } else {
                    result.append(character)
                }
                continue
            }
            switch character {
            case " ", "\t", "\r":
                pendingBlanks.append(character == "\r" ? " " : character)
            case "#" where !pendingBlanks.isEmpty || result.isEmpty:
                return result
            case "\"":
                if !result.isEmpty { result += pendingBlanks }
                pendingBlanks = ""
                quoted = true
            default:
                if !result.isEmpty { result += pendingBlanks }
                pendingBlanks = ""
                result.append(character)
            }
        }
        if quoted {
            throw fail("A double quote is not closed.")
        }
        return result
    }

    // MARK: - Accounts

    /// Starts an account from `NAME` or `NAME : OTHER[, OTHER...]`. The account gets the current
    /// defaults, then the settings of each named account in order, later ones winning.
    private static func startAccount(
        _ argument: String, defaults: [String: ConfigSetting], accounts: [ConfigAccount],
        fail: (String) -> ConfigError
    ) throws(ConfigError) -> ConfigAccount {
        let parts = argument.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts[0].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" || $0 == "," }) else {
            throw fail("'account' needs a name without blanks or commas, but got \"\(argument)\".")
        }
        if accounts.contains(where: { $0.name == name }) {
            throw fail("The account \"\(name)\" is defined twice.")
        }
        var account = ConfigAccount(name: name, settings: defaults)
        guard parts.count == 2 else { return account }
        let parents = parts[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parents.isEmpty, !parents.contains(where: \.isEmpty) else {
            throw fail("'account \(name) :' needs the names of earlier accounts after the colon.")
        }
        for parentName in parents {
            guard let parent = accounts.first(where: { $0.name == parentName }) else {
                throw fail("The account \"\(parentName)\" that \"\(name)\" inherits from is not defined above it.")
            }
            account.settings.merge(parent.settings) { _, inherited in inherited }
        }
        return account
    }
}
