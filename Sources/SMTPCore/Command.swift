/// An SMTP command the client sends (RFC 5321 section 4.1).
public enum SMTPCommand: Sendable, Hashable {
    case ehlo(domain: String)
    case helo(domain: String)
    /// `MAIL FROM:<reverse-path> [parameters]`. An empty path is the null sender `<>`.
    case mail(from: String, parameters: [ESMTPParameter])
    /// `RCPT TO:<forward-path> [parameters]`.
    case rcpt(to: String, parameters: [ESMTPParameter])
    case data
    case rset
    case noop
    case quit

    /// The command verb, for transcripts and error messages.
    public var verb: String {
        switch self {
        case .ehlo: "EHLO"
        case .helo: "HELO"
        case .mail: "MAIL"
        case .rcpt: "RCPT"
        case .data: "DATA"
        case .rset: "RSET"
        case .noop: "NOOP"
        case .quit: "QUIT"
        }
    }

    /// Encodes the command as one line ending in CRLF.
    ///
    /// - Throws: `CommandEncodingError` when an argument contains CR, LF or NUL, or is otherwise not
    ///   valid in its position. Nothing is returned in that case, so nothing can be written.
    public func encoded() throws(CommandEncodingError) -> [UInt8] {
        var line: String
        switch self {
        case .ehlo(let domain), .helo(let domain):
            try Self.validateDomainArgument(domain)
            line = "\(verb) \(domain)"
        case .mail(let path, let parameters):
            try Self.validatePath(path, argument: "sender address")
            line = "MAIL FROM:<\(path)>"
            line += try Self.encode(parameters)
        case .rcpt(let path, let parameters):
            guard !path.isEmpty else {
                throw CommandEncodingError(argument: "recipient address", value: path, reason: .empty)
            }
            try Self.validatePath(path, argument: "recipient address")
            line = "RCPT TO:<\(path)>"
            line += try Self.encode(parameters)
        case .data, .rset, .noop, .quit:
            line = verb
        }
        return Array(line.utf8) + [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
    }

    private static func encode(_ parameters: [ESMTPParameter]) throws(CommandEncodingError) -> String {
        var encoded = ""
        for parameter in parameters {
            try parameter.validate()
            encoded += " " + parameter.description
        }
        return encoded
    }

    private static func validateDomainArgument(_ domain: String) throws(CommandEncodingError) {
        try rejectLineBreaks(in: domain, argument: "EHLO domain")
        guard !domain.isEmpty else {
            throw CommandEncodingError(argument: "EHLO domain", value: domain, reason: .empty)
        }
        if domain.utf8.contains(where: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) {
            throw CommandEncodingError(argument: "EHLO domain", value: domain, reason: .whiteSpace)
        }
    }

    /// Checks a mailbox path for the characters that would end or split the command: line breaks,
    /// NUL, angle brackets, and white space outside a quoted local part.
    private static func validatePath(_ path: String, argument: String) throws(CommandEncodingError) {
        try rejectLineBreaks(in: path, argument: argument)
        var inQuotes = false
        var escaped = false
        for byte in path.utf8 {
            if escaped {
                escaped = false
                continue
            }
            switch byte {
            case UInt8(ascii: "\\") where inQuotes:
                escaped = true
            case UInt8(ascii: "\""):
                inQuotes.toggle()
            case UInt8(ascii: " "), UInt8(ascii: "\t"):
                if !inQuotes {
                    throw CommandEncodingError(argument: argument, value: path, reason: .whiteSpace)
                }
            case UInt8(ascii: "<"), UInt8(ascii: ">"):
                if !inQuotes {
                    throw CommandEncodingError(argument: argument, value: path, reason: .angleBracket)
                }
            default:
                break
            }
        }
        if inQuotes {
            throw CommandEncodingError(argument: argument, value: path, reason: .unbalancedQuote)
        }
    }

    static func rejectLineBreaks(in value: String, argument: String) throws(CommandEncodingError) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"), 0:
                throw CommandEncodingError(argument: argument, value: value, reason: .lineBreakOrNUL)
            default:
                continue
            }
        }
    }
}

/// An ESMTP parameter of MAIL or RCPT, such as `SIZE=1024` or `BODY=8BITMIME` (RFC 5321 section 4.1.2).
public struct ESMTPParameter: Sendable, Hashable, CustomStringConvertible {
    public let keyword: String
    public let value: String?

    public init(_ keyword: String, _ value: String? = nil) {
        self.keyword = keyword
        self.value = value
    }

    public var description: String {
        if let value { "\(keyword)=\(value)" } else { keyword }
    }

    /// ```
    /// esmtp-keyword  = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    /// esmtp-value    = 1*(%d33-60 / %d62-126)   ; RFC 6531 adds UTF-8 characters
    /// ```
    func validate() throws(CommandEncodingError) {
        try SMTPCommand.rejectLineBreaks(in: keyword, argument: "parameter keyword")
        let keywordBytes = Array(keyword.utf8)
        guard let first = keywordBytes.first, Self.isAlphanumeric(first),
              keywordBytes.allSatisfy({ Self.isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
        else {
            throw CommandEncodingError(argument: "parameter keyword", value: keyword, reason: .invalidCharacter)
        }
        guard let value else { return }
        try SMTPCommand.rejectLineBreaks(in: value, argument: "\(keyword) parameter")
        let valid = !value.isEmpty && value.utf8.allSatisfy { byte in
            (33...126).contains(byte) && byte != UInt8(ascii: "=") || byte >= 0x80
        }
        guard valid else {
            throw CommandEncodingError(argument: "\(keyword) parameter", value: value, reason: .invalidCharacter)
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

/// A command argument that cannot be sent, found before anything was written.
public struct CommandEncodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        case lineBreakOrNUL
        case empty
        case whiteSpace
        case angleBracket
        case unbalancedQuote
        case invalidCharacter
    }

    /// The name of the value, for example "recipient address" or "EHLO domain".
    public let argument: String
    public let value: String
    public let reason: Reason

    public var description: String {
        let shown = value.unicodeScalars.map { $0.escaped(asASCII: false) }.joined()
        return switch reason {
        case .lineBreakOrNUL:
            "The \(argument) \"\(shown)\" contains a CR, LF or NUL character, which would inject SMTP commands. "
                + "Remove the line break from the value."
        case .empty:
            "The \(argument) is empty."
        case .whiteSpace:
            "The \(argument) \"\(shown)\" contains white space outside quotes."
        case .angleBracket:
            "The \(argument) \"\(shown)\" contains an angle bracket outside quotes."
        case .unbalancedQuote:
            "The \(argument) \"\(shown)\" has an opening quote without a closing one."
        case .invalidCharacter:
            "The \(argument) \"\(shown)\" contains a character that SMTP does not allow there."
        }
    }
}
