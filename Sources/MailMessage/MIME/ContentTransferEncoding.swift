/// A Content-Transfer-Encoding value (RFC 2045 section 6).
public enum ContentTransferEncoding: String, Sendable, Hashable, CaseIterable {
    case sevenBit = "7bit"
    case eightBit = "8bit"
    case binary = "binary"
    case quotedPrintable = "quoted-printable"
    case base64 = "base64"

    /// Creates the encoding named by a header value, comparing without case and ignoring white space
    /// around it. Returns nil for an unknown name.
    public init?(headerValue: String) {
        let name = headerValue.trimmingASCIIWhiteSpace().lowercased()
        self.init(rawValue: name)
    }

    /// Whether the encoded content is plain ASCII text in lines of at most 998 octets, so that it can
    /// travel through any SMTP server.
    public var is7bit: Bool {
        self == .sevenBit || self == .quotedPrintable || self == .base64
    }

    /// Returns the encoding for content of the given kind.
    ///
    /// Text that is ASCII, without NUL or a CR outside a CR LF, with lines of at most 998 octets and
    /// without a line that is only "." or starts with "From ", is `7bit`. Quoted-printable protects those
    /// two kinds of line from sendmail's end of input and from mbox readers. Other text is `8bit` when `allows8bit` is true (the server offers 8BITMIME and the user
    /// allows it) and it has no NUL, no bare CR and no line over 998 octets. Otherwise text is
    /// quoted-printable, unless more than a third of the bytes are not ASCII, as in most Chinese or Japanese
    /// text, which is then base64 because that is much shorter. Content that is not text is always base64.
    public static func choose(for content: ContentSummary, isText: Bool, allows8bit: Bool = false) -> Self {
        guard isText else { return .base64 }
        let hasLongLines = content.maximumLineLength > 998
        let hasRiskyLines = content.hasLoneDotLine || content.hasFromLine
        if !hasLongLines && !content.hasNUL && !content.hasBareCarriageReturn {
            if content.nonASCIICount == 0 && !hasRiskyLines { return .sevenBit }
            if allows8bit { return .eightBit }
        }
        // Quoted-printable takes 3 characters per non-ASCII byte, so above a third it is at least 5/3 the
        // size of the content, against 4/3 for base64. Below that, its readable ASCII is worth a few bytes.
        return content.nonASCIICount * 3 > content.byteCount ? .base64 : .quotedPrintable
    }

    /// Returns the encoding for `content`, as `choose(for:isText:allows8bit:)` with a summary does.
    public static func choose(for content: some Sequence<UInt8>, isText: Bool, allows8bit: Bool = false) -> Self {
        var summary = ContentSummary()
        summary.add(content)
        return choose(for: summary, isText: isText, allows8bit: allows8bit)
    }
}

/// Counts over content that decide its transfer encoding, gathered in one pass over chunks.
public struct ContentSummary: Sendable, Hashable {
    /// Number of bytes seen.
    public private(set) var byteCount = 0
    /// Number of bytes of 0x80 and above.
    public private(set) var nonASCIICount = 0
    /// Whether a NUL byte occurs.
    public private(set) var hasNUL = false
    /// Whether a CR occurs that is not followed by LF.
    public private(set) var hasBareCarriageReturn = false
    /// Length in octets of the longest line, without its line end.
    public private(set) var maximumLineLength = 0

    /// Whether a line is only ".", which ends the input of sendmail without -i.
    public var hasLoneDotLine: Bool {
        sawLoneDotLine || currentLinePrefix == [UInt8(ascii: ".")]
    }
    /// Whether a line starts with "From ", which mbox readers change to ">From ".
    public private(set) var hasFromLine = false

    private var currentLineLength = 0
    private var previousWasCarriageReturn = false
    private var sawLoneDotLine = false
    /// The first bytes of the current line, up to 5, without CR.
    private var currentLinePrefix: [UInt8] = []

    /// Creates an empty summary.
    public init() {}

    /// Adds the next chunk of the content.
    public mutating func add(_ chunk: some Sequence<UInt8>) {
        for byte in chunk {
            byteCount += 1
            if previousWasCarriageReturn && byte != 10 {
                hasBareCarriageReturn = true
            }
            previousWasCarriageReturn = byte == 13
            switch byte {
            case 10:
                if currentLinePrefix == [UInt8(ascii: ".")] { sawLoneDotLine = true }
                currentLineLength = 0
                currentLinePrefix.removeAll(keepingCapacity: true)
            case 13:
                break
            default:
                if currentLinePrefix.count < 5 {
                    currentLinePrefix.append(byte)
                    if currentLinePrefix.elementsEqual("From ".utf8) { hasFromLine = true }
                }
                if byte >= 0x80 { nonASCIICount += 1 }
                if byte == 0 { hasNUL = true }
                currentLineLength += 1
                maximumLineLength = max(maximumLineLength, currentLineLength)
            }
        }
    }

    /// Whether the content ends in a CR that no LF followed, which makes it a bare CR.
    public var endsWithCarriageReturn: Bool { previousWasCarriageReturn }
}

extension String {
    func trimmingASCIIWhiteSpace() -> String {
        let bytes = Array(utf8)
        let start = bytes.firstIndex { !MailCharacters.isWhiteSpace($0) } ?? bytes.endIndex
        let end = bytes.lastIndex { !MailCharacters.isWhiteSpace($0) }.map { $0 + 1 } ?? start
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
