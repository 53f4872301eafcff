import Foundation
import MailMessage
import MailStore
import SMTPClient
import Synchronization

/// A durable outbox for a program: `enqueue` stores a message on disk, and `run()`, which the
/// program keeps running as a long-lived task, sends it with retries until the server takes it
/// or it fails for good.
///
/// ```swift
/// let outbox = try OutboxService(storeDirectory: directory, account: account)
/// let sender = Task { await outbox.run() }
/// let id = try await outbox.enqueue(message)
/// for await progress in outbox.progressUpdates() where progress.pending == 0 { break }
/// sender.cancel()
/// ```
///
/// The store keeps the message, its envelope, the account's name and its server, and never the
/// credentials: the account's credentials provider is called each time a connection opens. The
/// folders, the retry policy and what survives a crash are described in docs/outbox.md.
///
/// NOTE: the store's account text for these messages names an account of this service
/// (`library:NAME`), which the `outbox` command cannot resolve. A flush by `outbox queue` on
/// the same store defers those messages with that error, so give the service a store of its own.
public final class OutboxService: Sendable {
    /// The message store, for reading a message's state with `message(id:)` and
    /// `messages(in:)`.
    public let store: MailStore
    /// The sender that flushes the store.
    public let sender: OutboxSender
    private let accounts: [String: MailAccount]
    private let subscribers = Mutex<[Int: AsyncStream<FlushProgress>.Continuation]>([:])
    private let nextSubscriber = Atomic<Int>(0)

    /// The prefix of the store's account text for messages that this type queues.
    static let accountPrefix = "library:"

    /// Opens or creates the store in `storeDirectory` and sends its messages through `accounts`,
    /// which `enqueue` names by key.
    ///
    /// - Parameter configuration: connections per server, batch size, retry policy and failure
    ///   notices. Default: 4 connections, batches of 20, the first retry after 5 minutes and
    ///   failure after 5 days.
    /// - Throws: `MailError` with kind `transportFailed` when the store cannot be opened, for
    ///   example when other users can read its folder.
    public init(
        storeDirectory: URL, accounts: [String: MailAccount],
        configuration: OutboxSender.Configuration = OutboxSender.Configuration(),
        transcript: TranscriptHandler? = nil
    ) throws(MailError) {
        do {
            store = try MailStore(url: storeDirectory)
        } catch {
            throw MailError(
                kind: .transportFailed, detail: "opening the store \(storeDirectory.path) failed: \(error)",
                isRetryable: false)
        }
        self.accounts = accounts
        sender = OutboxSender(
            store: store, configuration: configuration, transcript: transcript,
            resolveAccountAsync: { [accounts] text in
                try await Self.configuration(forAccountText: text, accounts: accounts)
            })
    }

    /// Opens or creates the store in `storeDirectory`, with one account named "default".
    public convenience init(
        storeDirectory: URL, account: MailAccount,
        configuration: OutboxSender.Configuration = OutboxSender.Configuration(),
        transcript: TranscriptHandler? = nil
    ) throws(MailError) {
        try self.init(
            storeDirectory: storeDirectory, accounts: ["default": account], configuration: configuration,
            transcript: transcript)
    }

    /// Builds the message and stores it in the Outbox, as `enqueue(_: ComposedMessage)` does.
    public func enqueue(_ message: MessageBuilder, account: String = "default") async throws(MailError) -> String {
        let composed: ComposedMessage
        do {
            composed = try message.build()
        } catch {
            throw MailError(kind: .invalidMessage, detail: "\(error)", isRetryable: false)
        }
        return try store(composed, account: account, subject: message.subject)
    }

    /// Stores the message in the Outbox for sending through the account named `account`, and
    /// returns its id in the store. When this returns, the message is on disk.
    ///
    /// The message is written to the store in chunks, so a large attachment is never held whole in
    /// memory. A running `run()` sends it at once; without one, it goes out at the next `flush()`.
    ///
    /// - Throws: `MailError` with kind `invalidEnvelope` for an unknown account or an unusable
    ///   address, `invalidMessage` when an attachment cannot be read, and `transportFailed` when
    ///   the store cannot write it (such as a full disk).
    public func enqueue(_ message: ComposedMessage, account: String = "default") async throws(MailError) -> String {
        try store(message, account: account, subject: nil)
    }

    /// Stores a message, with the subject that `outbox queue list` shows.
    private func store(_ message: ComposedMessage, account: String, subject: String?) throws(MailError) -> String {
        guard let settings = accounts[account] else {
            throw MailError(
                kind: .invalidEnvelope, detail: "no account named \"\(account)\" was given to this OutboxService",
                isRetryable: false)
        }
        let envelope = try Mailer.envelope(of: message)
        let entry = NewMessage(
            sender: envelope.sender,
            recipients: envelope.recipients.map { StoredRecipient(address: $0.address) },
            account: Self.accountPrefix + account,
            route: "\(settings.server)#\(Self.accountPrefix)\(account)",
            messageID: message.messageID,
            subject: subject)
        do {
            let stored = try store.add(entry) { writer in
                try message.write { chunk in try writer.write(chunk) }
            }
            // A running `run()` sends it now rather than at its next poll.
            sender.wake()
            return stored.id
        } catch let error as MessageBuildError {
            throw MailError(kind: .invalidMessage, detail: "\(error)", isRetryable: false)
        } catch {
            throw MailError(kind: .transportFailed, detail: "storing the message failed: \(error)", isRetryable: true)
        }
    }

    /// Sends every due message once and returns what happened. Progress goes to
    /// `progressUpdates()`.
    ///
    /// - Throws: `StoreError` when the store cannot be read.
    public func flush() async throws(StoreError) -> FlushReport {
        try await sender.flush(progress: { [self] progress in broadcast(progress) })
    }

    /// Flushes the Outbox until the calling task is cancelled: at once, whenever a deferred message
    /// becomes due, and at least every `pollInterval` (default 30 seconds), to pick up messages
    /// that `enqueue` or other processes stored. Progress goes to `progressUpdates()`.
    ///
    /// - Parameter onFlush: called after each flush that tried a message or met an error.
    public func run(
        pollInterval: Duration = .seconds(30), onFlush: (@Sendable (FlushReport) -> Void)? = nil
    ) async {
        await sender.run(pollInterval: pollInterval, onFlush: onFlush, progress: { [self] progress in
            broadcast(progress)
        })
    }

    /// Returns a sequence of the progress of every later flush, from `run()` or `flush()`. It ends
    /// when the consuming task stops iterating. When the consumer is slow, only the latest 16
    /// updates are kept.
    public func progressUpdates() -> AsyncStream<FlushProgress> {
        let id = nextSubscriber.wrappingAdd(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncStream<FlushProgress>.makeStream(bufferingPolicy: .bufferingNewest(16))
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    /// Returns a stored message with each recipient's state, or nil when there is none with `id`.
    public func message(id: String) throws(StoreError) -> StoredMessage? {
        try store.message(id: id)
    }

    private func broadcast(_ progress: FlushProgress) {
        let continuations = subscribers.withLock { Array($0.values) }
        for continuation in continuations {
            continuation.yield(progress)
        }
    }

    /// Returns the client configuration for a stored account text, asking the account's
    /// credentials provider.
    private static func configuration(
        forAccountText text: String, accounts: [String: MailAccount]
    ) async throws -> SMTPClientConfiguration {
        guard text.hasPrefix(accountPrefix), let account = accounts[String(text.dropFirst(accountPrefix.count))] else {
            throw MailError(
                kind: .credentialsUnavailable,
                detail: "the stored account \"\(text)\" is not one of this OutboxService's accounts",
                isRetryable: true)
        }
        return try await account.makeConfiguration()
    }
}
