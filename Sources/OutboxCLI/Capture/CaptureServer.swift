import Foundation
import Glibc
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
        /// NOTE: each session holds the message it receives in memory, so with the defaults the worst
        /// case is 32 sessions of 25 MiB each, about 800 MiB.
        var maxConnections = 32
        /// The maximum wait for the client's next bytes, and for the client to take a reply. RFC 5321
        /// section 4.5.3.2.7 requires a server to wait at least 5 minutes for the next command.
        var idleTimeout: Duration = .seconds(300)
        /// How long open sessions may go on after the server saved `maxMessages` messages.
        var drainTimeout: Duration = .seconds(5)
        /// The number of messages after which the server stops; nil for no limit.
        var maxMessages: Int?

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
        var isDraining = false
        var isStopping = false
        var isFinished = false
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
    /// Pipes that become readable once, for good, when the server stops or begins draining, so that every
    /// thread's poll(2) wakes up. Each is written at most once and never read.
    private let stopSignal: SignalPipe
    private let drainSignal: SignalPipe
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
        stopSignal = try SignalPipe()
        do {
            drainSignal = try SignalPipe()
        } catch {
            stopSignal.close()
            throw error
        }
        do {
            (listener, port) = try Self.listen(on: configuration.address, port: configuration.port)
        } catch {
            stopSignal.close()
            drainSignal.close()
            throw error
        }
    }

    deinit {
        let isStarted = state.withLock { $0.isStarted }
        if !isStarted {
            Glibc.close(listener)
            stopSignal.close()
            drainSignal.close()
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
            guard !state.isStopping, !state.isFinished else { return }
            state.isStopping = true
            stopSignal.raise()
        }
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
            pollfd(fd: stopSignal.readDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: drainSignal.readDescriptor, events: Int16(POLLIN), revents: 0),
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
            if descriptors[1].revents != 0 || descriptors[2].revents != 0 {
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
        // Glibc's Swift module lacks accept4, so the flags are set afterwards. A process that another
        // thread starts in between would inherit the descriptor, but `outbox capture` starts none.
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
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
            Glibc.close(descriptor)
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
        let bytes = reply.encoded()
        _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        Glibc.close(descriptor)
        if logs {
            log(
                "outbox capture: rejected a connection from \(peer.endpoint): \(configuration.maxConnections) "
                    + "connections are open, the limit. Further rejections are counted until one closes.")
        }
    }

    /// Closes the signal pipes and wakes `waitUntilFinished()` once the accept thread and every connection
    /// thread have ended.
    private func finishIfDone() {
        let finished = state.withLock { state -> (waiters: [CheckedContinuation<Void, Never>], rejected: Int)? in
            guard !state.isAccepting, state.openConnections == 0, !state.isFinished else {
                return nil
            }
            state.isFinished = true
            // Closed under the lock, so that `stop()` never writes to a closed or reused descriptor.
            stopSignal.close()
            drainSignal.close()
            defer { state.finishWaiters = [] }
            return (state.finishWaiters, state.rejectedConnections)
        }
        guard let finished else {
            return
        }
        if finished.rejected > 0 {
            log(
                "outbox capture: rejected \(finished.rejected) connection(s) over the limit of "
                    + "\(configuration.maxConnections)")
        }
        for waiter in finished.waiters {
            waiter.resume()
        }
    }

    // MARK: - Sessions

    /// Runs the SMTP dialogue on one connection until the client quits, the session fails, or the
    /// server stops. The caller closes the descriptor.
    private func serve(descriptor: Int32, peer: PeerAddress, connectionID: Int) {
        let connection = CaptureConnection(
            descriptor: descriptor, stream: PlainCaptureStream(descriptor: descriptor),
            stopDescriptor: stopSignal.readDescriptor, drainDescriptor: drainSignal.readDescriptor)
        defer { connection.shutdown() }
        let label = "connection \(connectionID) from \(peer.endpoint)"
        var session = CaptureSession(serverName: configuration.serverName, limits: configuration.limits)
        var output = session.greeting.encoded()
        var lastReply = session.greeting
        var drainDeadline: ContinuousClock.Instant?
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)

        do {
            while true {
                if drainDeadline == nil, state.withLock({ $0.isDraining }) {
                    session.acceptsMessages = false
                    drainDeadline = .now + configuration.drainTimeout
                }
                let closes = handleEvents(of: &session, output: &output, lastReply: &lastReply, peer: peer, label: label)
                if !output.isEmpty {
                    // Replies to pipelined commands go out together, before the next read, because RFC 2920
                    // requires a server to send its pending replies before it waits for input.
                    let result = try connection.write(output, until: .now + configuration.idleTimeout)
                    output = []
                    guard result == .written else {
                        if result == .timedOut {
                            log(
                                "outbox capture: \(label) did not read the replies for "
                                    + "\(configuration.idleTimeout); closing it")
                        }
                        return
                    }
                }
                if closes {
                    if lastReply.code != 221 {
                        log("outbox capture: closed \(label) after replying \"\(lastReply)\"")
                    }
                    return
                }

                var deadline = ContinuousClock.now + configuration.idleTimeout
                if let drainDeadline {
                    deadline = min(deadline, drainDeadline)
                }
                switch try connection.read(into: &buffer, until: deadline) {
                case .received(let count):
                    session.receive(buffer[..<count])
                case .draining:
                    continue
                case .closed:
                    if session.isReceivingData {
                        log("outbox capture: the client closed \(label) during DATA; the partial message is discarded")
                    }
                    return
                case .timedOut:
                    let isDraining = drainDeadline != nil
                    let reply = isDraining ? session.shutdownReply : session.timeoutReply
                    if !isDraining {
                        log("outbox capture: \(label) sent nothing for \(configuration.idleTimeout); closing it")
                    }
                    _ = try connection.write(reply.encoded(), until: .now + .seconds(1), interruptible: false)
                    return
                case .stopped:
                    _ = try connection.write(
                        session.shutdownReply.encoded(), until: .now + .seconds(1), interruptible: false)
                    return
                }
            }
        } catch {
            log("outbox capture: \(label) failed: \(error)")
        }
    }

    /// Carries out the session's events until it needs input: collects replies in `output` and saves
    /// messages. Returns whether the session asked to close the connection.
    private func handleEvents(
        of session: inout CaptureSession, output: inout [UInt8], lastReply: inout SMTPReply, peer: PeerAddress,
        label: String
    ) -> Bool {
        var closes = false
        while let event = session.nextEvent() {
            switch event {
            case .reply(let reply):
                output += reply.encoded()
                lastReply = reply
            case .message(let message):
                session.finishMessage(save(message, peer: peer, label: label))
                // After the last message, a MAIL pipelined behind it must already find the server draining.
                if state.withLock({ $0.isDraining }) {
                    session.acceptsMessages = false
                }
            case .close:
                closes = true
            }
        }
        return closes
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

    private func startDraining() {
        state.withLock { state in
            guard !state.isDraining, !state.isFinished else { return }
            state.isDraining = true
            drainSignal.raise()
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

// MARK: - Connections and streams

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

/// The outcome of one non-blocking read or write on a `CaptureStream`.
enum CaptureStreamResult: Equatable {
    /// The call moved this many bytes, always at least one.
    case transferred(Int)
    /// The call would block until the descriptor reports one of these poll(2) events. A TLS stream can
    /// need POLLOUT during a read, or POLLIN during a write.
    case wouldBlock(events: Int16)
    /// The client closed the stream: end of stream on read, or ECONNRESET or EPIPE.
    case closed
}

/// The non-blocking byte stream under a capture session.
///
/// `CaptureConnection` owns the descriptor, the poll loop and the timeouts. A stream only moves bytes and
/// reports the poll event it needs next, so a TLS stream over the same descriptor can replace the plain
/// one for STARTTLS without changing the session or the connection.
protocol CaptureStream: AnyObject {
    /// Reads up to `buffer.count` bytes without blocking.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> CaptureStreamResult

    /// Writes up to `bytes.count` bytes without blocking.
    func send(_ bytes: UnsafeRawBufferPointer) throws -> CaptureStreamResult

    /// Whether the stream contains bytes already read from the descriptor but not yet returned, such as the
    /// rest of a decrypted TLS record, which poll(2) cannot see.
    var hasBufferedInput: Bool { get }

    /// Ends the stream before the descriptor is closed, without blocking.
    func shutdown()
}

/// A `CaptureStream` over a plain TCP socket.
final class PlainCaptureStream: CaptureStream {
    private let descriptor: Int32

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> CaptureStreamResult {
        while true {
            let count = recv(descriptor, buffer.baseAddress, buffer.count, 0)
            if count > 0 {
                return .transferred(count)
            }
            if count == 0 {
                return .closed
            }
            switch errno {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .wouldBlock(events: Int16(POLLIN))
            case ECONNRESET:
                return .closed
            case let errorNumber:
                throw SystemCallError("recv", errorNumber)
            }
        }
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws -> CaptureStreamResult {
        while true {
            // MSG_NOSIGNAL makes a write to a closed peer fail with EPIPE instead of raising SIGPIPE.
            let count = Glibc.send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if count > 0 {
                return .transferred(count)
            }
            if count == 0 {
                return .wouldBlock(events: Int16(POLLOUT))
            }
            switch errno {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .wouldBlock(events: Int16(POLLOUT))
            case EPIPE, ECONNRESET:
                return .closed
            case let errorNumber:
                throw SystemCallError("send", errorNumber)
            }
        }
    }

    var hasBufferedInput: Bool {
        false
    }

    func shutdown() {}
}

/// One client connection: a stream over a socket, with waits bounded by a deadline and woken by the
/// server's stop and drain signals. The caller closes the descriptor.
final class CaptureConnection {
    enum ReadResult: Equatable {
        /// This many bytes were read into the buffer, at least one.
        case received(Int)
        case closed
        case timedOut
        /// The server is stopping.
        case stopped
        /// The server began draining. Reported once; read again with a new deadline.
        case draining
    }

    enum WriteResult: Equatable {
        case written
        case closed
        case timedOut
        case stopped
    }

    private enum WaitResult {
        case ready
        case timedOut
        case stopped
        case draining
    }

    private let descriptor: Int32
    private let stream: any CaptureStream
    private let stopDescriptor: Int32
    private let drainDescriptor: Int32
    private var watchesDrain = true

    init(descriptor: Int32, stream: any CaptureStream, stopDescriptor: Int32, drainDescriptor: Int32) {
        self.descriptor = descriptor
        self.stream = stream
        self.stopDescriptor = stopDescriptor
        self.drainDescriptor = drainDescriptor
    }

    /// Reads what the client has sent, waiting until `deadline` for at least one byte.
    func read(into buffer: inout [UInt8], until deadline: ContinuousClock.Instant) throws -> ReadResult {
        var events = Int16(POLLIN)
        while true {
            if !stream.hasBufferedInput {
                switch try wait(for: events, until: deadline, interruptible: true) {
                case .ready:
                    break
                case .timedOut:
                    return .timedOut
                case .stopped:
                    return .stopped
                case .draining:
                    return .draining
                }
            }
            let result = try buffer.withUnsafeMutableBytes { try stream.receive(into: $0) }
            switch result {
            case .transferred(let count):
                return .received(count)
            case .closed:
                return .closed
            case .wouldBlock(let needed):
                events = needed
            }
        }
    }

    /// Writes all of `bytes`, waiting until `deadline` whenever the client's receive window is full.
    ///
    /// - Parameter interruptible: whether a stop of the server ends the wait, which it must not for the
    ///   421 reply sent because of the stop.
    func write(
        _ bytes: [UInt8], until deadline: ContinuousClock.Instant, interruptible: Bool = true
    ) throws -> WriteResult {
        var offset = 0
        while offset < bytes.count {
            let result = try bytes[offset...].withUnsafeBytes { try stream.send($0) }
            switch result {
            case .transferred(let count):
                offset += count
            case .closed:
                return .closed
            case .wouldBlock(let events):
                switch try wait(for: events, until: deadline, interruptible: interruptible) {
                case .ready, .draining:
                    continue
                case .timedOut:
                    return .timedOut
                case .stopped:
                    return .stopped
                }
            }
        }
        return .written
    }

    func shutdown() {
        stream.shutdown()
    }

    private func wait(
        for events: Int16, until deadline: ContinuousClock.Instant, interruptible: Bool
    ) throws -> WaitResult {
        var descriptors = [pollfd(fd: descriptor, events: events, revents: 0)]
        if interruptible {
            descriptors.append(pollfd(fd: stopDescriptor, events: Int16(POLLIN), revents: 0))
            if watchesDrain {
                descriptors.append(pollfd(fd: drainDescriptor, events: Int16(POLLIN), revents: 0))
            }
        }
        while true {
            for index in descriptors.indices {
                descriptors[index].revents = 0
            }
            let count = poll(&descriptors, nfds_t(descriptors.count), Self.milliseconds(until: deadline))
            if count < 0 {
                if errno == EINTR {
                    continue
                }
                throw SystemCallError("poll", errno)
            }
            if interruptible, descriptors[1].revents != 0 {
                return .stopped
            }
            if interruptible, watchesDrain, descriptors[2].revents != 0 {
                // The pipe stays readable, so stop polling it once the drain is reported.
                watchesDrain = false
                return .draining
            }
            if descriptors[0].revents != 0 {
                return .ready
            }
            if ContinuousClock.now >= deadline {
                return .timedOut
            }
        }
    }

    /// Returns the poll(2) timeout in milliseconds until `deadline`, rounded up so that a wait never ends early.
    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = ContinuousClock.now.duration(to: deadline)
        let (seconds, attoseconds) = remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(milliseconds, 0))
    }
}
