import Foundation
import MailStore

/// Settings for the failure notices (bounces) sent to the sender of a message that failed.
public struct FailureNotices: Sendable, Hashable {
    /// The address the notices come from, such as `MAILER-DAEMON@host.example.org`.
    public var from: String
    /// The maximum number of notices sent to one address in an hour. Later failures within the hour
    /// are only recorded in the store. Default: 5.
    public var maximumPerHour: Int

    public init(from: String, maximumPerHour: Int = 5) {
        self.from = from
        self.maximumPerHour = maximumPerHour
    }
}

/// Builds a failure notice: a multipart/report message (RFC 6522) with a human-readable part, a
/// message/delivery-status part (RFC 3464) and the header section of the failed message.
struct FailureNotice {
    let settings: FailureNotices
    let reportingHost: String

    /// Returns the notice to queue. It has the null sender, so that a notice never causes another.
    func make(for message: StoredMessage, originalHeader: [UInt8], now: Date = Date()) -> (NewMessage, [UInt8]) {
        let boundary = "=_outbox_report_\(UUID().uuidString)"
        let failed = message.recipients.filter { $0.state == .failed }
        var text = "This is the mail system at \(reportingHost).\r\n\r\n"
        text += "Your message could not be delivered to \(failed.count == 1 ? "this recipient" : "these recipients"):\r\n\r\n"
        for recipient in failed {
            let line = "  <\(Self.printable(recipient.address))>: \(Self.printable(Self.reason(recipient)))"
            text += Self.folded(line, indent: "    ") + "\r\n"
        }
        text += "\r\nThe header of your message follows.\r\n"

        var status = "Reporting-MTA: dns; \(reportingHost)\r\n"
        status += "Arrival-Date: \(Self.rfc5322Date(message.created))\r\n"
        for recipient in failed {
            status += "\r\nFinal-Recipient: rfc822; \(Self.printable(recipient.address))\r\n"
            status += "Action: failed\r\n"
            status += "Status: \(Self.statusCode(recipient))\r\n"
            if let reply = recipient.reply {
                status += Self.folded("Diagnostic-Code: smtp; \(Self.printable(reply.description))", indent: " ") + "\r\n"
            }
        }

        let messageID = "<\(UUID().uuidString.lowercased())@\(reportingHost)>"
        var content = "From: Mail Delivery System <\(settings.from)>\r\n"
        content += "To: <\(message.sender)>\r\n"
        content += "Subject: Undelivered mail returned to sender\r\n"
        content += "Date: \(Self.rfc5322Date(now))\r\n"
        content += "Message-ID: \(messageID)\r\n"
        content += "Auto-Submitted: auto-replied\r\n"
        content += "MIME-Version: 1.0\r\n"
        content += "Content-Type: multipart/report; report-type=delivery-status; boundary=\"\(boundary)\"\r\n"
        content += "\r\n--\(boundary)\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\(text)"
        content += "\r\n--\(boundary)\r\nContent-Type: message/delivery-status\r\n\r\n\(status)"
        content += "\r\n--\(boundary)\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        var bytes = Array(content.utf8) + originalHeader
        bytes += Array("\r\n--\(boundary)--\r\n".utf8)

        let notice = NewMessage(
            sender: "", recipients: [StoredRecipient(address: message.sender)], account: message.account,
            route: message.route, envelopeOptions: Self.noticeMarker, messageID: messageID,
            subject: "Undelivered mail returned to sender")
        return (notice, bytes)
    }

    /// The envelope option text that marks a stored message as a failure notice.
    static let noticeMarker = "failure-notice"

    private static func reason(_ recipient: StoredRecipient) -> String {
        recipient.reply?.description ?? recipient.error ?? "failed"
    }

    /// Returns the enhanced status code of the reply, or 5.0.0 when the reply has none.
    private static func statusCode(_ recipient: StoredRecipient) -> String {
        if let text = recipient.reply?.text, let first = text.split(separator: " ").first,
           first.split(separator: ".").count == 3, first.allSatisfy({ $0.isNumber || $0 == "." }) {
            return String(first)
        }
        return "5.0.0"
    }

    /// Replaces control characters, so that a reply or address cannot add lines to the notice.
    private static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
    }

    /// Returns `line` broken into lines of at most `width` characters, each after the first starting
    /// with `indent`, because a server reply can be far longer than the 998 octets that RFC 5322
    /// allows in a line. It breaks at a space, which the indent replaces, so that unfolding a field
    /// gives back the text.
    ///
    /// NOTE: a run of more than `width` characters without a space is broken where it reaches the
    /// width, and unfolding adds a space there.
    static func folded(_ line: String, indent: String, width: Int = 78) -> String {
        let characters = Array(line)
        var lines: [String] = []
        var start = 0
        var limit = width
        while characters.count - start > limit {
            let end = start + limit
            let space = characters[start..<end].lastIndex(of: " ").flatMap { $0 > start ? $0 : nil }
            lines.append(String(characters[start..<(space ?? end)]))
            start = space.map { $0 + 1 } ?? end
            limit = width - indent.count
        }
        lines.append(String(characters[start...]))
        return lines.joined(separator: "\r\n" + indent)
    }

    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, d MMM yyyy HH:mm:ss Z"
        return formatter.string(from: date)
    }
}
