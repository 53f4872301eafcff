/// One header field of a message, as `HeaderSection` read it.
public struct HeaderField: Sendable, Hashable {
    /// The field name as written, such as `Subject` or `cc`. It contains printable ASCII other than ":".
    public let name: String

    /// The bytes after the colon up to the line end that ends the field, which is not included. Folded
    /// continuation lines are included with their line ends, and 8-bit bytes are kept as they are.
    public let rawValue: [UInt8]

    /// Offsets of the bytes of the whole field in the input. The range starts at the first byte of the name
    /// and ends after the line end of the last continuation line, or at the end of the input.
    public let range: Range<Int>

    init(name: String, rawValue: [UInt8], range: Range<Int>) {
        self.name = name
        self.rawValue = rawValue
        self.range = range
    }

    /// The value with folding line breaks removed (RFC 5322 section 2.2.3) and the white space at its start
    /// and end trimmed.
    ///
    /// A folding line break is CR LF or a bare LF. The white space after it stays, as unfolding requires.
    /// A CR without LF is not a line break and is kept.
    public var unfoldedValue: [UInt8] {
        var unfolded: [UInt8] = []
        unfolded.reserveCapacity(rawValue.count)
        var index = 0
        while index < rawValue.count {
            let byte = rawValue[index]
            let isCRLF = byte == MailCharacters.carriageReturn
                && index + 1 < rawValue.count
                && rawValue[index + 1] == MailCharacters.lineFeed
            if isCRLF {
                index += 2
                continue
            }
            if byte != MailCharacters.lineFeed {
                unfolded.append(byte)
            }
            index += 1
        }
        let start = unfolded.firstIndex { !MailCharacters.isWhiteSpace($0) } ?? unfolded.endIndex
        let end = unfolded.lastIndex { !MailCharacters.isWhiteSpace($0) }.map { $0 + 1 } ?? start
        return Array(unfolded[start..<end])
    }

    /// Returns whether the field has the name `name`, comparing ASCII letters without case.
    public func hasName(_ name: String) -> Bool {
        MailCharacters.equalsIgnoringASCIICase(self.name.utf8, name.utf8)
    }
}
