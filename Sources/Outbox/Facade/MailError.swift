import SMTPClient
import SMTPCore

/// A message that was not handed over, with what a program needs to decide what to do next.
///
/// Check `isRetryable` to choose between trying later and giving up, `recipients` for the
/// addresses affected, and `reply` for the server's code, enhanced status code and text. Nothing
/// needs parsing from `description`, which is for people.
public struct MailError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure, for a `switch`.
    public enum Kind: Sendable, Hashable {
        /// The message cannot be built or sent as it is: a missing From, an unreadable
        /// attachment, a line over 998 octets, or a message over the server's SIZE limit.
        case invalidMessage
        /// An envelope address is unusable: none given, or one that fails the transport's checks.
        case invalidEnvelope
        /// The account's credentials provider threw.
        case credentialsUnavailable
        /// No connection could be made or kept: name resolution, refused or lost connection,
        /// timeout, or a protocol error.
        case connectionFailed
        /// TLS was required and is unavailable, or its handshake or certificate check failed.
        case tlsFailed
        /// The login was rejected or impossible.
        case authenticationFailed
        /// The server rejected the message or every recipient (see `reply` and `recipients`).
        case rejected
        /// The server lacks an extension that the message needs, such as SMTPUTF8 or 8BITMIME.
        case extensionNotSupported
        /// A local program or file could not take the message (`SendmailTransport`, `FileTransport`).
        case transportFailed
        /// The task was cancelled.
        case cancelled
    }

    /// The kind of failure.
    public let kind: Kind
    /// The SMTP step that failed, or nil when the failure was not in an SMTP session.
    public let phase: SMTPPhase?
    /// The server's reply, when the failure is a reply: `code`, `enhancedCode` and `text`.
    public let reply: SMTPReply?
    /// The recipients affected. When the server replied to RCPT, each has its reply. Otherwise every
    /// envelope recipient is listed with the status of the whole message.
    public let recipients: [RecipientOutcome]
    /// Whether trying the same message again later may succeed: true for 4xx replies, lost
    /// connections, timeouts and cancellation, false for 5xx replies and invalid messages.
    public let isRetryable: Bool
    /// Whether the message may have been delivered although this error was thrown, because after the
    /// message data the connection ended, or timed out, or the server sent no valid reply. Sending it
    /// again can deliver a second copy.
    public let isOutcomeUnknown: Bool
    /// A sentence that explains the failure, without the server's reply.
    public let detail: String
    /// The SMTP client's error, when the failure came from an SMTP session.
    public let smtpError: SMTPError?

    /// Creates an error, for a transport of your own or for `InMemoryTransport.failEverySend(with:)`.
    public init(
        kind: Kind, phase: SMTPPhase? = nil, reply: SMTPReply? = nil, recipients: [RecipientOutcome] = [],
        detail: String, isRetryable: Bool, isOutcomeUnknown: Bool = false, smtpError: SMTPError? = nil
    ) {
        self.kind = kind
        self.phase = phase
        self.reply = reply
        self.recipients = recipients
        self.detail = detail
        self.isRetryable = isRetryable
        self.isOutcomeUnknown = isOutcomeUnknown
        self.smtpError = smtpError
    }

    /// Returns the error for an SMTP failure of a message sent to `envelope`.
    init(_ error: SMTPError, envelope: Envelope) {
        let kind: Kind = switch error.kind {
        case .rejected, .serviceNotAvailable, .allRecipientsRejected: .rejected
        case .messageTooLarge, .invalidMessage: .invalidMessage
        case .invalidArgument: .invalidEnvelope
        case .extensionNotSupported: .extensionNotSupported
        case .connectionClosed, .timedOut, .protocolViolation, .connectionFailed: .connectionFailed
        case .tlsUnavailable, .tlsFailed: .tlsFailed
        case .authenticationUnavailable, .authenticationFailed: .authenticationFailed
        case .cancelled: .cancelled
        }
        let wholeMessage: RecipientOutcome.Status = error.isTemporary ? .temporaryFailure : .permanentFailure
        var recipients = envelope.recipients.map { RecipientOutcome(address: $0.address, status: wholeMessage) }
        // Replies to RCPT replace the status of the whole message for the recipients they name,
        // except that an accepted recipient did not get a message that then failed.
        for result in error.recipientResults {
            guard let index = recipients.firstIndex(where: { $0.address == result.address }) else { continue }
            let status: RecipientOutcome.Status = if result.isAccepted {
                wholeMessage
            } else {
                result.reply.isPermanentNegative ? .permanentFailure : .temporaryFailure
            }
            recipients[index] = RecipientOutcome(address: result.address, status: status, reply: result.reply)
        }
        self.init(
            kind: kind, phase: error.phase, reply: error.reply, recipients: recipients,
            detail: error.description, isRetryable: error.isTemporary,
            isOutcomeUnknown: DeliveryOutcome.isOutcomeUnknown(error), smtpError: error)
    }

    /// Returns an error that affects every recipient of `envelope` alike.
    static func wholeMessage(
        _ kind: Kind, _ detail: String, envelope: Envelope, isRetryable: Bool
    ) -> MailError {
        let status: RecipientOutcome.Status = isRetryable ? .temporaryFailure : .permanentFailure
        return MailError(
            kind: kind, recipients: envelope.recipients.map { RecipientOutcome(address: $0.address, status: status) },
            detail: detail, isRetryable: isRetryable)
    }

    static let cancelled = MailError(kind: .cancelled, detail: "the send was cancelled", isRetryable: true)

    public var description: String {
        guard smtpError == nil, let reply else { return detail }
        return "\(detail): the server replied \"\(reply)\""
    }
}
