import MailMessage
import SMTPClient

/// Sends messages built with `MessageBuilder` through one transport.
///
/// ```swift
/// import Outbox
///
/// let mailer = Mailer(account: MailAccount(host: "smtp.example.org", credentials: credentials))
/// var message = MessageBuilder()
/// message.from = [try MailAddress(parsing: "me@example.org")]
/// message.to = [try MailAddress(parsing: "you@example.org")]
/// message.subject = "Hello"
/// message.text = "Hi!"
/// let result = try await mailer.send(message)
/// await mailer.shutdown()
/// ```
///
/// A mailer is safe to use from many tasks at once. Cancelling the calling task stops its send
/// and throws `MailError` with kind `cancelled`. Call `shutdown()` before the program ends, so
/// that pooled SMTP connections end with QUIT.
public final class Mailer: Sendable {
    /// The transport the messages go through.
    public let transport: any MailTransport

    /// Creates a mailer that hands messages to `transport`.
    public init(transport: any MailTransport) {
        self.transport = transport
    }

    /// Creates a mailer that sends over SMTP to `account`, with a pool of connections.
    public convenience init(account: MailAccount, transcript: TranscriptHandler? = nil) {
        self.init(transport: SMTPTransport(account: account, transcript: transcript))
    }

    /// Builds the message and sends it to every To, Cc and Bcc address.
    ///
    /// - Returns: each recipient's outcome, when at least one recipient accepted the message.
    /// - Throws: `MailError`. Its kind is `invalidMessage` when the message cannot be built, and
    ///   otherwise as for `send(_: ComposedMessage)`.
    public func send(_ message: MessageBuilder) async throws(MailError) -> SendResult {
        let composed: ComposedMessage
        do {
            composed = try message.build()
        } catch {
            throw MailError(kind: .invalidMessage, detail: "\(error)", isRetryable: false)
        }
        return try await send(composed)
    }

    /// Sends a built message to its envelope recipients, from its envelope sender.
    ///
    /// - Throws: `MailError` when no recipient accepted the message: `invalidEnvelope` for an
    ///   address that cannot go into an envelope, `rejected` with the server's reply, `cancelled`,
    ///   and the transport's other kinds.
    public func send(_ message: ComposedMessage) async throws(MailError) -> SendResult {
        let envelope = try Self.envelope(of: message)
        let spooled: SpooledMessage
        let outgoing: OutgoingMessage
        do {
            spooled = try SpooledMessage(message)
        } catch {
            throw MailError.wholeMessage(.invalidMessage, "\(error)", envelope: envelope, isRetryable: false)
        }
        defer { spooled.remove() }
        do {
            outgoing = try OutgoingMessage(content: spooled.content)
        } catch {
            throw MailError.wholeMessage(.invalidMessage, "\(error)", envelope: envelope, isRetryable: false)
        }
        var result = try await transport.send(outgoing, envelope: envelope)
        result.messageID = message.messageID
        return result
    }

    /// Closes what the transport keeps open, such as idle SMTP connections (with QUIT).
    public func shutdown() async {
        await transport.shutdown()
    }

    /// Returns the envelope of a built message, after the RFC 5321 checks of each address.
    static func envelope(of message: ComposedMessage) throws(MailError) -> Envelope {
        guard !message.envelopeRecipients.isEmpty else {
            throw MailError(kind: .invalidEnvelope, detail: "the message has no recipients", isRetryable: false)
        }
        for address in [message.envelopeSender] + message.envelopeRecipients {
            do {
                try address.validateForEnvelope()
            } catch {
                throw MailError(kind: .invalidEnvelope, detail: "\(error)", isRetryable: false)
            }
        }
        return Envelope(
            sender: message.envelopeSender.addrSpec, recipients: message.envelopeRecipients.map(\.addrSpec))
    }
}
