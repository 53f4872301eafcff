import Foundation
import SMTPCore

/// Runs a `ClientSession` over a `TCPConnection`: carries out its actions, reads replies with the
/// timeout of the phase it waits for, and streams message content through a `DataEncoder`.
///
/// Every method blocks, so a driver runs on a thread of its own (see `SMTPConnection`), never on the
/// Swift concurrency pool. It is not thread-safe: `SMTPConnection` confines each driver to one serial
/// dispatch queue, and only `cancellation`, which is thread-safe, is used from elsewhere.
final class SessionDriver: @unchecked Sendable {
    /// The state a call into the session ended in.
    enum Outcome {
        /// The session is open and idle.
        case ready
        /// Every message of the batch has a result.
        case batchCompleted
        case closed
    }

    /// The messages of a `send(_:)` call: those not yet started, and those whose transactions are in
    /// progress, oldest first, with their places in the batch.
    private struct Batch {
        var waiting: ArraySlice<(index: Int, message: OutgoingMessage, envelope: Envelope)>
        var inProgress: [(index: Int, message: OutgoingMessage)] = []
        var results: [Result<TransactionResult, SMTPError>?]
        /// Called with each message's place in the batch and result as soon as it is known.
        var onResult: ((Int, Result<TransactionResult, SMTPError>) -> Void)?

        var isComplete: Bool { waiting.isEmpty && inProgress.isEmpty }
    }

    let configuration: SMTPClientConfiguration
    let cancellation: CancellationSignal
    private let deadline: ContinuousClock.Instant?
    private var connection: TCPConnection?
    private(set) var session: ClientSession
    private var transcript: TranscriptWriter
    private var batch: Batch?
    /// When the wait for the expected reply started to count: its phase, the replies read before it,
    /// and when it expires.
    private var replyClock: (phase: SMTPPhase, replyCount: Int, expiry: ContinuousClock.Instant)?
    /// The encryption of this connection, after the defaults for its server were applied.
    let tlsMode: TLSMode
    /// The TLS session, once the connection is encrypted.
    private(set) var tlsSession: TLSSessionInfo?

    private init(
        configuration: SMTPClientConfiguration, connection: TCPConnection, deadline: ContinuousClock.Instant?,
        cancellation: CancellationSignal, transcript: TranscriptWriter
    ) {
        self.configuration = configuration
        self.connection = connection
        self.deadline = deadline
        self.cancellation = cancellation
        self.transcript = transcript
        let clientName = configuration.clientName ?? Self.defaultClientName(localAddress: connection.localAddress)
        let isLoopback = Self.isLoopback(connection.remoteAddress)
        let tlsMode = configuration.effectiveTLSMode(remoteIsLoopback: isLoopback)
        self.tlsMode = tlsMode
        self.remoteAddress = connection.remoteAddress
        let startTLS: StartTLSPolicy = switch tlsMode {
        case .off, .implicit: .never
        case .opportunisticStartTLS: .ifOffered
        case .requiredStartTLS: .required
        }
        var authentication = configuration.authentication
        authentication?.host = configuration.host
        authentication?.port = configuration.port
        self.session = ClientSession(configuration: .init(
            clientName: clientName, usePipelining: configuration.usePipelining,
            replyLimits: configuration.replyLimits, startTLS: startTLS, isEncrypted: tlsMode == .implicit,
            isLoopback: isLoopback, authentication: authentication))
    }

    /// Connects, reads the greeting and sends EHLO.
    static func open(
        configuration: SMTPClientConfiguration, cancellation: CancellationSignal, transcript: TranscriptHandler?
    ) throws(SMTPError) -> SessionDriver {
        let deadline = configuration.sessionDeadline.map { ContinuousClock.now + $0 }
        let writer = TranscriptWriter(handler: transcript)
        let connection: TCPConnection
        do {
            connection = try TCPConnection.connect(
                host: configuration.host, port: configuration.port, connectTimeout: configuration.timeouts.connect,
                deadline: deadline, cancellation: cancellation)
        } catch {
            throw Self.connectError(error)
        }
        writer.note("connected to \(connection.remoteAddress)")
        let driver = SessionDriver(
            configuration: configuration, connection: connection, deadline: deadline, cancellation: cancellation,
            transcript: writer)
        if driver.tlsMode == .implicit {
            try driver.startImplicitTLS()
        }
        switch try driver.run([]) {
        case .ready:
            return driver
        case .batchCompleted, .closed:
            throw SMTPError(
                phase: .greeting, kind: .protocolViolation("the session ended before EHLO completed"),
                isTemporary: true)
        }
    }

    var capabilities: Capabilities { session.capabilities }
    let remoteAddress: String
    var isOpen: Bool { connection != nil && session.isReady }

    /// Sends messages one after another and returns each one's result, in the order given.
    ///
    /// With PIPELINING, the next message's MAIL, RCPT and DATA go out right after the previous
    /// message's content, so each message costs one round trip. When the session fails, the message in
    /// progress gets the error, and so does every later one, because none of them was sent.
    ///
    /// - Parameter onResult: called with each message's place in the batch and its result, as soon as
    ///   the result is known, on the caller's thread.
    func send(
        _ messages: [(OutgoingMessage, Envelope)],
        onResult: ((Int, Result<TransactionResult, SMTPError>) -> Void)? = nil
    ) -> [Result<TransactionResult, SMTPError>] {
        do {
            try checkIdleConnection()
        } catch {
            for index in messages.indices {
                onResult?(index, .failure(error))
            }
            return messages.map { _ in .failure(error) }
        }
        batch = Batch(
            waiting: messages.enumerated().map { ($0.offset, $0.element.0, $0.element.1) }[...],
            results: Array(repeating: nil, count: messages.count), onResult: onResult)
        defer { batch = nil }
        do {
            _ = try run(startWaitingTransactions())
        } catch {
            failRemainingMessages(with: error)
        }
        return (batch?.results ?? []).map {
            $0 ?? .failure(SMTPError(
                phase: .mail, kind: .protocolViolation("the session ended without a result"), isTemporary: true))
        }
    }

    /// Sends QUIT, waits briefly for the reply and closes. Errors are only noted in the transcript,
    /// because the messages are already sent.
    func quit() {
        guard connection != nil else { return }
        do {
            _ = try run(session.quit())
        } catch {
            transcript.note("QUIT: \(error)")
        }
        close()
    }

    func close() {
        connection?.close()
        connection = nil
    }

    // MARK: - Running the session

    /// Carries out actions, and reads replies while the session waits for one, until the session is
    /// ready, the batch in progress completed, or the connection closed.
    ///
    /// - Throws: the `SMTPError` of a `.fail` action, after the connection is closed.
    private func run(_ initial: [ClientSession.Action]) throws(SMTPError) -> Outcome {
        var actions = initial[...]
        var outcome: Outcome?
        var failure: SMTPError?
        while true {
            while let action = actions.popFirst() {
                switch action {
                case .write(let bytes):
                    transcript.client(bytes)
                    connection?.enqueue(bytes)
                case .writeRedacted(let bytes, let shown):
                    transcript.clientRedacted(shown)
                    connection?.enqueue(bytes)
                case .startTLS:
                    actions += startTLS()
                case .sendMessageContent:
                    actions += sendMessageContent()
                case .ready:
                    if batch == nil {
                        outcome = .ready
                    } else {
                        actions += startWaitingTransactions()
                    }
                case .transactionCompleted(let result):
                    let finished = batch!.inProgress.removeFirst()
                    complete(finished.index, result)
                    if batch!.isComplete {
                        outcome = .batchCompleted
                    }
                case .fail(let error):
                    failure = error
                case .close:
                    flushBeforeClose()
                    close()
                }
            }
            if let failure {
                close()
                throw failure
            }
            guard connection != nil else { return outcome ?? .closed }
            if let flushFailure = flushBlock() {
                actions += flushFailure
                continue
            }
            if let outcome { return outcome }
            guard let phase = session.awaitedPhase else { return .closed }
            actions += receive(timeout: replyTimeRemaining(for: phase))
        }
    }

    /// Starts as many waiting transactions as the session accepts now: one when it is idle, and one
    /// more behind a transaction that has written its content when the server pipelines. A message
    /// that fails its checks before MAIL gets its result at once, and the next one is tried.
    private func startWaitingTransactions() -> [ClientSession.Action] {
        var actions: [ClientSession.Action] = []
        while session.canSend, let next = batch?.waiting.popFirst() {
            let transaction = Transaction(
                sender: next.envelope.sender, recipients: next.envelope.recipients,
                content: next.message.statistics, deliveryStatus: next.envelope.deliveryStatus)
            let started = session.send(transaction)
            if case .transactionCompleted(let result)? = started.first, started.count == 1 {
                complete(next.index, result)
                continue
            }
            batch!.inProgress.append((next.index, next.message))
            actions += started
        }
        return actions
    }

    /// Gives the session's error to the message in progress, and to the later ones without the
    /// recipient results, which belong to the first. The later ones get the MAIL phase, because their
    /// content was never sent and their outcome is known: not delivered.
    private func failRemainingMessages(with error: SMTPError) {
        guard let current = batch else { return }
        let unsent = SMTPError(phase: .mail, kind: error.kind, reply: error.reply, isTemporary: error.isTemporary)
        batch!.inProgress = []
        batch!.waiting = []
        for (position, entry) in current.inProgress.enumerated() {
            complete(entry.index, .failure(position == 0 ? error : unsent))
        }
        for entry in current.waiting {
            complete(entry.index, .failure(unsent))
        }
    }

    /// Records a message's result and reports it.
    private func complete(_ index: Int, _ result: Result<TransactionResult, SMTPError>) {
        batch!.results[index] = result
        batch!.onResult?(index, result)
    }

    /// Performs the handshake of implicit TLS before the greeting (RFC 8314 section 3.3).
    private func startImplicitTLS() throws(SMTPError) {
        guard let connection else { return }
        do {
            let info = try connection.startTLS(
                configuration: configuration.tls, serverName: configuration.host,
                timeout: configuration.timeouts.greeting, deadline: deadline)
            transcript.note("TLS \(info.protocolVersion) \(info.cipher)")
            tlsSession = info
        } catch {
            close()
            if let error = error as? TLSError {
                throw SMTPError(
                    phase: .tlsHandshake, kind: .tlsFailed(error.description),
                    isTemporary: error.kind != .invalidConfiguration)
            }
            var failure = Self.connectError(error)
            failure = SMTPError(phase: .tlsHandshake, kind: failure.kind, isTemporary: failure.isTemporary)
            throw failure
        }
    }

    /// Performs the TLS handshake after the server's 220 to STARTTLS. The connection refuses bytes
    /// that arrived before the client's first handshake message, which an attacker may have injected.
    private func startTLS() -> [ClientSession.Action] {
        guard let connection else { return session.connectionClosed() }
        do {
            let info = try connection.startTLS(
                configuration: configuration.tls, serverName: configuration.host,
                timeout: configuration.timeouts.command, deadline: deadline)
            transcript.note("TLS \(info.protocolVersion) \(info.cipher)")
            tlsSession = info
            return session.tlsEstablished()
        } catch let error as TLSError {
            // A TLS configuration that cannot be used fails every attempt the same way.
            return session.tlsFailed(error.description, isTemporary: error.kind != .invalidConfiguration)
        } catch {
            return handle(error)
        }
    }

    /// Returns how long the client may still wait for the reply it expects. The timeout of RFC 5321
    /// section 4.5.3.2 bounds the whole reply, so a server that sends it one byte at a time cannot
    /// restart the clock with each byte.
    private func replyTimeRemaining(for phase: SMTPPhase) -> Duration {
        let now = ContinuousClock.now
        if replyClock == nil || replyClock?.phase != phase || replyClock?.replyCount != session.replyCount {
            replyClock = (phase, session.replyCount, now + configuration.timeouts.forReply(to: phase))
        }
        let remaining = replyClock!.expiry - now
        return max(remaining, .milliseconds(1))
    }

    private func receive(timeout: Duration) -> [ClientSession.Action] {
        guard let connection else { return session.connectionClosed() }
        do {
            let bytes = try connection.read(maxBytes: 64 * 1024, timeout: timeout, deadline: deadline)
            transcript.server(bytes, redacting: session.sentSecrets)
            return session.receive(bytes)
        } catch {
            return handle(error)
        }
    }

    /// Writes what is buffered as one block, which the server must accept within the data-block timeout
    /// as a whole. Returns the session's actions for a failure, or nil on success.
    ///
    /// A block is one chunk of message content (`OutgoingMessage.chunkSize`, 64 KiB), or the commands
    /// written before the client waits for a reply. The last block of a message is its last chunk, under
    /// 64 KiB, with the end-of-data line and, with PIPELINING, the next message's MAIL, RCPT and DATA.
    private func flushBlock() -> [ClientSession.Action]? {
        guard let connection else { return nil }
        let blockSize = connection.pendingOutputCount
        let writtenBefore = connection.bytesWritten
        do {
            try connection.flush(timeout: configuration.timeouts.dataBlock, deadline: deadline)
            return nil
        } catch let error as TransportError {
            guard case let .timedOut(_, _, timeout, expiredLimit) = error else {
                return handle(error)
            }
            let sent = connection.bytesWritten - writtenBefore
            // The server discards a message that lacks its final ".", so sending the rest of the block
            // before closing would only delay the close.
            close()
            guard expiredLimit == .stepTimeout else {
                return session.timedOut(error.description)
            }
            return session.timedOut(
                "The server at \(remoteAddress) took longer than the data-block timeout of \(timeout) to accept "
                    + "a block of \(blockSize) octets, and only \(sent) of them were sent in that time. "
                    + "The server reads too slowly or has stopped reading. "
                    + "Raise the data-block timeout or try again later.")
        } catch {
            return handle(error)
        }
    }

    /// Sends what is buffered, such as QUIT after a rejection, waiting at most one second in all.
    private func flushBeforeClose() {
        _ = try? connection?.flush(timeout: .seconds(1), deadline: deadline)
    }

    private func handle(_ error: any Error) -> [ClientSession.Action] {
        switch error as? TransportError {
        case .closedByPeer?:
            return session.connectionClosed()
        case .timedOut?:
            return session.timedOut(String(describing: error))
        case .cancelled?:
            close()
            return [.fail(SMTPError(
                phase: session.awaitedPhase ?? .connect, kind: .cancelled, isTemporary: true))]
        default:
            return session.connectionFailed(String(describing: error))
        }
    }

    /// Streams the pending message through the transparency encoder, in blocks of one chunk. On a failure
    /// the connection is closed without the final ".", so the server discards what it received.
    private func sendMessageContent() -> [ClientSession.Action] {
        guard let message = batch?.inProgress.first?.message, let connection else {
            return session.messageContentFailed(SMTPError(
                phase: .dataTransfer, kind: .protocolViolation("no message to send"), isTemporary: false))
        }
        if let encoded = message.encoded {
            // The content stays buffered, so that the next transaction's commands go in the same write.
            connection.enqueue(encoded)
            transcript.note("message content: \(encoded.count) octets, ending with CRLF.CRLF")
            return session.messageContentSent() + startWaitingTransactions()
        }
        let blockSize = OutgoingMessage.chunkSize
        var encoder = DataEncoder()
        var output: [UInt8] = []
        var octets = 0
        do {
            var reader = try message.content.makeReader()
            while let chunk = try reader.read(maxLength: OutgoingMessage.chunkSize) {
                try encoder.encode(chunk, into: &output)
                // The encoder can double a chunk (a bare LF becomes CRLF), so the output is cut into blocks
                // of one chunk, each of which must go out within the data-block timeout.
                while output.count >= blockSize {
                    connection.enqueue(output.prefix(blockSize))
                    output.removeFirst(blockSize)
                    octets += blockSize
                    if let failure = flushBlock() {
                        return failure
                    }
                }
            }
            encoder.finish(into: &output)
            octets += output.count
            // The last chunk stays buffered, so that the next transaction's commands go in the same write.
            connection.enqueue(output)
            transcript.note("message content: \(octets) octets, ending with CRLF.CRLF")
        } catch let error as DataEncodingError {
            return session.messageContentFailed(SMTPError(
                phase: .dataTransfer, kind: .invalidMessage(error), isTemporary: false))
        } catch {
            return session.messageContentFailed(SMTPError(
                phase: .dataTransfer, kind: .protocolViolation("reading the message failed: \(error)"),
                isTemporary: true))
        }
        return session.messageContentSent() + startWaitingTransactions()
    }

    /// Returns whether the idle connection can take a message: false when the server closed it or
    /// sent something while it was idle, such as a 421 before an idle timeout. Nothing is written.
    func checkIdle() -> Bool {
        do {
            try checkIdleConnection()
            return true
        } catch {
            return false
        }
    }

    /// Reads what the server sent while the connection was idle, such as a 421 before an idle
    /// timeout or the end of the connection, so that a reused connection fails before MAIL is sent.
    private func checkIdleConnection() throws(SMTPError) {
        guard let connection else {
            throw SMTPError(phase: .mail, kind: .connectionClosed, isTemporary: true)
        }
        // A failed poll counts as readable, so that the read reports the error.
        guard (try? connection.pollReadable(timeout: .zero)) ?? true else { return }
        _ = try run(receive(timeout: configuration.timeouts.command))
        if self.connection == nil || !session.isReady {
            throw SMTPError(phase: .mail, kind: .connectionClosed, isTemporary: true)
        }
    }

    // MARK: - Helpers

    private static func connectError(_ error: any Error) -> SMTPError {
        switch error as? TransportError {
        case .cancelled?:
            return SMTPError(phase: .connect, kind: .cancelled, isTemporary: true)
        case .timedOut?:
            return SMTPError(phase: .connect, kind: .timedOut(String(describing: error)), isTemporary: true)
        case .nameResolutionFailed(_, _, let isTemporary)?:
            return SMTPError(
                phase: .connect, kind: .connectionFailed(String(describing: error)), isTemporary: isTemporary)
        case let transportError?:
            return SMTPError(phase: .connect, kind: .connectionFailed(transportError.description), isTemporary: true)
        case nil:
            return SMTPError(phase: .connect, kind: .connectionFailed(String(describing: error)), isTemporary: true)
        }
    }

    /// Returns the host name when it is fully qualified, or else an address literal of the local address
    /// (RFC 5321 section 4.1.3), because servers may reject an unqualified name.
    static func defaultClientName(localAddress: String) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        if gethostname(&buffer, buffer.count) == 0 {
            let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if name.contains("."), !name.hasSuffix("."), name.utf8.allSatisfy({ $0 < 0x80 && $0 > 0x20 }) {
                return name
            }
        }
        return addressLiteral(localAddress)
    }

    /// Returns whether a printable socket address (`127.0.0.1:25`, `[::1]:25`) is a loopback address:
    /// 127.0.0.0/8, ::1, or 127.0.0.0/8 mapped into IPv6.
    static func isLoopback(_ address: String) -> Bool {
        var host = address
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
            host = String(host[host.index(after: host.startIndex)..<end])
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        let lowered = host.lowercased()
        if lowered == "::1" { return true }
        if lowered.hasPrefix("::ffff:") { host = String(host.dropFirst("::ffff:".count)) }
        let octets = host.split(separator: ".")
        return octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// Returns `[192.0.2.1]` or `[IPv6:2001:db8::1]` from a printable socket address with a port.
    static func addressLiteral(_ address: String) -> String {
        if address.hasPrefix("[") , let end = address.firstIndex(of: "]") {
            return "[IPv6:" + address[address.index(after: address.startIndex)..<end] + "]"
        }
        let host = address.split(separator: ":").first.map(String.init) ?? address
        return "[\(host)]"
    }
}
