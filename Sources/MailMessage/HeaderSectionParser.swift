/// Reads the header section from the first bytes of a message, for `HeaderSection.init(parsing:maximumSize:)`.
///
/// The parser reads no byte at an offset of `maximumSize + 2` or more. It checks the limit while it scans a
/// line, so a long line costs at most `maximumSize` bytes of work.
struct HeaderSectionParser {
    /// The first `maximumSize + 2` bytes of the message, or all of them when it is shorter.
    let bytes: [UInt8]
    let maximumSize: Int
    /// Offset of the start of the next line.
    var position = 0

    init(bytes: [UInt8], maximumSize: Int) {
        self.bytes = bytes
        self.maximumSize = maximumSize
    }

    mutating func parse() throws(HeaderSectionError) -> HeaderSection {
        var mboxFromLine: Range<Int>?
        if bytes.starts(with: "From ".utf8), try fieldName(atLineStart: 0) == nil {
            let end = try lineEnd(from: 0)
            mboxFromLine = 0..<end
            position = end
        }
        var fields: [HeaderField] = []
        while true {
            guard position < bytes.count else {
                return section(mboxFromLine, fields, .endOfInput, bodyOffset: position)
            }
            if bytes[position] == MailCharacters.lineFeed {
                return section(mboxFromLine, fields, .emptyLine, bodyOffset: position + 1)
            }
            if bytes[position...].starts(with: [MailCharacters.carriageReturn, MailCharacters.lineFeed]) {
                return section(mboxFromLine, fields, .emptyLine, bodyOffset: position + 2)
            }
            guard let (name, colon) = try fieldName(atLineStart: position) else {
                return section(mboxFromLine, fields, .nonFieldLine, bodyOffset: position)
            }
            fields.append(try readField(name: name, colon: colon))
        }
    }

    private func section(
        _ mboxFromLine: Range<Int>?,
        _ fields: [HeaderField],
        _ terminator: HeaderSection.Terminator,
        bodyOffset: Int
    ) -> HeaderSection {
        HeaderSection(mboxFromLine: mboxFromLine, fields: fields, terminator: terminator, endOffset: position,
                      bodyOffset: bodyOffset)
    }

    /// Throws when the byte at `offset` would make the header section larger than `maximumSize`.
    private func checkLimit(_ offset: Int) throws(HeaderSectionError) {
        if offset >= maximumSize {
            throw .tooLarge(maximumSize: maximumSize)
        }
    }

    // field-name = 1*ftext
    // obs-optional = field-name *WSP ":" unstructured CRLF
    /// Returns the field name and the offset of its colon when the line at `start` is a field line, or nil.
    /// A line that starts with white space is a continuation line, not a field line.
    private func fieldName(atLineStart start: Int) throws(HeaderSectionError) -> (String, Int)? {
        var index = start
        while index < bytes.count, MailCharacters.isFieldNameText(bytes[index]) {
            try checkLimit(index)
            index += 1
        }
        let nameEnd = index
        guard nameEnd > start else {
            return nil
        }
        while index < bytes.count, MailCharacters.isWhiteSpace(bytes[index]) {
            try checkLimit(index)
            index += 1
        }
        guard index < bytes.count, bytes[index] == MailCharacters.colon else {
            return nil
        }
        try checkLimit(index)
        return (String(decoding: bytes[start..<nameEnd], as: UTF8.self), index)
    }

    /// Returns the offset after the LF that ends the line containing `offset`, or the end of the input.
    private func lineEnd(from offset: Int) throws(HeaderSectionError) -> Int {
        var index = offset
        while index < bytes.count {
            try checkLimit(index)
            if bytes[index] == MailCharacters.lineFeed {
                return index + 1
            }
            index += 1
        }
        return index
    }

    // field = field-name ":" unstructured CRLF, with folded continuation lines
    /// Reads the field whose name ends before `colon`, with its continuation lines, and moves `position` to
    /// the line after it.
    private mutating func readField(name: String, colon: Int) throws(HeaderSectionError) -> HeaderField {
        let start = position
        var end = try lineEnd(from: colon + 1)
        while end < bytes.count, MailCharacters.isWhiteSpace(bytes[end]) {
            end = try lineEnd(from: end)
        }
        var valueEnd = end
        if valueEnd > colon + 1, bytes[valueEnd - 1] == MailCharacters.lineFeed {
            valueEnd -= 1
            if valueEnd > colon + 1, bytes[valueEnd - 1] == MailCharacters.carriageReturn {
                valueEnd -= 1
            }
        }
        position = end
        return HeaderField(name: name, rawValue: Array(bytes[(colon + 1)..<valueEnd]), range: start..<end)
    }
}
