import Foundation
import MailStore
import SMTPClient
import SMTPCore
import Synchronization

/// Sends the messages waiting in a store's Outbox, and records each outcome in the store.
///
/// A flush groups the due messages by route (one server and account), opens up to
/// `connectionsPerServer` connections to each, and sends the messages over them in batches, reusing
/// each connection and its login. Each message's result is recorded as soon as the server replies
/// to it, on a queue of its own, while the connection goes on with the next message (see
/// `OutcomeRecorder`). A crash therefore loses at most two outcomes per connection: that of the
/// message whose outcome was being recorded, and that of the message whose reply was awaited.
/// Those messages are sent again, never lost.
///
/// When a server accepts a message, its other deferred messages are due at once: the server is back,
/// so they need not wait out their backoff.
public final class OutboxSender: Sendable {
    /// Settings of the sender.
    public struct Configuration: Sendable {
        /// The maximum number of connections open at once to one server. Default: 4.
        public var connectionsPerServer: Int
        /// How many messages a connection claims from the store at a time. Default: 20.
        public var batchSize: Int
        /// When to retry and when to give up.
        public var retryPolicy: RetryPolicy
        /// How long a claim on a message lasts without being renewed. A connection renews the claims
        /// on its batch while it sends it. Default: 10 minutes.
        public var leaseDuration: TimeInterval
        /// Whether and how to tell senders about failed messages. Default: nil, no notices; the
        /// failure is recorded in the store only.
        public var failureNotices: FailureNotices?

        public init(
            connectionsPerServer: Int = 4, batchSize: Int = 20, retryPolicy: RetryPolicy = RetryPolicy(),
            leaseDuration: TimeInterval = 600, failureNotices: FailureNotices? = nil
        ) {
            self.connectionsPerServer = max(1, connectionsPerServer)
            self.batchSize = max(1, batchSize)
            self.retryPolicy = retryPolicy
            self.leaseDuration = leaseDuration
            self.failureNotices = failureNotices
        }
    }

    /// Turns a message's stored account text into the configuration for connecting to its server,
    /// reading any password it needs.
    public typealias AccountResolver = @Sendable (_ account: String) throws -> SMTPClientConfiguration

    /// An `AccountResolver` that may suspend, for example to fetch an OAuth 2.0 token. It is called
    /// each time a connection for the account opens, so a secret is never stored with the message.
    public typealias AsyncAccountResolver = @Sendable (_ account: String) async throws -> SMTPClientConfiguration

    public let store: MailStore
    public let configuration: Configuration
    private let resolveAccount: AsyncAccountResolver
    private let transcript: TranscriptHandler?
    private let owner: String
    private let recorder: OutcomeRecorder
    private let wakeSignal = WakeSignal()

    /// Makes a `run` loop flush at once instead of waiting for its next poll, as after a message
    /// was queued. A call while the loop is flushing makes it flush again when it is done.
    public func wake() {
        wakeSignal.signal()
    }

    public convenience init(
        store: MailStore, configuration: Configuration = Configuration(), transcript: TranscriptHandler? = nil,
        resolveAccount: @escaping AccountResolver
    ) {
        self.init(
            store: store, configuration: configuration, transcript: transcript,
            resolveAccountAsync: { account in try resolveAccount(account) })
    }

    /// Creates a sender whose account resolver may suspend.
    public init(
        store: MailStore, configuration: Configuration = Configuration(), transcript: TranscriptHandler? = nil,
        resolveAccountAsync: @escaping AsyncAccountResolver
    ) {
        self.store = store
        self.configuration = configuration
        self.transcript = transcript
        self.resolveAccount = resolveAccountAsync
        owner = MailStore.makeLeaseOwner()
        recorder = OutcomeRecorder(store: store, owner: owner)
    }

    /// Sends every message due in the Outbox, or only those for `route`, and returns what happened.
    ///
    /// - Parameters:
    ///   - expedite: also send deferred messages whose next attempt is still to come.
    ///   - progress: called after each step with the counts so far.
    public func flush(
        route: String? = nil, expedite: Bool = false, progress: (@Sendable (FlushProgress) -> Void)? = nil
    ) async throws(StoreError) -> FlushReport {
        if expedite {
            try store.expediteRoute(route)
        }
        let routes: [String]
        if let route {
            routes = [route]
        } else {
            routes = try store.dueRoutes().due
        }
        let summary = try store.dueSummary(route: route)
        let tracker = ProgressTracker(total: summary.count, bytesTotal: summary.bytes, report: progress)
        await withTaskGroup(of: Void.self) { group in
            for route in routes {
                group.addTask {
                    await self.flushRoute(route, first: nil, tracker: tracker)
                }
            }
        }
        return tracker.finish()
    }

    /// Flushes the Outbox again and again until the task is cancelled: at once, then whenever the
    /// next deferred message is due, and at least every `pollInterval`, to pick up messages that
    /// other processes queued.
    ///
    /// - Parameters:
    ///   - onFlush: called after each flush that tried any message or met an error.
    ///   - progress: called after each step of every flush with the counts of that flush. It comes
    ///     after `onFlush`, so that a trailing closure still means `onFlush`.
    public func run(
        pollInterval: Duration = .seconds(30), onFlush: (@Sendable (FlushReport) -> Void)? = nil,
        progress: (@Sendable (FlushProgress) -> Void)? = nil
    ) async {
        while !Task.isCancelled {
            var wait = pollInterval
            do {
                let report = try await flush(progress: progress)
                if !(report.sent.isEmpty && report.failed.isEmpty && report.deferred.isEmpty && report.errors.isEmpty) {
                    onFlush?(report)
                }
                if let next = try store.dueRoutes().nextDue {
                    let seconds = max(0, next.timeIntervalSinceNow)
                    wait = min(wait, .milliseconds(Int64(seconds * 1000) + 1))
                }
            } catch {
                var report = FlushReport()
                report.errors.append("\(error)")
                onFlush?(report)
            }
            await wakeSignal.wait(timeout: wait)
        }
    }

    /// Sends one stored message now, as `outbox send` does in its immediate mode, and then the other
    /// messages due for the same server over the same connection. Returns the message as stored
    /// afterwards: in Sent, in Failed, or still in the Outbox after a temporary failure.
    public func sendNow(
        _ id: String, progress: (@Sendable (FlushProgress) -> Void)? = nil
    ) async throws(StoreError) -> (message: StoredMessage, report: FlushReport) {
        guard let message = try store.message(id: id) else { throw StoreError.noSuchMessage(id) }
        let tracker = ProgressTracker(total: 1, bytesTotal: message.size, report: progress)
        await flushRoute(message.route, first: id, tracker: tracker)
        guard let updated = try store.message(id: id) else { throw StoreError.noSuchMessage(id) }
        return (updated, tracker.finish())
    }

    // MARK: - Routes and connections

    /// Runs the connections of one route. With `first`, one connection starts with that message,
    /// and more connections open only once the server has accepted it.
    private func flushRoute(_ route: String, first: String?, tracker: ProgressTracker) async {
        let state = RouteState(started: Date())
        if let first {
            await runConnection(route: route, first: first, state: state, tracker: tracker)
            guard state.serverAccepted, !state.isDown else { return }
            tracker.addToTotal(try? store.dueSummary(route: route))
        }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<configuration.connectionsPerServer {
                group.addTask {
                    await self.runConnection(route: route, first: nil, state: state, tracker: tracker)
                }
            }
        }
    }

    /// Runs one connection: claims a batch, connects if needed, sends the batch and records each
    /// result, until nothing is due or the server is down.
    private func runConnection(route: String, first: String?, state: RouteState, tracker: ProgressTracker) async {
        let lane = OutcomeRecorder.Lane(recorder)
        var connection: SMTPConnection?
        var connectedAccount: String?
        var onlyFirst = first
        loop: while !Task.isCancelled, !state.isDown {
            let batch: [StoredMessage]
            do {
                if let id = onlyFirst {
                    batch = try store.claim(
                        owner: owner, ids: [id], limit: 1, ignoringBackoff: true,
                        leaseDuration: configuration.leaseDuration)
                    onlyFirst = nil
                } else {
                    batch = try store.claim(
                        owner: owner, route: route, limit: configuration.batchSize,
                        leaseDuration: configuration.leaseDuration)
                }
            } catch {
                tracker.noteError("Claiming messages for \(Self.server(route)) failed: \(error)")
                break
            }
            guard let account = batch.first?.account else { break }

            let prepared = prepare(batch, tracker: tracker, lane: lane)
            guard !prepared.isEmpty else {
                // The next claim must see the failures of this batch, and any failure notice they queued.
                lane.waitUntilRecorded()
                continue
            }

            if connection == nil || !(connection?.isOpen ?? false) || connectedAccount != account {
                if let old = connection {
                    await old.quit()
                }
                connection = nil
                tracker.setActivity(.connecting(route: route))
                do {
                    let smtpConfiguration = try await resolveAccount(account)
                    connection = try await SMTPConnection.open(smtpConfiguration, transcript: transcript)
                    connectedAccount = account
                } catch let error as SMTPError {
                    state.markDown()
                    for item in prepared {
                        record(item, .failure(error), tracker: tracker, lane: lane)
                    }
                    break loop
                } catch {
                    // The account cannot be used now, as when its password command failed. That is
                    // recorded as a temporary failure of each message, so that the messages wait out
                    // a backoff and `outbox queue show` prints the reason.
                    state.markDown()
                    tracker.noteError("\(Self.server(route)): \(error)")
                    let failure = SMTPError(
                        phase: .connect, kind: .connectionFailed("the account's settings cannot be used: \(error)"),
                        isTemporary: true)
                    for item in prepared {
                        record(item, .failure(failure), tracker: tracker, lane: lane)
                    }
                    break loop
                }
            }
            guard let open = connection else { break }
            tracker.setActivity(.sending(route: route))
            let items = prepared
            let renewal = renewLeases(items.map(\.message.id))
            let results = await open.send(items.map { ($0.outgoing, $0.envelope) }) { index, result in
                self.record(items[index], result, tracker: tracker, lane: lane)
                if case .success(let transaction) = result, !transaction.accepted.isEmpty {
                    self.serverAccepted(route: route, state: state)
                }
            }
            renewal.cancel()
            // The next claim must see this batch's outcomes, and any failure notice they queued.
            lane.waitUntilRecorded()
            if !open.isOpen {
                connection = nil
                // A session that failed before any message of the batch got through means the server
                // is not taking mail now; the other connections stop too.
                let anySuccess = results.contains { if case .success = $0 { true } else { false } }
                if !anySuccess { state.markDown() }
            }
        }
        lane.waitUntilRecorded()
        if let connection {
            tracker.setActivity(.quitting(route: route))
            await connection.quit()
        }
    }

    /// Renews the claims on a batch every third of the lease duration until cancelled, so that a
    /// batch that takes long to send is not claimed by another sender meanwhile.
    private func renewLeases(_ ids: [String]) -> Task<Void, Never> {
        let store = self.store
        let owner = self.owner
        let duration = configuration.leaseDuration
        return Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(duration * 1000 / 3)))
                guard !Task.isCancelled else { return }
                try? store.renewLeases(ids, owner: owner, leaseDuration: duration)
            }
        }
    }

    /// Called when the server accepts a message: the first time, the route's deferred messages
    /// become due at once.
    private func serverAccepted(route: String, state: RouteState) {
        guard state.markAccepted() else { return }
        _ = try? store.expediteRoute(route, deferredBefore: state.started)
    }

    // MARK: - Messages

    private struct PreparedItem: @unchecked Sendable {
        let message: StoredMessage
        let attempted: [Int]
        let outgoing: OutgoingMessage
        let envelope: Envelope
    }

    /// Makes the outgoing message and envelope of each claimed message. A message whose content
    /// cannot be read or sent fails at once, since no retry can mend it.
    private func prepare(_ batch: [StoredMessage], tracker: ProgressTracker, lane: OutcomeRecorder.Lane) -> [PreparedItem] {
        var items: [PreparedItem] = []
        for message in batch {
            let attempted = message.recipients.indices.filter { message.recipients[$0].state.isOutstanding }
            let envelope = Envelope(
                sender: message.sender,
                recipients: attempted.map {
                    let recipient = message.recipients[$0]
                    return Recipient(recipient.address, notify: StoredDeliveryStatus.notify(fromParameters: recipient.parameters))
                },
                deliveryStatus: StoredDeliveryStatus.request(fromEnvelopeOptions: message.envelopeOptions))
            do {
                let outgoing = try OutgoingMessage(content: content(of: message))
                items.append(PreparedItem(message: message, attempted: attempted, outgoing: outgoing, envelope: envelope))
            } catch {
                let reason: SMTPError.Kind
                switch error {
                case let error as DataEncodingError:
                    reason = .invalidMessage(error)
                case StoreError.file(let path, let problem):
                    reason = .protocolViolation("the content file \(path) cannot be read: \(problem)")
                default:
                    reason = .protocolViolation(
                        "the content file \(store.contentURL(id: message.id).path) cannot be read: \(error)")
                }
                let failure = SMTPError(phase: .mail, kind: reason, isTemporary: false)
                let update = DeliveryOutcome(policy: configuration.retryPolicy, now: Date())
                    .update(for: message, attempted: attempted, result: .failure(failure))
                commit(message, update, tracker: tracker, lane: lane)
            }
        }
        return items
    }

    /// The largest message whose content is read into memory for sending.
    private static let inMemoryContentLimit = 256 * 1024

    /// Returns a stored message's content. A small one is read into memory once, and both the scan
    /// before MAIL and the sending use that copy. A large one is read from its file in chunks, once
    /// for each.
    private func content(of message: StoredMessage) throws -> any MessageContent {
        guard message.size <= Self.inMemoryContentLimit else {
            return FileMessageContent(url: store.contentURL(id: message.id))
        }
        return InMemoryMessageContent(try store.readContent(id: message.id, sizeHint: message.size))
    }

    /// Records one message's result. A cancelled attempt that did not reach the end of the data
    /// leaves the message as it was.
    private func record(
        _ item: PreparedItem, _ result: Result<TransactionResult, SMTPError>, tracker: ProgressTracker,
        lane: OutcomeRecorder.Lane
    ) {
        if case .failure(let error) = result, error.kind == .cancelled, !DeliveryOutcome.isOutcomeUnknown(error) {
            try? store.releaseLeases([item.message.id], owner: owner)
            tracker.messageReleased(item.message)
            return
        }
        let update = DeliveryOutcome(policy: configuration.retryPolicy, now: Date())
            .update(for: item.message, attempted: item.attempted, result: result)
        commit(item.message, update, tracker: tracker, lane: lane)
    }

    /// Hands an outcome to the recorder. The progress and any failure notice follow once it is stored.
    private func commit(
        _ message: StoredMessage, _ update: DeliveryUpdate, tracker: ProgressTracker, lane: OutcomeRecorder.Lane
    ) {
        lane.record(message.id, update) { result in
            if case .failure(let error) = result {
                tracker.noteError("Recording the outcome of message \(message.id) failed: \(error)")
                return
            }
            tracker.messageFinished(message, update: update)
            if update.folder == .failed, let settings = self.configuration.failureNotices {
                var failed = message
                failed.recipients = update.recipients
                self.queueFailureNotice(for: failed, settings: settings, tracker: tracker)
            }
        }
    }

    /// Queues a failure notice to the sender of a failed message. A message with the null sender gets
    /// none, because it is a notice itself or mail that must cause none, and neither does a sender
    /// who had the maximum number of notices this hour.
    private func queueFailureNotice(for message: StoredMessage, settings: FailureNotices, tracker: ProgressTracker) {
        guard !message.sender.isEmpty, message.envelopeOptions != FailureNotice.noticeMarker else { return }
        do {
            let recent = try store.countMessages(
                to: message.sender, envelopeOptions: FailureNotice.noticeMarker, since: Date().addingTimeInterval(-3600))
            guard recent < settings.maximumPerHour else {
                tracker.noteError(
                    "No failure notice for message \(message.id): <\(message.sender)> had \(recent) in the last hour.")
                return
            }
            let header = Self.headerSection(of: store.contentURL(id: message.id))
            let host = settings.from.split(separator: "@").last.map(String.init) ?? "localhost"
            let (notice, content) = FailureNotice(settings: settings, reportingHost: host).make(
                for: message, originalHeader: header)
            _ = try store.add(notice, content: content)
        } catch {
            tracker.noteError("Queueing the failure notice for message \(message.id) failed: \(error)")
        }
    }

    /// Returns the header section of a content file, up to and including the empty line that ends
    /// it (CRLF or LF alone), or nothing when it is longer than 64 KiB.
    private static func headerSection(of url: URL) -> [UInt8] {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return [] }
        defer { try? handle.close() }
        let bytes = Array((try? handle.read(upToCount: 65536)) ?? Data())
        var lineStart = 0
        for index in bytes.indices where bytes[index] == 10 {
            let line = bytes[lineStart..<index]
            if line.isEmpty || line == [13] {
                return Array(bytes[...index])
            }
            lineStart = index + 1
        }
        return []
    }

    /// Returns the server part of a route (`host:port`), for messages to people.
    public static func server(_ route: String) -> String {
        route.split(separator: "#", maxSplits: 1).first.map(String.init) ?? route
    }
}

/// The state that the connections of one route share during a flush.
private final class RouteState: Sendable {
    private struct Flags {
        var down = false
        var accepted = false
    }

    private let flags = Mutex(Flags())
    /// When the flush of the route started.
    let started: Date

    init(started: Date) {
        self.started = started
    }

    var isDown: Bool { flags.withLock { $0.down } }
    var serverAccepted: Bool { flags.withLock { $0.accepted } }

    func markDown() {
        flags.withLock { $0.down = true }
    }

    /// Returns true the first time only.
    func markAccepted() -> Bool {
        flags.withLock { flags in
            defer { flags.accepted = true }
            return !flags.accepted
        }
    }
}
