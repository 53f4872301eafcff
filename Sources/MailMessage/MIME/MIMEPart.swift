/// One MIME entity of a composed message: its content fields and its body.
///
/// A leaf part has content, which the writer encodes with `transferEncoding` while it writes. A multipart
/// part has child parts separated by `boundary`.
public struct MIMEPart: Sendable {
    /// The content of a leaf part, which is the concatenation of its segments.
    public enum Segment: Sendable {
        /// Bytes in memory.
        case bytes([UInt8])
        /// The contents of a file, read in chunks while the message is written.
        case file(path: String)
        /// The contents of `source`, uuencoded as `fileName`, for attachments in the legacy plain mode.
        indirect case uuencoded(Segment, fileName: String)
    }

    /// The body of a part.
    public enum Body: Sendable {
        /// Content that is written with the part's transfer encoding.
        case content([Segment])
        /// Child parts of a multipart part.
        case multipart([MIMEPart])
    }

    /// The media type, such as `text/plain` or `multipart/mixed`, without parameters.
    public var mediaType: String
    /// Content-Type parameters other than `boundary`, such as `charset`, in order.
    public var parameters: [(name: String, value: String)]
    /// The transfer encoding of a leaf part's content. Multipart parts ignore it.
    public var transferEncoding: ContentTransferEncoding
    /// Whether the content is text whose line ends are CR LF or LF, which matters for the encoders: line
    /// ends of text become CR LF, and quoted-printable keeps them as hard line breaks.
    public var isText: Bool
    /// Further fields, such as Content-Disposition and Content-ID.
    public var fields: [OutgoingHeaderField]
    /// The content or the child parts.
    public var body: Body
    /// The boundary of a multipart part. `MessageBuilder` sets a random one that does not occur in the
    /// content.
    public var boundary: String

    /// Creates a leaf part.
    public init(
        mediaType: String, parameters: [(name: String, value: String)] = [], transferEncoding: ContentTransferEncoding,
        isText: Bool, fields: [OutgoingHeaderField] = [], content: [Segment]
    ) {
        self.mediaType = mediaType
        self.parameters = parameters
        self.transferEncoding = transferEncoding
        self.isText = isText
        self.fields = fields
        self.body = .content(content)
        self.boundary = ""
    }

    /// Creates a multipart part with the subtype `subtype`, such as `mixed`.
    public init(multipart subtype: String, parts: [MIMEPart], boundary: String) {
        self.mediaType = "multipart/" + subtype
        self.parameters = []
        self.transferEncoding = .sevenBit
        self.isText = false
        self.fields = []
        self.body = .multipart(parts)
        self.boundary = boundary
    }

    /// Returns the Content-Type and Content-Transfer-Encoding fields followed by `fields`.
    func contentFields() throws(HeaderValueError) -> [OutgoingHeaderField] {
        var result: [OutgoingHeaderField] = []
        switch body {
        case .multipart:
            result.append(try .parameterized("Content-Type", mediaType, parameters: parameters.map { ($0.name, $0.value) } + [("boundary", boundary)]))
        case .content:
            // A multipart leaf only comes from copying a parsed multipart body that has no parts, and its
            // parameters still contain its boundary.
            result.append(try .parameterized("Content-Type", mediaType, parameters: parameters.map { ($0.name, $0.value) }))
            result.append(try .structured("Content-Transfer-Encoding", words: [transferEncoding.rawValue]))
        }
        return result + fields
    }

    /// Returns the part with every 8bit or binary leaf re-encoded: text as quoted-printable (or base64 when
    /// it is mostly non-ASCII, as `ContentTransferEncoding.choose` decides for text) and other content as
    /// base64, with Content-Transfer-Encoding relabelled. Use it for a server without 8BITMIME.
    ///
    /// Text in memory is measured again to choose, and text from files becomes quoted-printable.
    public func downgradedTo7bit() -> MIMEPart {
        var part = self
        switch body {
        case .multipart(let children):
            part.body = .multipart(children.map { $0.downgradedTo7bit() })
        case .content(let segments):
            guard !transferEncoding.is7bit else { return part }
            guard isText else {
                part.transferEncoding = .base64
                return part
            }
            var summary = ContentSummary()
            for case .bytes(let bytes) in segments {
                summary.add(bytes)
            }
            let choice = ContentTransferEncoding.choose(for: summary, isText: true)
            part.transferEncoding = choice == .base64 ? .base64 : .quotedPrintable
        }
        return part
    }
}
