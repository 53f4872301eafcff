import Glibc
import Synchronization

/// A loopback SMTP server for tests, which plays a fixed script on each connection.
///
/// Scripts produce what real servers will not on demand: malformed or slow replies, stalls and dropped
/// connections. The server listens on 127.0.0.1 on a port chosen by the kernel (`port`), accepts on a
/// thread of its own and runs each connection on another thread. Everything a client sends is recorded in
/// `connections`, which a test reads after the session. `stop()` (or deinit) closes every socket and joins
/// every thread.
///
/// ```swift
/// let server = try ScriptedServer(script: [
///     .send("220 ready\r\n"),
///     .expectLine("EHLO client.test"),
///     .send("250 scripted.test\r\n"),
///     .expectLine("QUIT"),
///     .send("221 bye\r\n"),
///     .close,
/// ])
/// ```
public final class ScriptedServer: Sendable {
    /// One action of a script.
    public enum Step: Sendable {
        /// Sends the UTF-8 bytes of the string as they are: include the CRLF line endings.
        case send(String)
        case sendBytes([UInt8])
        /// Sends one byte at a time, waiting `byteDelay` after each byte.
        case sendSlowly(String, byteDelay: Duration)
        /// Reads one CRLF-terminated line and records it. A line that does not match is recorded as a
        /// failure and the script goes on.
        case expectLine(matching: LinePattern)
        /// Reads message data up to the line `.` (the CRLF.CRLF terminator) and records it as received,
        /// dot-stuffing included, without the terminator's final `.` CRLF.
        case readData
        /// Reads message data as `readData` does, but at most `bytes` octets in each `every` interval, like
        /// a server that reads the data too slowly. When the client closes the connection first, the script
        /// ends without a failure. A server whose script contains this step listens with a 4 KiB receive
        /// buffer, so that its kernel buffers little of the data.
        case readSlowly(bytes: Int, every: Duration)
        /// Waits without reading, so the client's bytes pile up in the kernel.
        case stall(Duration)
        /// Closes the connection at once.
        case close
        /// Plays a normal ESMTP server until QUIT or the client closes the connection. It replies to
        /// EHLO, HELO, MAIL, RCPT, DATA, RSET, NOOP and QUIT, and replies 502 to any other command.
        case playESMTP(ESMTPBehavior)

        /// Expects a line equal to `line`, without its CRLF.
        public static func expectLine(_ line: String) -> Step {
            .expectLine(matching: .exactly(line))
        }

        /// Expects a line that starts with `prefix`.
        public static func expectLine(prefix: String) -> Step {
            .expectLine(matching: .prefix(prefix))
        }

        /// A session with PIPELINING up to the content of its first message: the greeting, EHLO, the
        /// first MAIL, RCPT and DATA accepted in one reply, and the data read. The reply to the final
        /// "." and everything after it are left to the script that continues this one.
        public static let throughFirstPipelinedMessage: [Step] = [
            .send("220 scripted.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250-scripted.test\r\n250 PIPELINING\r\n"),
            .expectLine(prefix: "MAIL FROM:"),
            .expectLine(prefix: "RCPT TO:"),
            .expectLine("DATA"),
            .send("250 OK\r\n250 OK\r\n354 go ahead\r\n"),
            .readData,
        ]
    }

    /// What a line read by `Step.expectLine` must be. Matching is case-sensitive.
    public enum LinePattern: Sendable, Equatable, CustomStringConvertible {
        case exactly(String)
        case prefix(String)
        case anyLine

        func matches(_ line: String) -> Bool {
            switch self {
            case let .exactly(expected): line == expected
            case let .prefix(prefix): line.hasPrefix(prefix)
            case .anyLine: true
            }
        }

        public var description: String {
            switch self {
            case let .exactly(expected): "a line equal to \"\(expected)\""
            case let .prefix(prefix): "a line starting with \"\(prefix)\""
            case .anyLine: "any line"
            }
        }
    }

    /// The replies of the server that `Step.playESMTP` plays. Each reply is sent followed by CRLF, so a
    /// multiline reply separates its lines with CRLF.
    public struct ESMTPBehavior: Sendable {
        public var greeting = "220 scripted.test ESMTP ready"
        /// The domain in the first line of the EHLO and HELO replies.
        public var domain = "scripted.test"
        /// The EHLO keywords with their parameters, one per reply line.
        public var capabilities = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 10485760"]
        public var mailReply = "250 2.1.0 Sender OK"
        /// Replies to RCPT TO by mailbox, the text between `<` and `>`, compared without case.
        public var recipientReplies: [String: String] = [:]
        public var defaultRecipientReply = "250 2.1.5 Recipient OK"
        public var dataReply = "354 Start mail input; end with <CRLF>.<CRLF>"
        /// The reply after the data terminator.
        public var messageReply = "250 2.0.0 Message accepted"
        public var quitReply = "221 2.0.0 Closing connection"

        public init() {}

        func recipientReply(for mailbox: String) -> String {
            let key = mailbox.lowercased()
            let match = recipientReplies.first { $0.key.lowercased() == key }
            return match?.value ?? defaultRecipientReply
        }
    }

    /// What the server received on one connection, and the failures of its script.
    public struct ConnectionRecord: Sendable {
        /// Every byte read from the client, in order.
        public internal(set) var receivedBytes: [UInt8] = []
        /// The command lines read by `expectLine` and `playESMTP`, without CRLF.
        public internal(set) var lines: [String] = []
        /// The message data read by `readData` and after DATA in `playESMTP`, as described at `readData`.
        public internal(set) var messages: [[UInt8]] = []
        /// Script steps that did not go as written: mismatched lines, timeouts, early closes.
        public internal(set) var failures: [String] = []
        /// Whether the connection's thread has closed the socket.
        public internal(set) var isFinished = false

        public var receivedText: String {
            String(decoding: receivedBytes, as: UTF8.self)
        }
    }

    /// The port on 127.0.0.1 that the server listens on.
    public let port: UInt16
    private let core: ScriptedServerCore

    /// Starts a server that plays `script` on every connection.
    ///
    /// - Parameter readTimeout: the longest wait for the client in one step, so that a script whose client
    ///   went silent ends with a recorded failure instead of hanging.
    public convenience init(script: [Step], readTimeout: Duration = .seconds(10)) throws {
        try self.init(
            scriptForConnection: { _ in script }, readTimeout: readTimeout,
            usesSmallReceiveBuffer: Self.readsSlowly([script]))
    }

    /// Starts a server that plays `scripts[n]` on the connection accepted n-th (from 0). A connection
    /// beyond the list is closed at once and recorded as a failure.
    public convenience init(scripts: [[Step]], readTimeout: Duration = .seconds(10)) throws {
        try self.init(
            scriptForConnection: { index in index < scripts.count ? scripts[index] : nil },
            readTimeout: readTimeout,
            usesSmallReceiveBuffer: Self.readsSlowly(scripts)
        )
    }

    /// Starts a server that plays a normal ESMTP server with `behavior` on every connection.
    public convenience init(
        esmtp behavior: ESMTPBehavior = ESMTPBehavior(),
        readTimeout: Duration = .seconds(10)
    ) throws {
        try self.init(script: [.playESMTP(behavior)], readTimeout: readTimeout)
    }

    private init(
        scriptForConnection: @escaping @Sendable (Int) -> [Step]?, readTimeout: Duration, usesSmallReceiveBuffer: Bool
    ) throws {
        core = try ScriptedServerCore(
            scriptForConnection: scriptForConnection, readTimeout: readTimeout,
            usesSmallReceiveBuffer: usesSmallReceiveBuffer)
        port = core.port
        do {
            try core.start()
        } catch {
            core.stop()
            throw error
        }
    }

    deinit {
        core.stop()
    }

    private static func readsSlowly(_ scripts: [[Step]]) -> Bool {
        scripts.joined().contains { step in
            if case .readSlowly = step { true } else { false }
        }
    }

    /// Returns a port of 127.0.0.1 that nothing listens on: a server's port, after it stopped.
    public static func closedPort() throws -> UInt16 {
        let server = try ScriptedServer(script: [.close])
        let port = server.port
        server.stop()
        return port
    }

    /// A snapshot of every connection accepted so far, in the order accepted.
    public var connections: [ConnectionRecord] {
        core.state.withLock { $0.records }
    }

    /// The failures of every connection, each prefixed with its connection number.
    public var failures: [String] {
        connections.enumerated().flatMap { index, record in
            record.failures.map { "connection \(index): \($0)" }
        }
    }

    /// Waits until at least `count` connections have finished their scripts and closed their sockets.
    /// Returns false if that has not happened within `timeout`.
    public func waitUntilFinished(connectionCount count: Int = 1, timeout: Duration = .seconds(10)) -> Bool {
        let expiry = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < expiry {
            let finished = core.state.withLock { state in state.records.count { $0.isFinished } }
            if finished >= count {
                return true
            }
            usleep(2_000)
        }
        return false
    }

    /// Closes the listener and every connection, and joins every thread. Safe to call more than once.
    public func stop() {
        core.stop()
    }

    /// Kernel thread ids of the accept thread and every connection thread, for leak checks.
    var threadIDs: [Int] {
        core.state.withLock { $0.threadIDs }
    }

    var listenerDescriptor: Int32 {
        core.listenerDescriptor
    }
}

// MARK: - Listener and threads

/// The sockets, threads and records of a `ScriptedServer`, shared with its threads so that the server's
/// deinit can run while they do.
final class ScriptedServerCore: Sendable {
    struct State: Sendable {
        var records: [ScriptedServer.ConnectionRecord] = []
        var acceptThread: pthread_t?
        var connectionThreads: [pthread_t] = []
        var threadIDs: [Int] = []
        var isStopped = false
    }

    let listenerDescriptor: Int32
    let port: UInt16
    /// A pipe whose read end becomes readable when `stop()` runs, waking every poll of every thread.
    private let stopPipe: (read: Int32, write: Int32)
    private let scriptForConnection: @Sendable (Int) -> [ScriptedServer.Step]?
    let readTimeout: Duration
    let state = Mutex(State())

    init(
        scriptForConnection: @escaping @Sendable (Int) -> [ScriptedServer.Step]?, readTimeout: Duration,
        usesSmallReceiveBuffer: Bool
    ) throws {
        self.scriptForConnection = scriptForConnection
        self.readTimeout = readTimeout

        var pipeDescriptors: [Int32] = [-1, -1]
        guard pipe(&pipeDescriptors) == 0 else {
            throw ScriptedServerError("pipe", errno)
        }
        stopPipe = (pipeDescriptors[0], pipeDescriptors[1])
        for descriptor in pipeDescriptors {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }

        do {
            (listenerDescriptor, port) = try ScriptedServerCore.listenOnLoopback(
                usesSmallReceiveBuffer: usesSmallReceiveBuffer)
        } catch {
            Glibc.close(pipeDescriptors[0])
            Glibc.close(pipeDescriptors[1])
            throw error
        }
    }

    func start() throws {
        let thread = try ScriptedServerCore.startThread { [self] in
            recordCurrentThreadID()
            acceptConnections()
        }
        state.withLock { $0.acceptThread = thread }
    }

    func stop() {
        let (wasStopped, acceptThread) = state.withLock { state in
            defer { state.isStopped = true }
            return (state.isStopped, state.acceptThread)
        }
        if wasStopped {
            return
        }

        var byte: UInt8 = 1
        _ = Glibc.write(stopPipe.write, &byte, 1)
        if let acceptThread {
            pthread_join(acceptThread, nil)
        }
        // The accept thread has exited, so no connection thread can start any more.
        let connectionThreads = state.withLock { $0.connectionThreads }
        for thread in connectionThreads {
            pthread_join(thread, nil)
        }
        Glibc.close(listenerDescriptor)
        Glibc.close(stopPipe.read)
        Glibc.close(stopPipe.write)
    }

    /// The read end of the stop pipe, which connection sessions poll beside their socket.
    var stopDescriptor: Int32 {
        stopPipe.read
    }

    private func acceptConnections() {
        var descriptors = [
            pollfd(fd: listenerDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            if poll(&descriptors, 2, -1) < 0 {
                if errno == EINTR {
                    continue
                }
                return
            }
            if descriptors[1].revents != 0 {
                return
            }
            let client = accept(listenerDescriptor, nil, nil)
            if client < 0 {
                continue
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            var enabled: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &enabled, socklen_t(MemoryLayout<Int32>.size))
            startSession(descriptor: client)
        }
    }

    private func startSession(descriptor: Int32) {
        let index = state.withLock { state in
            state.records.append(ScriptedServer.ConnectionRecord())
            return state.records.count - 1
        }
        guard let script = scriptForConnection(index) else {
            record(index) { $0.failures.append("unexpected connection: the server has no script for it") }
            Glibc.close(descriptor)
            record(index) { $0.isFinished = true }
            return
        }

        do {
            let thread = try ScriptedServerCore.startThread { [self] in
                recordCurrentThreadID()
                let session = ScriptedSession(index: index, descriptor: descriptor, core: self)
                session.run(script)
            }
            state.withLock { $0.connectionThreads.append(thread) }
        } catch {
            record(index) { $0.failures.append("could not start the connection's thread: \(error)") }
            Glibc.close(descriptor)
            record(index) { $0.isFinished = true }
        }
    }

    func record(_ index: Int, _ update: (inout ScriptedServer.ConnectionRecord) -> Void) {
        state.withLock { update(&$0.records[index]) }
    }

    private func recordCurrentThreadID() {
        // /proc/thread-self links to "<pid>/task/<tid>".
        var buffer = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard length > 0 else {
            return
        }
        let target = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let tid = target.split(separator: "/").last.flatMap({ Int($0) }) {
            state.withLock { $0.threadIDs.append(tid) }
        }
    }

    private final class ThreadBody {
        let run: @Sendable () -> Void

        init(_ run: @escaping @Sendable () -> Void) {
            self.run = run
        }
    }

    /// Starts a joinable POSIX thread, which Foundation's `Thread` does not offer.
    private static func startThread(_ body: @escaping @Sendable () -> Void) throws -> pthread_t {
        let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            let body = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(context).release()
            throw ScriptedServerError("pthread_create", status)
        }
        return thread
    }

    /// Opens the listening socket on 127.0.0.1. With `usesSmallReceiveBuffer`, it gets a receive buffer of
    /// 4 KiB, which accepted sockets inherit, so that the server's kernel buffers little of the data that a
    /// slow reader has not read.
    private static func listenOnLoopback(usesSmallReceiveBuffer: Bool) throws -> (descriptor: Int32, port: UInt16) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw ScriptedServerError("socket", errno)
        }
        // Linux lets another server bind the port while connections of this one are in TIME_WAIT
        // only if both set SO_REUSEADDR, as smtp-sink does. Tests hand the port over that way.
        var enabled: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &enabled, socklen_t(MemoryLayout<Int32>.size))
        if usesSmallReceiveBuffer {
            // Linux doubles the value to 4 KiB.
            var receiveBufferSize: Int32 = 2048
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &receiveBufferSize, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)

        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(descriptor, address, length) == 0
                    && listen(descriptor, 64) == 0
                    && getsockname(descriptor, address, &length) == 0
            }
        }
        guard bound else {
            let errorNumber = errno
            Glibc.close(descriptor)
            throw ScriptedServerError("bind, listen or getsockname", errorNumber)
        }
        return (descriptor, UInt16(bigEndian: address.sin_port))
    }
}

/// A system call of the scripted server failed.
public struct ScriptedServerError: Error, CustomStringConvertible {
    public let call: String
    public let errorNumber: Int32

    init(_ call: String, _ errorNumber: Int32) {
        self.call = call
        self.errorNumber = errorNumber
    }

    public var description: String {
        "The scripted server could not start because \(call) failed: \(ScriptedServerError.errnoText(errorNumber))."
    }

    static func errnoText(_ errorNumber: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard strerror_r(errorNumber, &buffer, buffer.count) == 0 else {
            return "errno \(errorNumber)"
        }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(text) (errno \(errorNumber))"
    }
}

// MARK: - One connection

/// The script of one connection, run on the connection's own thread.
private final class ScriptedSession {
    /// Why a step could not go on.
    private enum StepEnd: Error, CustomStringConvertible {
        case peerClosed
        case stopped
        case timedOut
        case failed(String)

        var description: String {
            switch self {
            case .peerClosed: "the client closed the connection"
            case .stopped: "the server stopped"
            case .timedOut: "timed out waiting for the client"
            case let .failed(message): message
            }
        }
    }

    /// The maximum size in bytes of a command line or message that the session buffers before it
    /// records a failure.
    private static let maxBufferedBytes = 64 * 1024 * 1024

    private let index: Int
    private let descriptor: Int32
    private let core: ScriptedServerCore
    private var input: [UInt8] = []
    private var stepNumber = 0

    init(index: Int, descriptor: Int32, core: ScriptedServerCore) {
        self.index = index
        self.descriptor = descriptor
        self.core = core
    }

    func run(_ script: [ScriptedServer.Step]) {
        defer {
            Glibc.close(descriptor)
            core.record(index) { $0.isFinished = true }
        }
        for (number, step) in script.enumerated() {
            stepNumber = number
            do {
                if try !perform(step) {
                    return
                }
            } catch .stopped {
                return
            } catch {
                recordFailure("\(error)")
                return
            }
        }
        drainUntilClosed()
    }

    /// Performs one step. Returns false when the step closed the connection.
    private func perform(_ step: ScriptedServer.Step) throws(StepEnd) -> Bool {
        switch step {
        case let .send(text):
            try send(Array(text.utf8))
        case let .sendBytes(bytes):
            try send(bytes)
        case let .sendSlowly(text, byteDelay):
            for byte in text.utf8 {
                try send([byte])
                try pause(byteDelay)
            }
        case let .expectLine(pattern):
            let line = try readLine(waitingFor: "\(pattern)")
            if !pattern.matches(line) {
                recordFailure("expected \(pattern), received \"\(line)\"")
            }
        case .readData:
            try readData()
        case let .readSlowly(bytes, interval):
            return try readDataSlowly(bytes: bytes, every: interval)
        case let .stall(duration):
            try pause(duration)
        case .close:
            return false
        case let .playESMTP(behavior):
            try playESMTP(behavior)
            return false
        }
        return true
    }

    private func recordFailure(_ message: String) {
        core.record(index) { $0.failures.append("step \(stepNumber): \(message)") }
    }

    // MARK: ESMTP

    private func playESMTP(_ behavior: ScriptedServer.ESMTPBehavior) throws(StepEnd) {
        try reply(behavior.greeting)
        var hasSender = false
        var acceptedRecipients = 0

        while true {
            let line: String
            do {
                line = try readLine(waitingFor: "an SMTP command")
            } catch .peerClosed {
                return
            }
            let verb = line.prefix { $0 != " " }.uppercased()

            switch verb {
            case "EHLO":
                let lines = [behavior.domain] + behavior.capabilities
                let reply = lines.enumerated().map { number, text in
                    (number == lines.count - 1 ? "250 " : "250-") + text
                }
                try self.reply(reply.joined(separator: "\r\n"))
            case "HELO":
                try reply("250 \(behavior.domain)")
            case "MAIL":
                hasSender = behavior.mailReply.hasPrefix("2")
                acceptedRecipients = 0
                try reply(behavior.mailReply)
            case "RCPT":
                let mailbox = line.drop { $0 != "<" }.dropFirst().prefix { $0 != ">" }
                let response = behavior.recipientReply(for: String(mailbox))
                if response.hasPrefix("2") {
                    acceptedRecipients += 1
                }
                try reply(response)
            case "DATA" where !hasSender || acceptedRecipients == 0:
                try reply("503 5.5.1 Bad sequence of commands: no sender or no accepted recipient")
            case "DATA":
                try reply(behavior.dataReply)
                if behavior.dataReply.hasPrefix("354") {
                    try readData()
                    try reply(behavior.messageReply)
                }
                hasSender = false
                acceptedRecipients = 0
            case "RSET":
                hasSender = false
                acceptedRecipients = 0
                try reply("250 2.0.0 OK")
            case "NOOP":
                try reply("250 2.0.0 OK")
            case "QUIT":
                try reply(behavior.quitReply)
                return
            default:
                try reply("502 5.5.1 Command not implemented")
            }
        }
    }

    private func reply(_ text: String) throws(StepEnd) {
        try send(Array((text + "\r\n").utf8))
    }

    // MARK: Reading

    private func readLine(waitingFor expectation: String) throws(StepEnd) -> String {
        let expiry = ContinuousClock.now.advanced(by: core.readTimeout)
        var searchStart = 0
        while true {
            if let end = findCRLF(from: searchStart) {
                let line = String(decoding: input[..<end], as: UTF8.self)
                input.removeSubrange(..<(end + 2))
                core.record(index) { $0.lines.append(line) }
                return line
            }
            searchStart = max(input.count - 1, 0)
            do {
                try receiveMore(until: expiry)
            } catch .timedOut {
                throw .failed("timed out waiting for \(expectation). Input without CRLF so far: \"\(pendingText)\"")
            } catch .peerClosed {
                if input.isEmpty {
                    throw .failed("the client closed the connection while the server waited for \(expectation)")
                }
                throw .failed("the client closed the connection after sending \"\(pendingText)\" without CRLF")
            }
        }
    }

    private func readData() throws(StepEnd) {
        let expiry = ContinuousClock.now.advanced(by: core.readTimeout)
        var searchStart = 0
        while !takeMessage(searchStart: &searchStart) {
            do {
                try receiveMore(until: expiry)
            } catch .timedOut {
                throw .failed("timed out waiting for the data terminator CRLF.CRLF after \(input.count) bytes")
            } catch .peerClosed {
                throw .failed("the client closed the connection after \(input.count) bytes of data, before CRLF.CRLF")
            }
        }
    }

    /// Reads message data as `readData` does, but at most `bytes` in each interval. Returns false when
    /// the client closed the connection before the data terminator.
    private func readDataSlowly(bytes: Int, every interval: Duration) throws(StepEnd) -> Bool {
        var searchStart = 0
        var lastInput = ContinuousClock.now
        var intervalEnd = ContinuousClock.now
        while !takeMessage(searchStart: &searchStart) {
            // An interval starts no earlier than the previous one ended, so a thread that was scheduled late
            // does not catch up with a burst.
            intervalEnd = max(intervalEnd, ContinuousClock.now).advanced(by: interval)
            var budget = bytes
            while budget > 0 {
                do {
                    let count = try receiveMore(until: intervalEnd, maxBytes: budget)
                    if count > 0 {
                        budget -= count
                        lastInput = .now
                    }
                } catch .timedOut {
                    break
                } catch .peerClosed {
                    return false
                }
            }
            if lastInput.duration(to: .now) > core.readTimeout {
                throw .failed("timed out waiting for the data terminator CRLF.CRLF after \(input.count) bytes")
            }
            try pause(until: intervalEnd)
        }
        return true
    }

    /// Moves a message that ends with the data terminator from `input` to the record, as `Step.readData`
    /// describes. Returns false when the terminator has not arrived yet, after moving `searchStart` past
    /// the bytes searched.
    private func takeMessage(searchStart: inout Int) -> Bool {
        let terminator: [UInt8] = Array("\r\n.\r\n".utf8)
        // The line "." right after the DATA command line ends an empty message.
        if input.starts(with: terminator.dropFirst(2)) {
            input.removeSubrange(..<3)
            core.record(index) { $0.messages.append([]) }
            return true
        }
        if let start = find(terminator, from: searchStart) {
            let message = Array(input[..<(start + 2)])
            input.removeSubrange(..<(start + terminator.count))
            core.record(index) { $0.messages.append(message) }
            return true
        }
        searchStart = max(input.count - terminator.count + 1, 0)
        return false
    }

    private var pendingText: String {
        String(decoding: input.prefix(200), as: UTF8.self)
    }

    private func findCRLF(from start: Int) -> Int? {
        find(Array("\r\n".utf8), from: start)
    }

    private func find(_ pattern: [UInt8], from start: Int) -> Int? {
        guard input.count >= pattern.count else {
            return nil
        }
        var position = start
        while position + pattern.count <= input.count {
            if input[position] == pattern[0], input[position..<(position + pattern.count)].elementsEqual(pattern) {
                return position
            }
            position += 1
        }
        return nil
    }

    /// Reads up to `maxBytes` of what the client has sent into `input`, waiting until `expiry` for at least
    /// one byte. Returns the number of bytes read, which is 0 after EAGAIN or EINTR.
    @discardableResult
    private func receiveMore(until expiry: ContinuousClock.Instant, maxBytes: Int = 64 * 1024) throws(StepEnd) -> Int {
        guard input.count < ScriptedSession.maxBufferedBytes else {
            throw .failed("the client sent more than \(ScriptedSession.maxBufferedBytes) bytes without a terminator")
        }
        try wait(for: Int16(POLLIN), until: expiry)
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        let errorNumber = errno
        if count == 0 || (count < 0 && errorNumber == ECONNRESET) {
            throw .peerClosed
        }
        if count < 0 {
            if errorNumber == EAGAIN || errorNumber == EINTR {
                return 0
            }
            throw .failed("recv failed: \(ScriptedServerError.errnoText(errorNumber))")
        }
        let received = buffer.prefix(count)
        input.append(contentsOf: received)
        core.record(index) { $0.receivedBytes.append(contentsOf: received) }
        return count
    }

    /// Reads and records everything the client still sends, until it closes, the server stops or the
    /// client stays silent for the read timeout.
    private func drainUntilClosed() {
        while true {
            do {
                try receiveMore(until: ContinuousClock.now.advanced(by: core.readTimeout))
            } catch {
                return
            }
        }
    }

    // MARK: Writing and waiting

    private func send(_ bytes: [UInt8]) throws(StepEnd) {
        let expiry = ContinuousClock.now.advanced(by: core.readTimeout)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { buffer in
                Glibc.send(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                offset += count
                continue
            }
            switch errno {
            case EAGAIN, EINTR:
                try wait(for: Int16(POLLOUT), until: expiry)
            case EPIPE, ECONNRESET:
                let preview = Self.preview(bytes)
                throw .failed("the client closed the connection before the server could send \"\(preview)\"")
            case let errorNumber:
                throw .failed("send failed: \(ScriptedServerError.errnoText(errorNumber))")
            }
        }
    }

    private func pause(_ duration: Duration) throws(StepEnd) {
        try pause(until: ContinuousClock.now.advanced(by: duration))
    }

    /// Waits until `expiry`, or throws `stopped` when the server stops first.
    private func pause(until expiry: ContinuousClock.Instant) throws(StepEnd) {
        var descriptors = [pollfd(fd: core.stopDescriptor, events: Int16(POLLIN), revents: 0)]
        while ContinuousClock.now < expiry {
            if poll(&descriptors, 1, Self.milliseconds(until: expiry)) > 0 {
                throw .stopped
            }
        }
    }

    /// Waits until the socket reports `events`, the server stops, or `expiry` passes.
    private func wait(for events: Int16, until expiry: ContinuousClock.Instant) throws(StepEnd) {
        var descriptors = [
            pollfd(fd: descriptor, events: events, revents: 0),
            pollfd(fd: core.stopDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            if ContinuousClock.now >= expiry {
                throw .timedOut
            }
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            let count = poll(&descriptors, 2, Self.milliseconds(until: expiry))
            if descriptors[1].revents != 0 {
                throw .stopped
            }
            if count > 0, descriptors[0].revents != 0 {
                return
            }
        }
    }

    private static func milliseconds(until expiry: ContinuousClock.Instant) -> Int32 {
        let remaining = ContinuousClock.now.duration(to: expiry)
        let (seconds, attoseconds) = remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(milliseconds, 0))
    }

    private static func preview(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(80), as: UTF8.self)
    }
}
