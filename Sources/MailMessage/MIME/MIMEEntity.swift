/// One entity of a parsed message (RFC 2045): its header section and its body, as byte ranges in the
/// message, with the children of a multipart body or the message inside a message/rfc822 body.
///
/// Ranges are offsets into the bytes given to `MIMEMessage(parsing:)`. The offsets inside `header` count
/// from `range.lowerBound`, because the header section is parsed from the entity's own bytes.
public struct MIMEEntity: Sendable {
    /// The whole entity: header section, separator and body.
    public let range: Range<Int>
    /// The header section, with offsets relative to `range.lowerBound`.
    public let header: HeaderSection
    /// The body: from after the empty line to the end of the entity.
    public let bodyRange: Range<Int>
    /// The Content-Type, or `text/plain; charset=us-ascii` when the field is missing (RFC 2045 section 5.2).
    public let contentType: ParameterizedValue
    /// The Content-Disposition, or nil when the field is missing.
    public let contentDisposition: ParameterizedValue?
    /// The Content-Transfer-Encoding, or nil when the field is missing or names an unknown encoding.
    /// A missing field means 7bit.
    public let transferEncoding: ContentTransferEncoding?
    /// The parts of a multipart body, or the one message of a message/rfc822 body.
    public let children: [MIMEEntity]
    /// Whether a multipart body has no closing delimiter, which RFC 2046 requires.
    public let isMissingClosingDelimiter: Bool

    /// The lowercased media type, such as `multipart/mixed`.
    public var mediaType: String { contentType.value }

    /// Whether the body is multipart.
    public var isMultipart: Bool { mediaType.hasPrefix("multipart/") }

    /// The file name from Content-Disposition's `filename`, or else Content-Type's `name`.
    public var fileName: String? {
        contentDisposition?.parameter("filename") ?? contentType.parameter("name")
    }

    /// Maximum nesting of multipart and message/rfc822 bodies. Deeper bodies are kept as leaves, so a
    /// hostile message cannot exhaust the stack.
    public static let maximumDepth = 50

    init(parsing bytes: [UInt8], range: Range<Int>, depth: Int, defaultType: String = "text/plain; charset=us-ascii") {
        self.range = range
        let slice = bytes[range]
        let header: HeaderSection
        do {
            header = try HeaderSection(parsing: slice, maximumSize: range.count)
        } catch {
            preconditionFailure("a header section with maximumSize equal to the input size cannot be too large")
        }
        self.header = header
        bodyRange = (range.lowerBound + header.bodyOffset)..<range.upperBound
        let typeField = header.firstField(named: "Content-Type")
        var contentType = typeField.map { ParameterizedValue(parsing: $0.unfoldedValue) }
        if let parsed = contentType, !parsed.value.contains("/") {
            contentType = nil
        }
        self.contentType = contentType ?? ParameterizedValue(parsing: Array(defaultType.utf8))
        contentDisposition = header.firstField(named: "Content-Disposition").map { ParameterizedValue(parsing: $0.unfoldedValue) }
        transferEncoding = header.firstField(named: "Content-Transfer-Encoding").flatMap {
            ContentTransferEncoding(headerValue: String(decoding: $0.unfoldedValue, as: UTF8.self))
        }

        var children: [MIMEEntity] = []
        var missingClose = false
        let mediaType = self.contentType.value
        let isIdentity = transferEncoding == nil || transferEncoding == .sevenBit || transferEncoding == .eightBit
            || transferEncoding == .binary
        if depth < Self.maximumDepth {
            // A multipart body is split whatever its Content-Transfer-Encoding is, because RFC 2045 allows
            // only the identity encodings there and readers ignore any other.
            if mediaType.hasPrefix("multipart/"), let boundary = self.contentType.parameter("boundary"), !boundary.isEmpty {
                let parts = MultipartSplitter.split(bytes, body: bodyRange, boundary: Array(boundary.utf8))
                // Parts of a digest without Content-Type are messages (RFC 2046 section 5.1.5).
                let childType = mediaType == "multipart/digest" ? "message/rfc822" : "text/plain; charset=us-ascii"
                children = parts.ranges.map { MIMEEntity(parsing: bytes, range: $0, depth: depth + 1, defaultType: childType) }
                missingClose = !parts.hasClosingDelimiter
            } else if (mediaType == "message/rfc822" || mediaType == "message/global") && isIdentity {
                children = [MIMEEntity(parsing: bytes, range: bodyRange, depth: depth + 1)]
            }
        }
        self.children = children
        isMissingClosingDelimiter = missingClose
    }

    /// Returns every entity in depth-first order, starting with this one: the order of Python's `Message.walk()`.
    public func walk() -> [MIMEEntity] {
        [self] + children.flatMap { $0.walk() }
    }
}

/// Splitting of a multipart body at its delimiter lines (RFC 2046 section 5.1.1).
enum MultipartSplitter {
    struct Result {
        var ranges: [Range<Int>] = []
        var hasClosingDelimiter = false
    }

    /// Returns the ranges of the body parts. A part ends before the line end that precedes the next
    /// delimiter, because that line end belongs to the delimiter. Empty parts, between two adjacent
    /// delimiter lines, are left out as Python's email package leaves them out.
    static func split(_ bytes: [UInt8], body: Range<Int>, boundary: [UInt8]) -> Result {
        var result = Result()
        var partStart: Int?
        var lineStart = body.lowerBound
        while lineStart < body.upperBound {
            var lineEnd = lineStart
            while lineEnd < body.upperBound && bytes[lineEnd] != 10 { lineEnd += 1 }
            let nextLine = min(lineEnd + 1, body.upperBound)
            if let kind = delimiterKind(bytes, lineStart..<lineEnd, boundary: boundary) {
                if let start = partStart {
                    let end = max(start, lineEndStart(bytes, before: lineStart, limit: start))
                    if end > start { result.ranges.append(start..<end) }
                }
                if kind == .close {
                    result.hasClosingDelimiter = true
                    return result
                }
                partStart = nextLine
            }
            lineStart = nextLine
        }
        if let start = partStart {
            result.ranges.append(start..<body.upperBound)
        }
        return result
    }

    private enum Kind { case open, close }

    /// Returns the offset where the line end before `lineStart` begins: CR LF or LF.
    private static func lineEndStart(_ bytes: [UInt8], before lineStart: Int, limit: Int) -> Int {
        var start = lineStart
        if start > limit && bytes[start - 1] == 10 { start -= 1 }
        if start > limit && bytes[start - 1] == 13 { start -= 1 }
        return start
    }

    private static func delimiterKind(_ bytes: [UInt8], _ line: Range<Int>, boundary: [UInt8]) -> Kind? {
        let prefixLength = 2 + boundary.count
        guard line.count >= prefixLength, bytes[line.lowerBound] == UInt8(ascii: "-"),
              bytes[line.lowerBound + 1] == UInt8(ascii: "-"),
              bytes[(line.lowerBound + 2)..<(line.lowerBound + prefixLength)].elementsEqual(boundary)
        else { return nil }
        var rest = bytes[(line.lowerBound + prefixLength)..<line.upperBound]
        var kind = Kind.open
        if rest.starts(with: [UInt8(ascii: "-"), UInt8(ascii: "-")]) {
            kind = .close
            rest = rest.dropFirst(2)
        }
        // Transport padding: only white space may follow, and a CR before the LF.
        guard rest.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) else { return nil }
        return kind
    }
}

/// A parsed message: its bytes and its MIME tree, with decoding of bodies and values.
public struct MIMEMessage: Sendable {
    /// The message as given.
    public let bytes: [UInt8]
    /// The top-level entity.
    public let root: MIMEEntity

    /// Parses the MIME structure of `bytes`. Parsing does not throw: a multipart body without a usable
    /// boundary, or nested deeper than `MIMEEntity.maximumDepth`, is kept as the body of a leaf.
    public init(parsing bytes: [UInt8]) {
        self.bytes = bytes
        root = MIMEEntity(parsing: bytes, range: 0..<bytes.count, depth: 0)
    }

    /// Returns the message written back from its tree: each entity's header fields from their ranges, the
    /// bytes between them, and each child in place. For an unmodified message the result is `bytes`,
    /// byte for byte.
    public func serialized() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        write(root, into: &output)
        return output
    }

    private func write(_ entity: MIMEEntity, into output: inout [UInt8]) {
        let base = entity.range.lowerBound
        var position = base
        if let mbox = entity.header.mboxFromLine {
            output += bytes[(base + mbox.lowerBound)..<(base + mbox.upperBound)]
            position = base + mbox.upperBound
        }
        for field in entity.header.fields {
            output += bytes[position..<(base + field.range.lowerBound)]
            output += bytes[(base + field.range.lowerBound)..<(base + field.range.upperBound)]
            position = base + field.range.upperBound
        }
        for child in entity.children {
            output += bytes[position..<child.range.lowerBound]
            write(child, into: &output)
            position = child.range.upperBound
        }
        output += bytes[position..<entity.range.upperBound]
    }

    /// Returns the body of a leaf entity with its transfer encoding removed.
    public func decodedBody(of entity: MIMEEntity) -> [UInt8] {
        let body = bytes[entity.bodyRange]
        switch entity.transferEncoding {
        case .base64?: return Base64Decoder.decode(body)
        case .quotedPrintable?: return QuotedPrintableDecoder.decode(body)
        default: return Array(body)
        }
    }

    /// Returns the text of a text entity, decoded from its transfer encoding and its charset, or nil when
    /// iconv does not know the charset.
    public func text(of entity: MIMEEntity) -> String? {
        Charset.decode(decodedBody(of: entity), from: entity.contentType.parameter("charset") ?? "us-ascii")
    }

    /// Returns the unfolded value of the first field named `name` in `entity`, with RFC 2047 encoded
    /// words decoded, or nil when there is no such field.
    public func fieldValue(_ name: String, in entity: MIMEEntity) -> String? {
        guard let field = entity.header.firstField(named: name) else { return nil }
        return EncodedWord.decode(String(decoding: field.unfoldedValue, as: UTF8.self))
    }
}
