import SMTPClient

/// A way to hand a message over: `SMTPTransport`, `SendmailTransport`, `FileTransport`, or
/// `InMemoryTransport` for tests.
///
/// `Mailer` builds the message and its envelope and calls `send`. A transport of your own must be
/// safe to call from many tasks at once, and should stop early when the calling task is cancelled.
public protocol MailTransport: Sendable {
    /// Hands one message over to every recipient of `envelope`.
    ///
    /// - Returns: each recipient's outcome, when at least one recipient accepted the message.
    /// - Throws: `MailError` when no recipient accepted it.
    func send(_ message: OutgoingMessage, envelope: Envelope) async throws(MailError) -> SendResult

    /// Releases what the transport holds open, such as pooled connections. A transport may be
    /// used again after this. The default does nothing.
    func shutdown() async
}

extension MailTransport {
    public func shutdown() async {}
}
