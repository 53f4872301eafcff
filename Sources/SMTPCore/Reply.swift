import Foundation

/// A reply from an SMTP server (RFC 5321 section 4.2): a three-digit code and one or more lines of text.
public struct SMTPReply: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit reply code, for example 250.
    public let code: Int

    /// The text of each line, without the code, the separator and the line ending.
    /// When the reply carries an enhanced status code, it is removed from each line.
    public let lines: [String]

    /// The RFC 3463 enhanced status code, present only when the server advertised ENHANCEDSTATUSCODES.
    public let enhancedCode: EnhancedStatusCode?

    public init(code: Int, lines: [String], enhancedCode: EnhancedStatusCode? = nil) {
        self.code = code
        self.lines = lines.isEmpty ? [""] : lines
        self.enhancedCode = enhancedCode
    }

    /// The lines joined with single spaces, empty lines left out.
    public var text: String {
        lines.filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The reply as the server's status: the code, the enhanced code if any, and the text.
    public var description: String {
        var parts = [String(code)]
        if let enhancedCode {
            parts.append(enhancedCode.description)
        }
        if !text.isEmpty {
            parts.append(text)
        }
        return parts.joined(separator: " ")
    }

    /// Whether the code is 2xx.
    public var isPositiveCompletion: Bool { code / 100 == 2 }

    /// Whether the code is 3xx, as for 354 after DATA or 334 during AUTH.
    public var isPositiveIntermediate: Bool { code / 100 == 3 }

    /// Whether the code is 4xx: the command failed, and trying again later may succeed.
    public var isTransientNegative: Bool { code / 100 == 4 }

    /// Whether the code is 5xx: the command failed, and repeating it will fail the same way.
    public var isPermanentNegative: Bool { code / 100 == 5 }

    /// Returns the reply with every occurrence of the given strings replaced by `<redacted>`.
    public func redacting(_ secrets: [String]) -> SMTPReply {
        let cleaned = lines.map { line in
            secrets.reduce(line) { $0.replacingOccurrences(of: $1, with: "<redacted>") }
        }
        return SMTPReply(code: code, lines: cleaned, enhancedCode: enhancedCode)
    }

    /// Returns the reply with an enhanced status code read from the start of each line.
    ///
    /// RFC 2034 puts `class.subject.detail` and a space before the text of every line once the server
    /// advertises ENHANCEDSTATUSCODES. The code is taken only when its class matches the first digit
    /// of the reply code, so text that merely starts with digits is left alone.
    public func readingEnhancedStatusCode() -> SMTPReply {
        guard enhancedCode == nil, code / 100 != 3 else { return self }
        guard let first = EnhancedStatusCode.prefix(of: lines[0]), first.code.statusClass == code / 100 else {
            return self
        }
        let stripped = lines.map { line -> String in
            if let prefix = EnhancedStatusCode.prefix(of: line), prefix.code == first.code {
                return String(line.dropFirst(prefix.length))
            }
            return line
        }
        return SMTPReply(code: code, lines: stripped, enhancedCode: first.code)
    }
}

/// An RFC 3463 enhanced mail system status code, such as 5.1.1 for "bad destination mailbox address".
public struct EnhancedStatusCode: Sendable, Hashable, CustomStringConvertible {
    /// 2 for success, 4 for a persistent transient failure, 5 for a permanent failure.
    public let statusClass: Int
    public let subject: Int
    public let detail: Int

    public init(statusClass: Int, subject: Int, detail: Int) {
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    public var description: String { "\(statusClass).\(subject).\(detail)" }

    /// Reads `status-code SP` at the start of a line.
    ///
    /// RFC 3463: `status-code = class "." subject "." detail`, `class = "2" / "4" / "5"`,
    /// `subject = 1*3digit`, `detail = 1*3digit`. The code must be followed by a space or end the line.
    /// Returns the code and the number of characters to drop, separator included.
    static func prefix(of line: String) -> (code: EnhancedStatusCode, length: Int)? {
        let bytes = Array(line.utf8.prefix(12))
        var index = 0

        func readNumber(maxDigits: Int) -> Int? {
            var value = 0
            var digits = 0
            while index < bytes.count, digits < maxDigits, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                digits += 1
                index += 1
            }
            return digits > 0 ? value : nil
        }

        func readDot() -> Bool {
            guard index < bytes.count, bytes[index] == UInt8(ascii: ".") else { return false }
            index += 1
            return true
        }

        guard let statusClass = readNumber(maxDigits: 1), [2, 4, 5].contains(statusClass), readDot(),
              let subject = readNumber(maxDigits: 3), readDot(),
              let detail = readNumber(maxDigits: 3)
        else { return nil }

        var length = index
        if index < line.utf8.count {
            guard index < bytes.count, bytes[index] == UInt8(ascii: " ") else { return nil }
            length += 1
        }
        return (EnhancedStatusCode(statusClass: statusClass, subject: subject, detail: detail), length)
    }
}
