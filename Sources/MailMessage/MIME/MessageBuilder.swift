import Foundation

/// A message being composed: addresses, subject, text and HTML bodies, inline images and attachments.
/// `build()` checks it and returns a `ComposedMessage` that can be written.
///
/// The structure follows what mail readers expect. Text alone is text/plain, and text with HTML is
/// multipart/alternative. Inline images go with the HTML in multipart/related, and attachments put all
/// of that in multipart/mixed. In `.uuencode` mode there is no MIME structure: attachments are uuencoded
/// after the text in one text/plain body.
public struct MessageBuilder: Sendable {
    /// The form that attachments take.
    public enum AttachmentMode: Sendable {
        /// MIME parts with Content-Disposition (RFC 2183).
        case mime
        /// uuencoded blocks after the text, for old readers.
        case uuencode
    }

    /// Priority fields: X-Priority, which most clients read, and Importance (RFC 2156).
    public enum Priority: Sendable {
        case high, normal, low
    }

    /// The field that a copy to the sender goes into.
    public enum CopyToSelf: Sendable {
        case to, cc, bcc
    }

    public var from: [MailAddress] = []
    /// The Sender field, needed when there are several From addresses.
    public var sender: MailAddress?
    public var to: [MailAddress] = []
    public var cc: [MailAddress] = []
    /// Blind copies: they get the message, but the written message lists them only on request.
    public var bcc: [MailAddress] = []
    public var replyTo: [MailAddress] = []
    public var subject: String?
    /// The Date field. Default: the time of `build()`, with the local time zone's offset.
    public var date: Date?
    /// The Message-ID with angle brackets. Default: a random ID at the domain of the first From address.
    public var messageID: String?
    /// Message IDs, with angle brackets, of the message this one replies to.
    public var inReplyTo: [String] = []
    public var references: [String] = []
    /// Further fields, written as unstructured text in the order given.
    public var customFields: [(name: String, value: String)] = []
    /// The plain text body. Line ends may be LF or CR LF.
    public var text: String = ""
    /// Text appended after a line of "-- ", the signature separator that mail readers recognize.
    public var signature: String?
    /// An HTML alternative to the text.
    public var html: String?
    /// Images that the HTML shows with `cid:` URLs.
    public var inlineImages: [Attachment] = []
    public var attachments: [Attachment] = []
    public var attachmentMode: AttachmentMode = .mime
    public var priority: Priority?
    /// Whether to ask for a read receipt (Disposition-Notification-To, RFC 8098) to the first From address.
    public var requestsReadReceipt = false
    public var copyToSelf: CopyToSelf?
    /// The charset for the text and HTML. A text that the charset cannot represent is sent as UTF-8, with
    /// a warning in `ComposedMessage.warnings`.
    public var charset = "UTF-8"
    /// Whether 8bit text may be sent as it is, which needs a server that offers 8BITMIME (RFC 6152).
    /// Default: false, so text that is not ASCII becomes quoted-printable or base64.
    public var allows8bit = false

    /// Creates an empty message.
    public init() {}

    /// Returns the message ready to be written.
    ///
    /// - Throws: `MessageBuildError.missingFrom` without a From address, `.invalidHeader` when a value
    ///   contains CR, LF or NUL or a custom field name is invalid, `.fileUnreadable` when a file to attach
    ///   is missing or unreadable, `.unknownCharset` when iconv does not know `charset`.
    public func build() throws(MessageBuildError) -> ComposedMessage {
        guard let firstFrom = from.first else { throw MessageBuildError.missingFrom }
        var context = BuildContext(allows8bit: allows8bit)
        let root = try buildBody(context: &context)
        var to = to, cc = cc, bcc = bcc
        switch copyToSelf {
        case .to?: to.append(firstFrom)
        case .cc?: cc.append(firstFrom)
        case .bcc?: bcc.append(firstFrom)
        case nil: break
        }
        let messageID = self.messageID ?? MessageIdentifiers.generate(domain: firstFrom.domain)
        var fields: [OutgoingHeaderField] = []
        var bccField: OutgoingHeaderField?
        do throws(HeaderValueError) {
            fields.append(try .structured("Date", words: MessageDate.format(date ?? Date()).split(separator: " ").map(String.init)))
            fields.append(try .addresses("From", from))

            if let sender { fields.append(try .addresses("Sender", [sender])) }
            if !replyTo.isEmpty { fields.append(try .addresses("Reply-To", replyTo)) }
            if !to.isEmpty { fields.append(try .addresses("To", to)) }
            if !cc.isEmpty { fields.append(try .addresses("Cc", cc)) }
            if !bcc.isEmpty { bccField = try .addresses("Bcc", bcc) }
            if let subject { fields.append(try .text("Subject", subject)) }

            fields.append(try .structured("Message-ID", words: [MessageIdentifiers.validated(messageID, fieldName: "Message-ID")]))
            if !inReplyTo.isEmpty {
                let ids = try inReplyTo.map { (id: String) throws(HeaderValueError) in try MessageIdentifiers.validated(id, fieldName: "In-Reply-To") }
                fields.append(try .structured("In-Reply-To", words: ids))
            }
            if !references.isEmpty {
                let ids = try references.map { (id: String) throws(HeaderValueError) in try MessageIdentifiers.validated(id, fieldName: "References") }
                fields.append(try .structured("References", words: ids))
            }

            if let priority {
                let (xPriority, importance) = switch priority {
                case .high: ("1 (Highest)", "high")
                case .normal: ("3 (Normal)", "normal")
                case .low: ("5 (Lowest)", "low")
                }
                fields.append(try .text("X-Priority", xPriority))
                fields.append(try .text("Importance", importance))
            }
            if requestsReadReceipt {
                fields.append(try .addresses("Disposition-Notification-To", [firstFrom]))
            }
            for (name, value) in customFields {
                if Self.reservedFieldNames.contains(name.lowercased()) || name.lowercased().hasPrefix("content-") {
                    throw HeaderValueError(fieldName: name, reason: .reservedFieldName)
                }
                fields.append(try .text(name, value))
            }
            fields.append(try .structured("MIME-Version", words: ["1.0"]))
        } catch {
            throw MessageBuildError.invalidHeader(error)
        }
        let recipients = Self.unique(to + cc + bcc)
        return ComposedMessage(
            fields: fields, bccField: bccField, root: root, envelopeSender: sender ?? firstFrom,
            envelopeRecipients: recipients, messageID: MessageIdentifiers.bracketed(messageID), warnings: context.warnings)
    }

    /// Fields that the builder writes from its properties. Content-* fields are reserved too.
    private static let reservedFieldNames: Set<String> = [
        "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "in-reply-to",
        "references", "mime-version", "x-priority", "importance", "disposition-notification-to",
    ]

    private static func unique(_ addresses: [MailAddress]) -> [MailAddress] {
        var seen: Set<String> = []
        return addresses.filter { seen.insert($0.addrSpec.lowercased()).inserted }
    }

    // MARK: Body structure

    private func buildBody(context: inout BuildContext) throws(MessageBuildError) -> MIMEPart {
        var fullText = text
        if let signature {
            if !fullText.isEmpty && !fullText.hasSuffix("\n") { fullText += "\n" }
            fullText += "-- \n" + signature
        }
        if attachmentMode == .uuencode {
            var segments: [MIMEPart.Segment] = [.bytes(try context.encodeText(fullText, charset: charset))]
            var summary = ContentSummary()
            if case .bytes(let bytes) = segments[0] { summary.add(bytes) }
            for attachment in inlineImages + attachments {
                let source = try context.segment(for: attachment)
                segments.append(.bytes(Array("\n".utf8)))
                segments.append(.uuencoded(source, fileName: attachment.fileName))
            }
            let encoding = ContentTransferEncoding.choose(for: summary, isText: true, allows8bit: allows8bit)
            return MIMEPart(
                mediaType: "text/plain", parameters: [("charset", context.charsetUsed)], transferEncoding: encoding == .base64 ? .quotedPrintable : encoding,
                isText: true, content: segments)
        }

        var body = try context.textPart(fullText, subtype: "plain", charset: charset)
        if let html {
            var htmlPart = try context.textPart(html, subtype: "html", charset: charset)
            if !inlineImages.isEmpty {
                var related = [htmlPart]
                for image in inlineImages {
                    related.append(try context.attachmentPart(image, disposition: "inline"))
                }
                htmlPart = context.multipart("related", related)
            }
            body = context.multipart("alternative", [body, htmlPart])
        } else if !inlineImages.isEmpty {
            var related = [body]
            for image in inlineImages {
                related.append(try context.attachmentPart(image, disposition: "inline"))
            }
            body = context.multipart("related", related)
        }
        if !attachments.isEmpty {
            var mixed = [body]
            for attachment in attachments {
                mixed.append(try context.attachmentPart(attachment, disposition: "attachment"))
            }
            body = context.multipart("mixed", mixed)
        }
        return body
    }
}

/// State while a message is built: warnings, and the content that boundaries must not occur in.
struct BuildContext {
    let allows8bit: Bool
    var warnings: [String] = []
    var charsetUsed = "UTF-8"

    init(allows8bit: Bool) {
        self.allows8bit = allows8bit
    }

    /// Converts text to the charset, or to UTF-8 with a warning when the charset cannot represent it.
    mutating func encodeText(_ text: String, charset: String) throws(MessageBuildError) -> [UInt8] {
        let lower = charset.lowercased()
        if lower == "utf-8" || lower == "utf8" {
            charsetUsed = "UTF-8"
            return Array(text.utf8)
        }
        guard Charset.isSupported(charset) else { throw MessageBuildError.unknownCharset(charset) }
        if let bytes = Charset.encode(text, to: charset) {
            charsetUsed = charset
            return bytes
        }
        warnings.append("The text cannot be represented in \(charset), so it is sent as UTF-8.")
        charsetUsed = "UTF-8"
        return Array(text.utf8)
    }

    mutating func textPart(_ text: String, subtype: String, charset: String) throws(MessageBuildError) -> MIMEPart {
        let bytes = try encodeText(text, charset: charset)
        let encoding = ContentTransferEncoding.choose(for: bytes, isText: true, allows8bit: allows8bit)
        return MIMEPart(
            mediaType: "text/" + subtype, parameters: [("charset", charsetUsed)], transferEncoding: encoding,
            isText: true, content: [.bytes(bytes)])
    }

    /// Checks that a file can be read and returns the segment for an attachment.
    func segment(for attachment: Attachment) throws(MessageBuildError) -> MIMEPart.Segment {
        switch attachment.source {
        case .data(let bytes):
            return .bytes(bytes)
        case .file(let path):
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw MessageBuildError.fileUnreadable(path: path, reason: "it does not exist")
            }
            guard !isDirectory.boolValue else {
                throw MessageBuildError.fileUnreadable(path: path, reason: "it is a directory")
            }
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw MessageBuildError.fileUnreadable(path: path, reason: "permission denied")
            }
            return .file(path: path)
        }
    }

    mutating func attachmentPart(_ attachment: Attachment, disposition: String) throws(MessageBuildError) -> MIMEPart {
        let segment = try segment(for: attachment)
        var isText = attachment.mediaType.lowercased().hasPrefix("text/")
        let isMessage = attachment.mediaType.lowercased() == "message/rfc822"
        var encoding = ContentTransferEncoding.base64
        if isText || isMessage {
            var summary = ContentSummary()
            switch segment {
            case .bytes(let bytes): summary.add(bytes)
            case .file(let path):
                do {
                    try MessageWriter.readFile(path) { summary.add($0) }
                } catch let error as MessageBuildError {
                    throw error
                } catch {
                    throw MessageBuildError.fileUnreadable(path: path, reason: "\(error)")
                }
            case .uuencoded: break
            }
            encoding = ContentTransferEncoding.choose(for: summary, isText: true, allows8bit: allows8bit)
            if isText && (summary.hasNUL || summary.hasBareCarriageReturn) {
                // A NUL or a CR outside CR LF means the content is not text, whatever its file name
                // suggests, such as a binary .log file. Its line ends must not become CR LF, so it is
                // sent as it is, in base64.
                isText = false
                encoding = .base64
            }
            if isMessage {
                let isClean = !summary.hasNUL && !summary.hasBareCarriageReturn && summary.maximumLineLength <= 998
                if isClean && summary.nonASCIICount == 0 {
                    encoding = .sevenBit
                } else if isClean && allows8bit {
                    encoding = .eightBit
                } else {
                    // NOTE: RFC 2046 allows only 7bit, 8bit and binary for message/rfc822. An attached message
                    // that is not 7-bit clean is base64-encoded here, which most readers still open.
                    encoding = .base64
                }
            }
        }
        var parameters = attachment.parameters
        if !parameters.contains(where: { $0.name.lowercased() == "name" }) && !isMessage {
            parameters.append(("name", attachment.fileName))
        }
        var fields: [OutgoingHeaderField] = []
        do {
            try OutgoingHeaderField.validate(mediaType: attachment.mediaType, fieldName: "Content-Type")
            fields.append(try .parameterized("Content-Disposition", disposition, parameters: [("filename", attachment.fileName)]))
            if disposition == "inline" || attachment.contentID != nil {
                let contentID = attachment.contentID ?? MessageIdentifiers.generate(domain: "inline.invalid")
                fields.append(try .structured("Content-ID", words: [MessageIdentifiers.validated(contentID, fieldName: "Content-ID")]))
            }
        } catch {
            throw MessageBuildError.invalidHeader(error)
        }
        return MIMEPart(
            mediaType: attachment.mediaType, parameters: parameters, transferEncoding: encoding,
            isText: isText, fields: fields, content: [segment])
    }

    /// Returns a multipart part with a random boundary that occurs in none of the parts.
    func multipart(_ subtype: String, _ parts: [MIMEPart]) -> MIMEPart {
        while true {
            let boundary = MessageIdentifiers.boundary()
            if !parts.contains(where: { Self.contains($0, "--" + boundary) }) {
                return MIMEPart(multipart: subtype, parts: parts, boundary: boundary)
            }
        }
    }

    /// Returns whether `delimiter` can occur in the written part. Quoted-printable and base64 output cannot
    /// contain the "=_" that every boundary starts with, so only 7bit, 8bit and binary content is searched.
    static func contains(_ part: MIMEPart, _ delimiter: String) -> Bool {
        let needle = Array(delimiter.utf8)
        switch part.body {
        case .multipart(let children):
            return part.boundary.contains(delimiter.dropFirst(2)) || delimiter.contains(part.boundary)
                || children.contains { contains($0, delimiter) }
        case .content(let segments):
            guard !part.transferEncoding.is7bit || part.transferEncoding == .sevenBit else { return false }
            for segment in segments {
                switch segment {
                case .bytes(let bytes):
                    if ByteSearch.contains(bytes, needle) { return true }
                case .file(let path):
                    if (try? ByteSearch.fileContains(path, needle)) ?? true { return true }
                case .uuencoded:
                    // Only the uuencode mode makes these segments, and it writes no multipart part.
                    continue
                }
            }
            return false
        }
    }
}

/// Search for a byte sequence in memory or in a file read in chunks.
enum ByteSearch {
    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == first && haystack[index..<index + needle.count].elementsEqual(needle) {
                return true
            }
            index += 1
        }
        return false
    }

    static func fileContains(_ path: String, _ needle: [UInt8]) throws -> Bool {
        var tail: [UInt8] = []
        var found = false
        try MessageWriter.readFile(path) { chunk in
            guard !found else { return }
            let window = tail + chunk
            if contains(window, needle) { found = true }
            tail = Array(window.suffix(needle.count - 1))
        }
        return found
    }
}
