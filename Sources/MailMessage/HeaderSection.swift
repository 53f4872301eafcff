/// The header section at the start of a message (RFC 5322 section 2.2): its fields in order, each with the
/// byte range it occupies, so that a caller can remove fields and copy the rest of the message unchanged.
///
/// Parsing accepts these departures from RFC 5322, because real messages have them and each has one meaning:
/// - Lines may end in CR LF or in a bare LF. A CR without LF is part of the line.
/// - A first line that starts with `From ` and is not a field is an mbox separator line. It is reported in
///   `mboxFromLine`, not as a field.
/// - White space between a field name and its colon (obs-optional, RFC 5322 section 4.5) is accepted.
/// - A line that is neither a field nor a continuation line ends the section, and the body starts with it.
///   `terminator` is then `.nonFieldLine`.
/// - A line of only white space after a field is a continuation line of that field (obs-FWS).
public struct HeaderSection: Sendable, Hashable {
    /// The line, or the end of the input, that ends the header section.
    public enum Terminator: Sendable, Hashable {
        /// An empty line, the separator that RFC 5322 requires. The body starts after it.
        case emptyLine
        /// A line that is neither a field nor a continuation line, such as a line without a colon.
        /// The body starts with this line.
        case nonFieldLine
        /// The end of the input, so the message has no body.
        case endOfInput
    }

    /// Default for `maximumSize`: 1 MiB. The limit bounds the memory and time that one malformed or hostile
    /// input can take. Pass a larger size for messages with larger header sections.
    public static let defaultMaximumSize = 1_048_576

    /// Offsets of the mbox `From ` line, with its line end, or nil when the input has none.
    public let mboxFromLine: Range<Int>?

    /// The fields in the order of the input.
    public let fields: [HeaderField]

    /// The line, or the end of the input, that ends the header section.
    public let terminator: Terminator

    /// Offset of the first byte after the last field (or after the mbox line when there are no fields),
    /// which is where the terminator starts.
    public let endOffset: Int

    /// Offset of the first byte of the body: after the empty line, at the non-field line, or at the end of
    /// the input.
    public let bodyOffset: Int

    init(mboxFromLine: Range<Int>?, fields: [HeaderField], terminator: Terminator, endOffset: Int, bodyOffset: Int) {
        self.mboxFromLine = mboxFromLine
        self.fields = fields
        self.terminator = terminator
        self.endOffset = endOffset
        self.bodyOffset = bodyOffset
    }

    /// Parses the header section at the start of `message`.
    ///
    /// Offsets in the result count bytes from the first byte of `message`, whatever its index type.
    /// Parsing reads at most `maximumSize + 2` bytes of `message`, so a long body costs nothing.
    ///
    /// - Parameter maximumSize: Maximum size in bytes of the mbox line and the fields, with their line ends.
    ///   A line that starts within this size must show whether it is a field before this size, so the first
    ///   body line of a message without an empty line can also exceed it.
    /// - Throws: `HeaderSectionError.tooLarge` when the header section does not end within `maximumSize`.
    public init(parsing message: some Collection<UInt8>, maximumSize: Int = defaultMaximumSize)
        throws(HeaderSectionError)
    {
        precondition(maximumSize >= 0, "maximumSize must not be negative")
        let readLimit = maximumSize > Int.max - 2 ? Int.max : maximumSize + 2
        let bytes = Array(message.prefix(readLimit))
        var parser = HeaderSectionParser(bytes: bytes, maximumSize: maximumSize)
        self = try parser.parse()
    }

    /// Returns the fields named `name` in input order, comparing ASCII letters without case.
    public func fields(named name: String) -> [HeaderField] {
        fields.filter { $0.hasName(name) }
    }

    /// Returns the first field named `name`, comparing ASCII letters without case, or nil when there is none.
    public func firstField(named name: String) -> HeaderField? {
        fields.first { $0.hasName(name) }
    }

    /// Returns `message` without the fields named `name`, byte for byte the same otherwise.
    ///
    /// `message` must be the input that this header section was parsed from. A typical use is to remove
    /// `Bcc` before sending.
    public func removingFields(named name: String, from message: [UInt8]) -> [UInt8] {
        precondition(message.count >= endOffset, "message is shorter than the header section parsed from it")
        var result: [UInt8] = []
        result.reserveCapacity(message.count)
        var copiedUpTo = 0
        for field in fields where field.hasName(name) {
            result += message[copiedUpTo..<field.range.lowerBound]
            copiedUpTo = field.range.upperBound
        }
        result += message[copiedUpTo...]
        return result
    }
}
