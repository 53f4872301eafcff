import Foundation

/// A message that `MessageBuilder` built: header fields, a MIME part tree and the envelope, ready to be
/// written in chunks.
public struct ComposedMessage: Sendable {
    /// The header fields in order, without Bcc and without the content fields of the root part.
    public let fields: [OutgoingHeaderField]
    /// The Bcc field, written only on request.
    public let bccField: OutgoingHeaderField?
    /// The body: one part, or a multipart tree.
    public var root: MIMEPart
    /// The address for MAIL FROM: the Sender, or else the first From address.
    public let envelopeSender: MailAddress
    /// Every To, Cc and Bcc address once, in that order, compared without case.
    public let envelopeRecipients: [MailAddress]
    /// The Message-ID with angle brackets.
    public let messageID: String
    /// Problems that did not stop the build, such as text sent as UTF-8 because the requested charset
    /// cannot represent it.
    public let warnings: [String]

    init(
        fields: [OutgoingHeaderField], bccField: OutgoingHeaderField?, root: MIMEPart, envelopeSender: MailAddress,
        envelopeRecipients: [MailAddress], messageID: String, warnings: [String]
    ) {
        self.fields = fields
        self.bccField = bccField
        self.root = root
        self.envelopeSender = envelopeSender
        self.envelopeRecipients = envelopeRecipients
        self.messageID = messageID
        self.warnings = warnings
    }

    /// Whether some part is 8bit or binary, so that sending needs the server's 8BITMIME.
    public var requires8BITMIME: Bool {
        func check(_ part: MIMEPart) -> Bool {
            switch part.body {
            case .multipart(let children): return children.contains(where: check)
            case .content: return !part.transferEncoding.is7bit
            }
        }
        return check(root)
    }

    /// Returns the message with 8bit parts re-encoded as quoted-printable or base64, for a server without
    /// 8BITMIME. See `MIMEPart.downgradedTo7bit()`.
    public func downgradedTo7bit() -> ComposedMessage {
        var message = self
        message.root = root.downgradedTo7bit()
        return message
    }

    /// Writes the message to `sink` in chunks of about `chunkSize` bytes, with CR LF line ends.
    ///
    /// Attached files are read while writing, 57 KiB at a time, so memory stays bounded whatever their size.
    ///
    /// - Parameter includingBcc: Whether to write the Bcc field. Default: false, which is the form to hand to
    ///   an SMTP server. Pass true for a program that removes Bcc itself, such as `outbox send -t`.
    /// - Throws: `MessageBuildError.fileUnreadable` when an attached file cannot be read, and any error
    ///   that `sink` throws.
    public func write(includingBcc: Bool = false, chunkSize: Int = 256 * 1024, to sink: @escaping ([UInt8]) throws -> Void) throws {
        var writer = MessageWriter(chunkSize: chunkSize, sink: sink)
        var leading = fields
        if includingBcc, let bccField {
            let index = leading.firstIndex { $0.name == "Subject" } ?? leading.count
            leading.insert(bccField, at: index)
        }
        try writer.writePart(root, leadingFields: leading)
        try writer.flush()
    }

    /// Writes the message to a file handle, as `write(includingBcc:chunkSize:to:)` does.
    public func write(includingBcc: Bool = false, to handle: FileHandle) throws {
        try write(includingBcc: includingBcc) { chunk in try handle.write(contentsOf: chunk) }
    }

    /// Returns the whole message as bytes. Use `write` for messages with large attachments.
    public func serialized(includingBcc: Bool = false) throws -> [UInt8] {
        var result: [UInt8] = []
        // The sink runs synchronously inside write, so the captured buffer is not shared.
        let box = ByteBox()
        try write(includingBcc: includingBcc) { box.bytes += $0 }
        result = box.bytes
        return result
    }
}

private final class ByteBox {
    var bytes: [UInt8] = []
}

/// Message IDs and MIME boundaries.
enum MessageIdentifiers {
    private static let alphanumerics = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    static func randomString(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return String(decoding: (0..<count).map { _ in alphanumerics.randomElement(using: &generator)! }, as: UTF8.self)
    }

    /// Returns a new ID `random@domain` of 24 random letters and digits (about 143 bits). A domain that is
    /// not ASCII is converted to A-labels, and one that cannot be becomes `localhost.invalid`.
    static func generate(domain: String) -> String {
        var idDomain = domain
        if !domain.utf8.allSatisfy({ $0 < 0x80 }) {
            idDomain = (try? IDNA.toASCII(domain)) ?? "localhost.invalid"
        }
        return randomString(24) + "@" + idDomain
    }

    /// Returns an ID in angle brackets, adding them when missing.
    static func bracketed(_ id: String) -> String {
        id.hasPrefix("<") && id.hasSuffix(">") ? id : "<" + id + ">"
    }

    /// Returns `id` in angle brackets after checking that it is one msg-id of RFC 5322 section 3.6.4 in
    /// its common form: printable ASCII, no white space, no angle brackets inside and one "@" that is
    /// neither first nor last. A Content-ID may lack the "@", as in `<logo.png>`, because mail readers
    /// accept that and HTML refers to it as `cid:logo.png`.
    static func validated(_ id: String, fieldName: String) throws(HeaderValueError) -> String {
        let bracketed = bracketed(id)
        let inner = bracketed.utf8.dropFirst().dropLast()
        let isPrintable = inner.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
        let at = inner.firstIndex(of: UInt8(ascii: "@"))
        let hasOneAt = at != nil && inner.filter { $0 == UInt8(ascii: "@") }.count == 1
            && at != inner.startIndex && inner.index(after: at!) != inner.endIndex
        let needsAt = fieldName != "Content-ID"
        guard isPrintable && !inner.isEmpty && (hasOneAt || !needsAt) else {
            throw HeaderValueError(fieldName: fieldName, reason: .invalidMessageID(id))
        }
        return bracketed
    }

    /// Returns a boundary: "=_" followed by 28 random letters and digits. "=_" cannot occur in
    /// quoted-printable or base64 output, so only 7bit and 8bit content needs to be searched for it.
    static func boundary() -> String {
        "=_" + randomString(28)
    }
}

/// Dates in the form of RFC 5322 section 3.3.
public enum MessageDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Returns `date` in the local time zone as `Fri, 04 Dec 2026 19:30:00 +0100`.
    public static func format(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        let offsetMinutes = parts.tm_gmtoff / 60
        let sign = offsetMinutes < 0 ? "-" : "+"
        let absolute = abs(offsetMinutes)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(Int(parts.tm_mday))) \(months[Int(parts.tm_mon)]) \(Int(parts.tm_year) + 1900) "
            + "\(two(Int(parts.tm_hour))):\(two(Int(parts.tm_min))):\(two(Int(parts.tm_sec))) "
            + "\(sign)\(two(absolute / 60))\(two(absolute % 60))"
    }
}
