extension MIMEMessage {
    /// Writes the message again with every leaf decoded and encoded anew, as `MessageBuilder` would
    /// choose: 7bit, quoted-printable or base64, or 8bit when `allows8bit` is true. Multipart bodies get
    /// new boundaries, and preambles and epilogues are dropped. Header fields other than Content-Type and
    /// Content-Transfer-Encoding are copied unchanged.
    ///
    /// With `allows8bit` false this is the downgrade for a server without 8BITMIME: the output is 7-bit in
    /// its bodies, while header fields keep any 8-bit bytes they had.
    ///
    /// - Throws: `HeaderValueError` when a Content-Type of the input cannot be written again, such as one
    ///   with an invalid media type.
    public func reencoded(allows8bit: Bool = false) throws -> [UInt8] {
        try reencoded(root, context: BuildContext(allows8bit: allows8bit))
    }

    /// Writes `entity` as a whole message. A message/rfc822 body is written from its entity already
    /// parsed in `root`, not parsed again, so the nesting stays within `MIMEEntity.maximumDepth`.
    private func reencoded(_ entity: MIMEEntity, context: BuildContext) throws -> [UInt8] {
        let part = try makePart(entity, context: context, isRoot: true)
        let leading = entity.header.fields.filter { !Self.isReplacedField($0) }.map(OutgoingHeaderField.copying)
        var output: [UInt8] = []
        let box = OutputBox()
        var writer = MessageWriter(chunkSize: 1 << 20) { box.bytes += $0 }
        try writer.writePart(part, leadingFields: leading)
        try writer.flush()
        output = box.bytes
        return output
    }

    private static func isReplacedField(_ field: HeaderField) -> Bool {
        field.hasName("Content-Type") || field.hasName("Content-Transfer-Encoding")
    }

    private func makePart(_ entity: MIMEEntity, context: BuildContext, isRoot: Bool) throws -> MIMEPart {
        let fields = isRoot ? [] : entity.header.fields.filter { !Self.isReplacedField($0) }.map(OutgoingHeaderField.copying)
        let parameters = entity.contentType.parameters.filter { $0.name != "boundary" }
        if entity.isMultipart && !entity.children.isEmpty {
            let subtype = String(entity.mediaType.dropFirst("multipart/".count))
            var part = context.multipart(subtype, try entity.children.map { try makePart($0, context: context, isRoot: false) })
            part.parameters = parameters
            part.fields = fields
            return part
        }
        if entity.isMultipart {
            // A multipart body without parts cannot be split, so it is copied with its parameters.
            // NOTE: such a body keeps its 8-bit bytes, if any, because RFC 2045 forbids encoding a multipart.
            let body = Array(bytes[entity.bodyRange])
            let isASCII = body.allSatisfy { $0 < 0x80 }
            return MIMEPart(
                mediaType: entity.mediaType, parameters: entity.contentType.parameters,
                transferEncoding: isASCII ? .sevenBit : .eightBit, isText: true, fields: fields, content: [.bytes(body)])
        }
        let mediaType = entity.mediaType
        try OutgoingHeaderField.validate(mediaType: mediaType, fieldName: "Content-Type")
        var content = decodedBody(of: entity)
        var encoding: ContentTransferEncoding
        if let inner = entity.children.first, entity.mediaType == "message/rfc822" {
            content = try reencoded(inner, context: context)
            var summary = ContentSummary()
            summary.add(content)
            let isClean = summary.nonASCIICount == 0 && !summary.hasNUL && !summary.hasBareCarriageReturn
                && summary.maximumLineLength <= 998
            encoding = isClean ? .sevenBit : (context.allows8bit ? .eightBit : .base64)
        } else {
            encoding = ContentTransferEncoding.choose(for: content, isText: mediaType.hasPrefix("text/"), allows8bit: context.allows8bit)
        }
        let part = MIMEPart(
            mediaType: mediaType, parameters: parameters, transferEncoding: encoding,
            isText: mediaType.hasPrefix("text/"), fields: fields, content: [.bytes(content)])
        return part
    }
}

private final class OutputBox {
    var bytes: [UInt8] = []
}
