/// An incremental parser of SMTP replies.
///
/// Append bytes as they arrive from the server, in pieces of any size, and take complete replies with
/// `nextReply()`. Feeding a reply one byte at a time gives the same result as feeding it whole.
///
/// RFC 5321 section 4.2:
/// ```
/// Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
///                  Reply-code [ SP textstring ] CRLF
/// Reply-code     = %x32-35 %x30-35 %x30-39
/// ```
/// Every line of a multi-line reply must carry the same code. A last line of a bare code, with or
/// without a trailing space, is accepted. A bare LF is accepted as a line ending because some servers
/// send one; a CR before it is removed.
public struct ReplyParser: Sendable {
    /// Bounds that stop a hostile or broken server from making the client buffer without end.
    public struct Limits: Sendable, Hashable {
        /// The maximum line length, in octets without the line ending. RFC 5321 section 4.5.3.1.5
        /// sets 512 octets with the ending, but real servers exceed it, so the default is 4,096.
        public var maxLineLength: Int

        /// The maximum number of lines in one reply. The default of 1,000 is far above the longest
        /// EHLO replies and greeting banners seen in practice.
        public var maxLinesPerReply: Int

        public init(maxLineLength: Int = 4096, maxLinesPerReply: Int = 1000) {
            self.maxLineLength = maxLineLength
            self.maxLinesPerReply = maxLinesPerReply
        }
    }

    public let limits: Limits

    private var buffer: [UInt8] = []
    private var scanStart = 0
    private var pendingCode: Int?
    private var pendingLines: [String] = []

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Whether bytes are buffered that do not yet form a complete reply, or replies not yet taken.
    public var hasBufferedBytes: Bool { !buffer.isEmpty || pendingCode != nil }

    /// Appends bytes received from the server.
    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    /// Returns the next complete reply, or nil when more bytes are needed.
    ///
    /// - Throws: `ReplyParser.Error` when a line is malformed, too long, carries a code that differs from
    ///   the first line's, or the reply has too many lines. The session cannot continue after that.
    public mutating func nextReply() throws(ReplyParser.Error) -> SMTPReply? {
        while let line = try nextLine() {
            let parsed = try Self.parseLine(line)
            if let code = pendingCode, code != parsed.code {
                throw .codeMismatch(expected: code, found: parsed.code, line: Self.printable(line))
            }
            pendingCode = parsed.code
            pendingLines.append(parsed.text)
            if parsed.isLast {
                let reply = SMTPReply(code: parsed.code, lines: pendingLines)
                pendingCode = nil
                pendingLines = []
                return reply
            }
            if pendingLines.count >= limits.maxLinesPerReply {
                throw .tooManyLines(limit: limits.maxLinesPerReply)
            }
        }
        return nil
    }

    private mutating func nextLine() throws(ReplyParser.Error) -> ArraySlice<UInt8>? {
        guard let newline = buffer[scanStart...].firstIndex(of: UInt8(ascii: "\n")) else {
            scanStart = buffer.count
            if buffer.count > limits.maxLineLength + 1 {
                throw .lineTooLong(limit: limits.maxLineLength)
            }
            return nil
        }
        var end = newline
        if end > 0, buffer[end - 1] == UInt8(ascii: "\r") {
            end -= 1
        }
        if end > limits.maxLineLength {
            throw .lineTooLong(limit: limits.maxLineLength)
        }
        let line = buffer[..<end]
        buffer.removeSubrange(...newline)
        scanStart = 0
        return line
    }

    private static func parseLine(
        _ line: ArraySlice<UInt8>
    ) throws(ReplyParser.Error) -> (code: Int, isLast: Bool, text: String) {
        let bytes = Array(line)
        guard bytes.count >= 3,
              (UInt8(ascii: "2")...UInt8(ascii: "5")).contains(bytes[0]),
              (UInt8(ascii: "0")...UInt8(ascii: "5")).contains(bytes[1]),
              (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[2])
        else {
            throw .malformedLine(printable(line))
        }
        let code = bytes[0..<3].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard bytes.count > 3 else {
            return (code, true, "")
        }
        let isLast: Bool
        switch bytes[3] {
        case UInt8(ascii: " "):
            isLast = true
        case UInt8(ascii: "-"):
            isLast = false
        default:
            throw .malformedLine(printable(line))
        }
        return (code, isLast, printable(bytes[4...]))
    }

    /// Decodes server text as UTF-8 and replaces control characters, so that a reply shown in a
    /// terminal or a log cannot move the cursor, change colours or forge extra lines.
    static func printable(_ bytes: some Collection<UInt8>) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.unicodeScalars.contains(where: { isControl($0) }) else { return text }
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            cleaned.append(isControl(scalar) ? "\u{FFFD}" : scalar)
        }
        return String(cleaned)
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar != "\t" && (scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value))
    }

    /// A reply that cannot be read. The session must end, because the client can no longer tell which
    /// command a later reply belongs to.
    public enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        case malformedLine(String)
        case codeMismatch(expected: Int, found: Int, line: String)
        case lineTooLong(limit: Int)
        case tooManyLines(limit: Int)

        public var description: String {
            switch self {
            case .malformedLine(let line):
                "the server sent a line that is not an SMTP reply: \"\(line.prefix(200))\""
            case .codeMismatch(let expected, let found, let line):
                "the server changed the reply code from \(expected) to \(found) inside one multi-line reply: "
                    + "\"\(line.prefix(200))\""
            case .lineTooLong(let limit):
                "the server sent a reply line longer than \(limit) octets"
            case .tooManyLines(let limit):
                "the server sent a reply of more than \(limit) lines"
            }
        }
    }
}
