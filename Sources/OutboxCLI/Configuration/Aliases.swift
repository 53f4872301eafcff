import Foundation

/// An aliases file as msmtp reads it: lines `name: address, address`, `#` comments, and a
/// `default` entry for local names that have no line of their own. Only recipients without an
/// `@` are replaced.
struct Aliases {
    private var table: [String: [String]] = [:]

    /// Reads the file. A line without a colon is an error that names the file and line.
    init(path: String) throws(ConfigError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: nil, message: "the aliases file cannot be read.")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces.union(.init(charactersIn: "\r")))
            if text.isEmpty || text.hasPrefix("#") { continue }
            guard let colon = text.firstIndex(of: ":") else {
                throw ConfigError(file: path, line: index + 1, message: "expected 'name: address, ...', got \"\(text)\".")
            }
            let name = text[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let addresses = text[text.index(after: colon)...].split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !name.isEmpty, !addresses.isEmpty else {
                throw ConfigError(file: path, line: index + 1, message: "expected 'name: address, ...', got \"\(text)\".")
            }
            table[name] = addresses
        }
    }

    /// Replaces each argument that is a local name (no `@`, `<` or `,`) with its addresses, or
    /// with the `default` entry's. Other arguments are returned as they are.
    func expand(_ recipients: [String]) -> [String] {
        recipients.flatMap { recipient -> [String] in
            let trimmed = recipient.trimmingCharacters(in: .whitespaces)
            guard !trimmed.contains(where: { "@<,".contains($0) }) else { return [recipient] }
            return table[trimmed.lowercased()] ?? table["default"] ?? [recipient]
        }
    }

    /// Replaces the local names in an address list field value, such as `root, a@example.org`,
    /// for reading the recipients with -t. The list is split at commas outside quotes, angle
    /// brackets and comments, and only elements made of a bare name are replaced.
    func expand(fieldValue: String) -> String {
        var elements: [String] = []
        var current = ""
        var depth = 0
        var quoted = false
        var escaped = false
        for character in fieldValue {
            if escaped {
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if !quoted, character == "<" || character == "(" {
                depth += 1
            } else if !quoted, character == ">" || character == ")" {
                depth = max(0, depth - 1)
            } else if !quoted, depth == 0, character == "," {
                elements.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        elements.append(current)
        return elements.map { element in
            let name = element.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !name.isEmpty, !name.contains(where: { "@<\"(:;".contains($0) || $0.isWhitespace }) else {
                return element
            }
            return (table[name.lowercased()] ?? table["default"]).map { $0.joined(separator: ", ") } ?? element
        }.joined(separator: ",")
    }
}
