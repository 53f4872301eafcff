import Foundation
import Glibc
import SMTPClient
import SMTPCore
import Synchronization

/// The SMTP server of `outbox capture`: listens on a loopback address, runs each connection on a thread
/// of its own, and saves every message a client sends to a Maildir.
///
/// `start()` starts the accept thread. The server runs until `stop()` is called, or until it has saved
/// `maxMessages` messages. After the last message it stops accepting connections and gives open
/// sessions `drainTimeout` to finish, so the client that sent the last message can still send QUIT.
/// `waitUntilFinished()` returns once every connection is closed.
final class CaptureServer: Sendable {
    struct Configuration: Sendable {
        var address: LoopbackAddress
        /// The TCP port; 0 lets the system choose a free one, which `port` then contains.
        var port: UInt16 = 0
        /// The host name in the greeting and in Received fields.
        var serverName = Maildir.hostName()
        var limits = CaptureSession.Limits()
        /// The maximum number of connections served at once. A connection beyond it gets 421 and is closed.
        ///
        /// NOTE: each session keeps the message it receives in memory, so with the defaults the worst
        /// case is 32 sessions of 25 MiB each, about 800 MiB.
        var maxConnections = 32
        /// The maximum wait for the client's next bytes, and for the client to take a reply. RFC 5321
        /// section 4.5.3.2.7 requires a server to wait at least 5 minutes for the next command.
        var idleTimeout: Duration = .seconds(300)
        /// How long open sessions may go on after the server saved `maxMessages` messages.
        var drainTimeout: Duration = .seconds(5)
        /// The number of messages after which the server stops; nil for no limit.
        var maxMessages: Int?
        /// The certificate and key for TLS, or nil for a server without TLS.
        var tls: TLSServerContext?
        /// Whether every connection starts with the TLS handshake (implicit TLS, as on port 465) instead
        /// of offering STARTTLS. It needs `tls`.
        var usesImplicitTLS = false
        /// The maximum time for a TLS handshake.
        var tlsHandshakeTimeout: Duration = .seconds(30)
        /// AUTH and what the sessions require. `offersStartTLS` is set from `tls` and `usesImplicitTLS`.
        var security = CaptureSession.Security()

        init(address: LoopbackAddress) {
            self.address = address
        }
    }

    /// A message that the server saved, for the caller to report.
    struct SavedMessage: Sendable {
        let date: Date
        let message: CapturedMessage
        /// The path of the message's file in the Maildir's `new` directory.
        let path: String
    }

    private struct State {
        var isStarted = false
        var isAccepting = false
        /// When open sessions must end because the server saved `maxMessages` messages; nil until then.
        var drainDeadline: ContinuousClock.Instant?
        var isStopping = false
        var isFinished = false
        /// Set when `finishIfDone()` starts finishing, before its last log line, so that it runs once.
        var isFinishing = false
        var openConnections = 0
        var nextConnectionID = 1
        /// Messages saved or being saved, so that concurrent sessions cannot exceed `maxMessages`.
        var reservedMessages = 0
        var savedMessages = 0
        var rejectedConnections = 0
        /// Whether a rejection for too many connections was logged since the count was last below the limit.
        var isConnectionLimitLogged = false
        var finishWaiters: [CheckedContinuation<Void, Never>] = []
    }

    let configuration: Configuration
    let maildir: Maildir
    /// The port the server listens on.
    let port: UInt16
    private let listener: Int32
    /// A pipe that becomes readable for good when the server stops or begins draining, so that the accept
    /// thread's poll(2) wakes up. Stopping and draining write one byte each, and nothing reads it.
    private let stopAcceptingSignal: SignalPipe
    /// The signal shared by every connection. Cancelling it wakes each blocked read or write, when the
    /// server stops or when the drain deadline passes.
    private let cancellation: CancellationSignal
    private let state = Mutex(State())
    private let onMessageSaved: @Sendable (SavedMessage) -> Void
    private let log: @Sendable (String) -> Void

    /// Binds the listening socket.
    ///
    /// - Parameters:
    ///   - onMessageSaved: called on the connection's thread after each message is saved, before the
    ///     client gets the reply.
    ///   - log: receives a line for every error that the server handles without stopping.
    /// - Throws: `SystemCallError` when the socket cannot be created or bound, for example because the port
    ///   is in use.
    init(
        configuration: Configuration, maildir: Maildir,
        onMessageSaved: @escaping @Sendable (SavedMessage) -> Void, log: @escaping @Sendable (String) -> Void
    ) throws(SystemCallError) {
        self.configuration = configuration
        self.maildir = maildir
        self.onMessageSaved = onMessageSaved
        self.log = log
        do {
            cancellation = try CancellationSignal()
        } catch {
            // CancellationSignal fails only when eventfd(2) is missing or fails.
            if case .systemCallFailed(let call, let errorNumber, _) = error as? TransportError {
                throw SystemCallError(call, errorNumber)
            }
            throw SystemCallError("eventfd", EIO)
        }
        stopAcceptingSignal = try SignalPipe()
        do {
            (listener, port) = try Self.listen(on: configuration.address, port: configuration.port)
        } catch {
            stopAcceptingSignal.close()
            throw error
        }
    }

    deinit {
        let isStarted = state.withLock { $0.isStarted }
        if !isStarted {
            Glibc.close(listener)
            stopAcceptingSignal.close()
        }
    }

    /// The address and port the server listens on, as `127.0.0.1:2525` or `[::1]:2525`.
    var endpoint: String {
        configuration.address.endpoint(port: port)
    }

    var savedMessageCount: Int {
        state.withLock { $0.savedMessages }
    }

    /// Starts accepting connections on a thread of its own. Call it once.
    func start() {
        state.withLock { state in
            precondition(!state.isStarted, "CaptureServer.start called twice")
            state.isStarted = true
            state.isAccepting = true
        }
        let thread = Thread { [self] in
            acceptConnections()
        }
        thread.name = "outbox capture: accept"
        thread.start()
    }

    /// Stops the server: closes the listener, sends 421 to every open session and closes it. Returns at
    /// once; `waitUntilFinished()` returns when every connection is closed.
    func stop() {
        state.withLock { state in
            guard !state.isStopping, !state.isFinishing else { return }
            state.isStopping = true
            stopAcceptingSignal.raise()
        }
        cancellation.cancel()
    }

    /// Waits until the server, once started, has stopped and closed every connection.
    func waitUntilFinished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let isFinished = state.withLock { state in
                if !state.isFinished {
                    state.finishWaiters.append(continuation)
                }
                return state.isFinished
            }
            if isFinished {
                continuation.resume()
            }
        }
    }

    // MARK: - Accepting

    private func acceptConnections() {
        var descriptors = [
            pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stopAcceptingSignal.readDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            for index in descriptors.indices {
                descriptors[index].revents = 0
            }
            if poll(&descriptors, nfds_t(descriptors.count), -1) < 0 {
                if errno == EINTR {
                    continue
                }
                log("outbox capture: waiting for connections failed: \(SystemCallError("poll", errno)); stopping")
                break
            }
            if descriptors[1].revents != 0 {
                break
            }
            if descriptors[0].revents != 0 {
                acceptConnection()
            }
        }
        // Closing the listener makes new connections fail at once instead of waiting in the backlog.
        Glibc.close(listener)
        state.withLock { $0.isAccepting = false }
        finishIfDone()
    }

    private func acceptConnection() {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let descriptor = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener, $0, &length) }
        }
        guard descriptor >= 0 else {
            let errorNumber = errno
            switch errorNumber {
            case EINTR, EAGAIN, ECONNABORTED:
                return
            default:
                // EMFILE and similar: without a pause, poll would report the pending connection again at once.
                log("outbox capture: accepting a connection failed: \(SystemCallError("accept", errorNumber))")
                usleep(100_000)
                return
            }
        }
        // Glibc's Swift module lacks accept4, so FD_CLOEXEC is set afterwards. A process that another
        // thread starts in between would inherit the descriptor, but `outbox capture` starts none.
        // `TCPConnection.adopting` makes the socket non-blocking on the connection's thread.
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        var enabled: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &enabled, socklen_t(MemoryLayout<Int32>.size))
        let peer = PeerAddress(storage, length: length)

        let admission = state.withLock { state -> Admission in
            guard state.openConnections < configuration.maxConnections else {
                state.rejectedConnections += 1
                defer { state.isConnectionLimitLogged = true }
                return .rejected(logs: !state.isConnectionLimitLogged)
            }
            state.openConnections += 1
            state.nextConnectionID += 1
            return .admitted(connectionID: state.nextConnectionID - 1)
        }
        guard case .admitted(let connectionID) = admission else {
            if case .rejected(let logs) = admission {
                rejectConnection(descriptor, peer: peer, logs: logs)
            }
            return
        }
        let thread = Thread { [self] in
            serve(descriptor: descriptor, peer: peer, connectionID: connectionID)
            state.withLock { state in
                state.openConnections -= 1
                state.isConnectionLimitLogged = false
            }
            finishIfDone()
        }
        thread.name = "outbox capture: connection \(connectionID)"
        thread.start()
    }

    private enum Admission {
        case admitted(connectionID: Int)
        /// Over the connection limit. `logs` is true for the first rejection since the count was below it.
        case rejected(logs: Bool)
    }

    /// Sends 421 to a connection over the limit and closes it, without a thread and without blocking.
    private func rejectConnection(_ descriptor: Int32, peer: PeerAddress, logs: Bool) {
        let reply = SMTPReply(
            code: 421, lines: ["\(configuration.serverName) Too many connections, try again later"],
            enhancedCode: EnhancedStatusCode(statusClass: 4, subject: 3, detail: 2))
        Self.sendWithoutWaiting(reply.encoded()[...], to: descriptor)
        Glibc.close(descriptor)
        if logs {
            log(
                "outbox capture: rejected a connection from \(peer.endpoint): \(configuration.maxConnections) "
                    + "connections are open, the limit. Further rejections are counted until one closes.")
        }
    }

    /// Closes the signal pipe and wakes `waitUntilFinished()` once the accept thread and every connection
    /// thread have ended.
    private func finishIfDone() {
        let rejected = state.withLock { state -> Int? in
            guard !state.isAccepting, state.openConnections == 0, !state.isFinishing else {
                return nil
            }
            state.isFinishing = true
            // Closed under the lock, so that `stop()` never writes to a closed or reused descriptor.
            stopAcceptingSignal.close()
            return state.rejectedConnections
        }
        guard let rejected else {
            return
        }
        if rejected > 0 {
            log(
                "outbox capture: rejected \(rejected) connection(s) over the limit of "
                    + "\(configuration.maxConnections)")
        }
        // Finished only after the last log line, so that `waitUntilFinished()` returns after it.
        let waiters = state.withLock { state in
            state.isFinished = true
            defer { state.finishWaiters = [] }
            return state.finishWaiters
        }
        for waiter in waiters {
            waiter.resume()
        }
    }

    // MARK: - Sessions

    /// Runs the SMTP dialogue on one connection until the client quits, the session fails, or the
    /// server stops, then closes the connection.
    private func serve(descriptor: Int32, peer: PeerAddress, connectionID: Int) {
        let label = "connection \(connectionID) from \(peer.endpoint)"
        let connection: TCPConnection
        do {
            connection = try TCPConnection.adopting(acceptedDescriptor: descriptor, cancellation: cancellation)
        } catch {
            log("outbox capture: \(label) failed: \(error)")
            return
        }
        defer { connection.close() }
        var security = configuration.security
        security.offersStartTLS = configuration.tls != nil && !configuration.usesImplicitTLS
        var session = CaptureSession(
            serverName: configuration.serverName, limits: configuration.limits, security: security)
        if configuration.usesImplicitTLS, let tls = configuration.tls {
            do {
                let info = try connection.acceptTLS(
                    context: tls, timeout: configuration.tlsHandshakeTimeout, deadline: nil)
                session.startWithTLS(protocolVersion: info.protocolVersion)
            } catch TransportError.cancelled {
                return
            } catch {
                log("outbox capture: the TLS handshake on \(label) failed: \(error)")
                return
            }
        }
        var output = session.greeting.encoded()
        var lastReply = session.greeting

        do {
            while true {
                let drainDeadline = state.withLock { $0.drainDeadline }
                if drainDeadline != nil {
                    session.acceptsMessages = false
                }
                let action = handleEvents(of: &session, output: &output, lastReply: &lastReply, peer: peer, label: label)
                if !output.isEmpty {
                    // Replies to pipelined commands go out together, before the next read, because RFC 2920
                    // requires a server to send its pending replies before it waits for input.
                    do {
                        let idleTimeout = configuration.idleTimeout
                        try connection.write(output, timeout: idleTimeout, deadline: .now + idleTimeout)
                    } catch TransportError.timedOut {
                        log(
                            "outbox capture: \(label) did not read the replies for "
                                + "\(configuration.idleTimeout); closing it")
                        return
                    } catch TransportError.closedByPeer, TransportError.cancelled {
                        return
                    }
                    output = []
                }
                switch action {
                case .close:
                    if lastReply.code != 221 {
                        log("outbox capture: closed \(label) after replying \"\(lastReply)\"")
                    }
                    return
                case .startTLS:
                    guard startTLS(on: connection, session: &session, deadline: drainDeadline, label: label) else {
                        return
                    }
                    continue
                case .readInput:
                    break
                }

                do {
                    let bytes = try connection.read(timeout: configuration.idleTimeout, deadline: drainDeadline)
                    session.receive(bytes)
                } catch TransportError.closedByPeer {
                    if session.isReceivingData {
                        log("outbox capture: the client closed \(label) during DATA; the partial message is discarded")
                    }
                    return
                } catch TransportError.timedOut {
                    let isDraining = drainDeadline != nil
                    if !isDraining {
                        log("outbox capture: \(label) sent nothing for \(configuration.idleTimeout); closing it")
                    }
                    let reply = isDraining ? session.shutdownReply : session.timeoutReply
                    try sendClosingReply(reply, on: connection)
                    return
                } catch TransportError.cancelled {
                    try sendClosingReply(session.shutdownReply, on: connection)
                    return
                }
            }
        } catch {
            log("outbox capture: \(label) failed: \(error)")
        }
    }

    /// Runs the server side of the TLS handshake after the 220 reply to STARTTLS. Returns false, after
    /// logging why, when the handshake fails and the connection must close.
    private func startTLS(
        on connection: TCPConnection, session: inout CaptureSession, deadline: ContinuousClock.Instant?, label: String
    ) -> Bool {
        guard let tls = configuration.tls else {
            preconditionFailure("a session offered STARTTLS without a TLS context")
        }
        do {
            let info = try connection.acceptTLS(
                context: tls, timeout: configuration.tlsHandshakeTimeout, deadline: deadline)
            session.finishStartTLS(protocolVersion: info.protocolVersion)
            return true
        } catch TransportError.cancelled {
            return false
        } catch {
            log("outbox capture: the TLS handshake after STARTTLS on \(label) failed: \(error)")
            return false
        }
    }

    /// Sends the 421 reply that precedes closing a connection, waiting at most a second for the client to
    /// take it. A client that closed the connection or does not read gets no reply.
    ///
    /// Once `cancellation` is cancelled, `connection.write` no longer sends, so the reply goes out with
    /// `flushWithoutWaiting()`, through the TLS stream when TLS is active.
    private func sendClosingReply(_ reply: SMTPReply, on connection: TCPConnection) throws {
        do {
            try connection.write(reply.encoded(), timeout: .seconds(1), deadline: nil)
        } catch TransportError.cancelled {
            connection.flushWithoutWaiting()
        } catch TransportError.closedByPeer, TransportError.timedOut {
            return
        }
    }

    /// Sends as much of `bytes` as the socket's send buffer takes at once, ignoring errors, for a reply
    /// right before the socket is closed.
    private static func sendWithoutWaiting(_ bytes: ArraySlice<UInt8>, to descriptor: Int32) {
        // MSG_NOSIGNAL makes a send to a closed peer fail with EPIPE instead of raising SIGPIPE.
        _ = bytes.withUnsafeBytes {
            Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
    }

    /// The next step of a connection, after it writes the replies that `handleEvents` collected.
    private enum SessionAction {
        case readInput
        case close
        case startTLS
    }

    /// Carries out the session's events until it needs input, a TLS handshake or the end of the
    /// connection: collects replies in `output` and saves messages.
    private func handleEvents(
        of session: inout CaptureSession, output: inout [UInt8], lastReply: inout SMTPReply, peer: PeerAddress,
        label: String
    ) -> SessionAction {
        var action = SessionAction.readInput
        while let event = session.nextEvent() {
            switch event {
            case .reply(let reply):
                output += reply.encoded()
                lastReply = reply
                // A rejected login is logged, without the user name or password, so that a developer
                // can see why a client failed.
                if reply.code == 535 || reply.code == 538 {
                    log("outbox capture: rejected AUTH on \(label): \(reply)")
                }
            case .message(let message):
                session.finishMessage(save(message, peer: peer, label: label))
                // After the last message, a MAIL pipelined behind it must already find the server draining.
                if state.withLock({ $0.drainDeadline != nil }) {
                    session.acceptsMessages = false
                }
            case .close:
                action = .close
            case .startTLS:
                action = .startTLS
            }
        }
        return action
    }

    /// Saves a message to the Maildir and reports it, unless `maxMessages` messages are saved already.
    private func save(_ message: CapturedMessage, peer: PeerAddress, label: String) -> CaptureSession.SaveOutcome {
        let maxMessages = configuration.maxMessages
        let isReserved = state.withLock { state in
            if let maxMessages, state.reservedMessages >= maxMessages {
                return false
            }
            state.reservedMessages += 1
            return true
        }
        guard isReserved else {
            return .refused
        }

        let date = Date()
        let bytes = message.savedBytes(
            clientAddress: peer.addressLiteral, serverName: configuration.serverName, date: date)
        let path: String
        do {
            path = try maildir.deliver(bytes, date: date)
        } catch {
            state.withLock { $0.reservedMessages -= 1 }
            log(
                "outbox capture: saving a message from <\(message.sender)> on \(label) failed: \(error). "
                    + "The client was told to try again later.")
            return .failed
        }
        onMessageSaved(SavedMessage(date: date, message: message, path: path))

        let reachedMax = state.withLock { state in
            state.savedMessages += 1
            return maxMessages.map { state.savedMessages >= $0 } ?? false
        }
        if reachedMax {
            startDraining()
        }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return .saved(name: name)
    }

    /// Stops accepting connections, and cancels the open ones once `drainTimeout` has passed.
    private func startDraining() {
        let drainDeadline = ContinuousClock.now + configuration.drainTimeout
        let isStarted = state.withLock { state in
            guard state.drainDeadline == nil, !state.isFinishing else {
                return false
            }
            state.drainDeadline = drainDeadline
            stopAcceptingSignal.raise()
            return true
        }
        guard isStarted else {
            return
        }
        // Sessions that read after this see the deadline, but one already blocked in a read waits with the
        // idle timeout only. Cancelling wakes it, and it then sends the same 421 as at a stop.
        Task { [cancellation] in
            try? await Task.sleep(until: drainDeadline)
            cancellation.cancel()
        }
    }

    // MARK: - Listening socket

    private static func listen(on address: LoopbackAddress, port: UInt16) throws(SystemCallError) -> (Int32, UInt16) {
        let socketType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let descriptor = socket(address.family, socketType, Int32(IPPROTO_TCP))
        guard descriptor >= 0 else {
            throw SystemCallError("socket", errno)
        }
        do throws(SystemCallError) {
            var enabled: Int32 = 1
            let size = socklen_t(MemoryLayout<Int32>.size)
            // SO_REUSEADDR lets a restarted server bind the port of one whose connections are in TIME_WAIT.
            if setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &enabled, size) != 0 {
                throw SystemCallError("setsockopt(SO_REUSEADDR)", errno)
            }
            if address.family == AF_INET6,
               setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &enabled, size) != 0 {
                throw SystemCallError("setsockopt(IPV6_V6ONLY)", errno)
            }
            let status = address.withSocketAddress(port: port) { Glibc.bind(descriptor, $0, $1) }
            if status != 0 {
                throw SystemCallError("bind to \(address.endpoint(port: port))", errno)
            }
            if Glibc.listen(descriptor, 128) != 0 {
                throw SystemCallError("listen", errno)
            }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let nameStatus = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            if nameStatus != 0 {
                throw SystemCallError("getsockname", errno)
            }
            return (descriptor, PeerAddress(storage, length: length).port)
        } catch {
            Glibc.close(descriptor)
            throw error
        }
    }
}

// MARK: - Addresses

/// An IPv4 or IPv6 loopback address to listen on: 127.0.0.0/8 or ::1.
struct LoopbackAddress: Sendable, Equatable, CustomStringConvertible {
    let family: Int32
    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    let bytes: [UInt8]
    /// The address as written in canonical form, such as `127.0.0.1` or `::1`.
    let description: String

    static let ipv4 = LoopbackAddress(family: AF_INET, bytes: [127, 0, 0, 1], description: "127.0.0.1")

    private init(family: Int32, bytes: [UInt8], description: String) {
        self.family = family
        self.bytes = bytes
        self.description = description
    }

    /// Parses an IPv4 or IPv6 literal, with or without brackets, and accepts it only if it is a loopback
    /// address. Host names are rejected, so that no name lookup can lead elsewhere.
    init(parsing text: String) throws(LoopbackAddressError) {
        var literal = text
        if literal.hasPrefix("["), literal.hasSuffix("]") {
            literal = String(literal.dropFirst().dropLast())
        }
        var ipv4 = in_addr()
        var ipv6 = in6_addr()
        if inet_pton(AF_INET, literal, &ipv4) == 1 {
            let bytes = withUnsafeBytes(of: ipv4) { Array($0) }
            guard bytes[0] == 127 else {
                throw .notLoopback(text)
            }
            self.init(family: AF_INET, bytes: bytes, description: bytes.map(String.init).joined(separator: "."))
        } else if inet_pton(AF_INET6, literal, &ipv6) == 1 {
            let bytes = withUnsafeBytes(of: ipv6) { Array($0) }
            guard bytes == Array(repeating: 0, count: 15) + [1] else {
                throw .notLoopback(text)
            }
            self.init(family: AF_INET6, bytes: bytes, description: "::1")
        } else {
            throw .notAnAddress(text)
        }
    }

    /// Returns the address with a port: `127.0.0.1:2525`, or `[::1]:2525` for IPv6.
    func endpoint(port: UInt16) -> String {
        family == AF_INET6 ? "[\(description)]:\(port)" : "\(description):\(port)"
    }

    func withSocketAddress<Result>(port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        if family == AF_INET6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
}

/// An address that `outbox capture` will not listen on.
enum LoopbackAddressError: Error, Equatable, CustomStringConvertible {
    case notAnAddress(String)
    case notLoopback(String)

    var description: String {
        switch self {
        case .notAnAddress(let text):
            "\"\(text)\" is not an IP address. Give a loopback address such as 127.0.0.1 or ::1."
        case .notLoopback(let text):
            "\(text) is not a loopback address. Capture listens only on 127.0.0.0/8 or ::1, "
                + "so that no other machine can reach it."
        }
    }
}

/// The address of a connected client, read from accept(2).
struct PeerAddress: Sendable {
    /// The numeric host, such as `127.0.0.1` or `::1`.
    let host: String
    let port: UInt16
    let isIPv6: Bool

    init(_ storage: sockaddr_storage, length: socklen_t) {
        var storage = storage
        var hostBuffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serviceBuffer = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let status = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo(
                    $0, length, &hostBuffer, socklen_t(hostBuffer.count), &serviceBuffer,
                    socklen_t(serviceBuffer.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        isIPv6 = Int32(storage.ss_family) == AF_INET6
        guard status == 0 else {
            host = "unknown"
            port = 0
            return
        }
        func decode(_ buffer: [CChar]) -> String {
            String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        host = decode(hostBuffer)
        port = UInt16(decode(serviceBuffer)) ?? 0
    }

    /// The host and port, as `127.0.0.1:50000` or `[::1]:50000`.
    var endpoint: String {
        isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The host as an RFC 5321 address literal, as in a Received field: `[127.0.0.1]` or `[IPv6:::1]`.
    var addressLiteral: String {
        isIPv6 ? "[IPv6:\(host)]" : "[\(host)]"
    }
}

// MARK: - System calls

/// A failed system call, with the errno it set.
struct SystemCallError: Error, CustomStringConvertible {
    /// The call, such as "bind to 127.0.0.1:25".
    let call: String
    let errorNumber: Int32

    init(_ call: String, _ errorNumber: Int32) {
        self.call = call
        self.errorNumber = errorNumber
    }

    var description: String {
        "\(call) failed: \(String(cString: strerror(errorNumber)))"
    }
}

/// A pipe that wakes every poll(2) on its read end once `raise()` writes to it, because the byte
/// written is never read.
struct SignalPipe: Sendable {
    let readDescriptor: Int32
    private let writeDescriptor: Int32

    init() throws(SystemCallError) {
        var descriptors: [Int32] = [-1, -1]
        guard pipe(&descriptors) == 0 else {
            throw SystemCallError("pipe", errno)
        }
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        }
        readDescriptor = descriptors[0]
        writeDescriptor = descriptors[1]
    }

    func raise() {
        var byte: UInt8 = 1
        _ = Glibc.write(writeDescriptor, &byte, 1)
    }

    func close() {
        Glibc.close(readDescriptor)
        Glibc.close(writeDescriptor)
    }
}
