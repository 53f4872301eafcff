import Synchronization
import SMTPClient

/// A transport for your own tests: it records every message instead of sending it.
///
/// ```swift
/// let transport = InMemoryTransport()
/// let mailer = Mailer(transport: transport)
/// try await signUp(user, mailer: mailer)
/// #expect(transport.sentMessages.first?.envelope.recipients.map(\.address) == ["new@example.org"])
/// ```
///
/// Every recipient is accepted unless `rejecting` names it, and `failure` makes every send
/// throw, so that error handling can be tested too.
public final class InMemoryTransport: MailTransport {
    /// One message the transport was asked to send.
    public struct SentMessage: Sendable {
        /// The sender and recipients, Bcc recipients included.
        public let envelope: Envelope
        /// The message as it would have been sent, with CR LF line ends.
        public let bytes: [UInt8]

        /// The message as UTF-8 text.
        public var text: String { String(decoding: bytes, as: UTF8.self) }
    }

    private struct State {
        var sent: [SentMessage] = []
        var rejecting: [String: RecipientOutcome.Status] = [:]
        var failure: MailError?
    }

    private let state = Mutex(State())

    /// Creates a transport that accepts every recipient and has recorded nothing.
    public init() {}

    /// The messages sent so far, oldest first. Messages that threw are not listed.
    public var sentMessages: [SentMessage] {
        state.withLock { $0.sent }
    }

    /// Makes later sends reject `address` (compared without case) with a permanent or temporary
    /// failure. A message whose every recipient is rejected throws `MailError` with kind `rejected`.
    public func reject(_ address: String, as status: RecipientOutcome.Status = .permanentFailure) {
        state.withLock { $0.rejecting[address.lowercased()] = status }
    }

    /// Makes every later send throw `error`, or stops that when `error` is nil.
    public func failEverySend(with error: MailError?) {
        state.withLock { $0.failure = error }
    }

    /// Forgets the recorded messages and the rejections and failure set up before.
    public func reset() {
        state.withLock { $0 = State() }
    }

    public func send(_ message: OutgoingMessage, envelope: Envelope) async throws(MailError) -> SendResult {
        if Task.isCancelled { throw MailError.cancelled }
        var bytes: [UInt8] = []
        do {
            var reader = try message.content.makeReader()
            while let chunk = try reader.read(maxLength: 64 * 1024) {
                bytes += chunk
            }
        } catch {
            throw MailError.wholeMessage(
                .invalidMessage, "reading the message failed: \(error)", envelope: envelope, isRetryable: false)
        }
        return try state.withLock { state throws(MailError) in
            if let failure = state.failure { throw failure }
            let outcomes = envelope.recipients.map { recipient in
                RecipientOutcome(
                    address: recipient.address,
                    status: state.rejecting[recipient.address.lowercased()] ?? .accepted)
            }
            guard outcomes.contains(where: \.isAccepted) else {
                throw MailError(
                    kind: .rejected, recipients: outcomes, detail: "every recipient was rejected",
                    isRetryable: outcomes.allSatisfy { $0.status == .temporaryFailure })
            }
            state.sent.append(SentMessage(envelope: envelope, bytes: bytes))
            return SendResult(recipients: outcomes)
        }
    }
}
