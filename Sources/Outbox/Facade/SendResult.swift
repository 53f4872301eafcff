import Foundation
import SMTPCore

/// The outcome of a message for one recipient.
public struct RecipientOutcome: Sendable, Hashable, CustomStringConvertible {
    /// Whether the recipient got the message, and whether a failure may pass on a later try.
    public enum Status: Sendable, Hashable {
        /// The server or program accepted the message for this recipient.
        case accepted
        /// Not delivered now, and a later try may succeed: a 4xx reply, a lost connection, a timeout.
        case temporaryFailure
        /// Not delivered, and trying the same message again will fail too: a 5xx reply, or an
        /// address or message that cannot be sent.
        case permanentFailure
    }

    /// The address as it went into the envelope (`RCPT TO`).
    public let address: String
    /// Whether the recipient accepted the message.
    public let status: Status
    /// The server's reply to this recipient, or nil when no reply names it, as when the transport
    /// is not SMTP or the session failed before RCPT.
    public let reply: SMTPReply?

    /// Creates an outcome, for a transport of your own.
    public init(address: String, status: Status, reply: SMTPReply? = nil) {
        self.address = address
        self.status = status
        self.reply = reply
    }

    /// Whether `status` is `accepted`.
    public var isAccepted: Bool { status == .accepted }

    public var description: String {
        let state = switch status {
        case .accepted: "accepted"
        case .temporaryFailure: "temporary failure"
        case .permanentFailure: "permanent failure"
        }
        return reply.map { "<\(address)>: \(state) (\($0))" } ?? "<\(address)>: \(state)"
    }
}

/// The outcome of a message that was handed over: each recipient's outcome, and the final reply.
///
/// A message is handed over when at least one recipient accepted it. The recipients that the
/// server rejected are listed with `Status.temporaryFailure` or `.permanentFailure`, and no error
/// is thrown for them, so check `rejected` when every recipient matters.
public struct SendResult: Sendable, Hashable {
    /// One outcome per envelope recipient, in envelope order.
    public let recipients: [RecipientOutcome]
    /// The server's reply to the end of the message data, or nil for transports that are not SMTP.
    public let reply: SMTPReply?
    /// The message's Message-ID, with angle brackets, when the message was built with
    /// `MessageBuilder`.
    public internal(set) var messageID: String?
    /// The file the message was written to, for `FileTransport` only.
    public let fileURL: URL?

    /// Creates a result, for a transport of your own.
    public init(recipients: [RecipientOutcome], reply: SMTPReply? = nil, messageID: String? = nil, fileURL: URL? = nil) {
        self.recipients = recipients
        self.reply = reply
        self.messageID = messageID
        self.fileURL = fileURL
    }

    /// The recipients that accepted the message.
    public var accepted: [RecipientOutcome] { recipients.filter(\.isAccepted) }
    /// The recipients that did not.
    public var rejected: [RecipientOutcome] { recipients.filter { !$0.isAccepted } }

    /// Returns the result of an SMTP transaction in which at least one recipient accepted the message.
    init(_ transaction: TransactionResult) {
        recipients = transaction.recipients.map { result in
            let status: RecipientOutcome.Status = if result.isAccepted {
                .accepted
            } else if result.reply.isPermanentNegative {
                .permanentFailure
            } else {
                .temporaryFailure
            }
            return RecipientOutcome(address: result.address, status: status, reply: result.reply)
        }
        reply = transaction.reply
        messageID = nil
        fileURL = nil
    }

    /// Returns a result in which every recipient accepted the message, for transports without replies.
    static func allAccepted(_ envelope: Envelope, fileURL: URL? = nil) -> SendResult {
        SendResult(
            recipients: envelope.recipients.map { RecipientOutcome(address: $0.address, status: .accepted) },
            fileURL: fileURL)
    }
}
