import Foundation
import Glibc
import MailMessage
import OutboxTestSupport
import Synchronization
import Testing

// Hostile sizes given to the built `outbox` as a child process: replies that never end, a huge reply
// line, many recipients and a huge header section. Each must end in a clear error or a success within a
// time bound, with the child's peak resident set size below a ceiling. The figures are printed, and
// RELIABILITY.md records them.

/// The peak resident set size that a child may reach. `outbox send` of a small message peaks at about
/// 25 MiB in a debug build (measured on the 2 vCPU machine of RELIABILITY.md), so this leaves room.
private let memoryCeilingKiB = 64 * 1024

/// A child process started with posix_spawn and reaped with wait4, with its peak RSS.
///
/// The peak is the largest VmHWM of /proc/PID/status, read every 5 ms while the child runs. The
/// ru_maxrss of wait4 cannot serve: posix_spawn starts the child with the test process's memory, and
/// Linux keeps that memory's high-water mark in ru_maxrss across the exec, so it reports the test
/// process's size. NOTE: growth in the last 5 ms before the child exits is not sampled.
private final class MeasuredChild {
    struct Result {
        let status: Int32
        let signal: Int32?
        /// The peak resident set size in KiB (VmHWM).
        let maxRSSKiB: Int
        let elapsed: Duration
        let errorOutput: String
    }

    private let directory: URL
    private var pid: pid_t = 0
    private var reaped = false
    private let start = ContinuousClock.now

    /// Starts `outbox` with `arguments`, with `input` in a file as standard input.
    init(outbox arguments: [String], input: [UInt8]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-limit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let inputPath = directory.appendingPathComponent("stdin").path
        try Data(input).write(to: URL(fileURLWithPath: inputPath))
        let executable = try ChildProcess.outboxURL.path

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, directory.appendingPathComponent("stderr").path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The child gets no SMTP settings from the environment, and HOME points at the empty folder.
        let variables: [String] = ["HOME=\(directory.path)", "PATH=/usr/bin:/bin"]
        let environment: [UnsafeMutablePointer<CChar>?] = variables.map { strdup($0) } + [nil]
        defer { environment.forEach { free($0) } }
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environment)
        guard result == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO)
        }
    }

    deinit {
        if !reaped {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Waits until the child exits, or kills it after `timeout`, and returns its status and rusage.
    func wait(timeout: Duration) async throws -> Result {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        var peakKiB = 0
        while true {
            peakKiB = max(peakKiB, highWaterMarkKiB())
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { break }
            if ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                reaped = true
                Issue.record("outbox did not exit within \(timeout) and was killed")
                return result(status: status, peakKiB: peakKiB)
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        reaped = true
        return result(status: status, peakKiB: peakKiB)
    }

    /// Returns the child's VmHWM in KiB, or 0 once the child has exited and released its memory.
    private func highWaterMarkKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    private func result(status: Int32, peakKiB: Int) -> Result {
        let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
        let errorOutput = (try? String(contentsOf: directory.appendingPathComponent("stderr"), encoding: .utf8)) ?? ""
        return Result(
            status: (status >> 8) & 0xff, signal: signaled ? status & 0x7f : nil, maxRSSKiB: peakKiB,
            elapsed: ContinuousClock.now - start, errorOutput: errorOutput)
    }
}

/// A loopback server for one connection that sends a greeting, reads one line, and then sends a chunk
/// over and over until the client closes, `maxBytes` are sent or the server stops.
private final class FloodServer: @unchecked Sendable {
    /// The flags that the server thread shares with the test.
    final class State: Sendable {
        let stopped = Atomic<Bool>(false)
        /// The bytes of the flood sent so far.
        let sentBytes = Atomic<Int>(0)
    }

    let port: UInt16
    private let listener: Int32
    private let state = State()
    private let thread: Thread

    init(greeting: String?, chunk: [UInt8], maxBytes: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        guard bound == 0, listen(listener, 1) == 0 else {
            close(listener)
            throw POSIXError(.EADDRINUSE)
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = UInt16(bigEndian: address.sin_port)
        let state = state
        thread = Thread {
            var descriptors = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            var ready: Int32 = 0
            while !state.stopped.load(ordering: .relaxed) && ready == 0 {
                ready = poll(&descriptors, 1, 100)
            }
            guard ready > 0 else { return }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            if let greeting {
                _ = Array(greeting.utf8).withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                // Reads the EHLO line, byte by byte up to its LF.
                var byte: UInt8 = 0
                while recv(connection, &byte, 1, 0) == 1 && byte != 10 {}
            }
            while !state.stopped.load(ordering: .relaxed) && state.sentBytes.load(ordering: .relaxed) < maxBytes {
                let sent = chunk.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent > 0 {
                    state.sentBytes.add(sent, ordering: .relaxed)
                } else if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                    return
                }
            }
            // After maxBytes, the server waits for the client to close, as a stalled server would.
            var byte: UInt8 = 0
            var readTimeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &readTimeout, socklen_t(MemoryLayout<timeval>.size))
            while !state.stopped.load(ordering: .relaxed) {
                let received = recv(connection, &byte, 1, 0)
                if received == 0 || (received < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { return }
            }
        }
        thread.start()
    }

    func stop() {
        state.stopped.store(true, ordering: .relaxed)
    }

    deinit {
        stop()
        // The thread checks the flag at least every 200 ms, the longest of its socket timeouts.
        Thread.sleep(forTimeInterval: 0.3)
        close(listener)
    }
}

private let smallMessage = Array("From: a@example.test\r\nTo: b@example.test\r\nSubject: limits\r\n\r\nbody\r\n".utf8)

private func report(_ name: String, _ result: MeasuredChild.Result) {
    print("limit: \(name): exit \(result.status), peak RSS \(result.maxRSSKiB) KiB, \(result.elapsed), error: \(result.errorOutput.prefix(200))")
}

/// Checks the common bounds: no signal, the memory ceiling and the time bound.
private func expectBounded(_ result: MeasuredChild.Result, within timeBound: Duration) {
    #expect(result.signal == nil, "outbox ended by signal \(result.signal ?? 0): \(result.errorOutput)")
    #expect(result.maxRSSKiB < memoryCeilingKiB, "peak RSS \(result.maxRSSKiB) KiB, ceiling \(memoryCeilingKiB) KiB")
    #expect(result.elapsed < timeBound, "took \(result.elapsed), bound \(timeBound)")
}

@Suite(.serialized, .timeLimit(.minutes(5)))
struct ResourceLimitTests {
    @Test func endlessMultilineReply() async throws {
        let server = try FloodServer(
            greeting: "220 flood.test ESMTP\r\n", chunk: Array(String(repeating: "250-x\r\n", count: 1024).utf8),
            maxBytes: 1 << 30)
        defer { server.stop() }
        let child = try MeasuredChild(
            outbox: ["send", "--host", "127.0.0.1", "--port", String(server.port), "--timeout", "10", "b@example.test"],
            input: smallMessage)
        let result = try await child.wait(timeout: .seconds(30))
        report("endless 250- reply", result)
        expectBounded(result, within: .seconds(20))
        #expect(result.status == 76, "exit status \(result.status), expected EX_PROTOCOL")
        #expect(result.errorOutput.contains("the server sent a reply of more than 1000 lines"), "\(result.errorOutput)")
    }

    @Test func hugeReplyLineWithoutEnd() async throws {
        let server = try FloodServer(
            greeting: nil, chunk: Array("220 ".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 65_532),
            maxBytes: 100 * 1024 * 1024)
        defer { server.stop() }
        let child = try MeasuredChild(
            outbox: ["send", "--host", "127.0.0.1", "--port", String(server.port), "--timeout", "10", "b@example.test"],
            input: smallMessage)
        let result = try await child.wait(timeout: .seconds(30))
        report("100 MB reply line", result)
        expectBounded(result, within: .seconds(20))
        #expect(result.status == 76, "exit status \(result.status), expected EX_PROTOCOL")
        #expect(result.errorOutput.contains("the server sent a reply line longer than 4096 octets"), "\(result.errorOutput)")
    }

    @Test func tenThousandRecipients() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let recipients = (0..<10_000).map { "r\($0)@example.test" }
        let child = try MeasuredChild(
            outbox: ["send", "--host", "127.0.0.1", "--port", String(server.port), "--timeout", "10"] + recipients,
            input: smallMessage)
        let result = try await child.wait(timeout: .seconds(120))
        report("10,000 recipients", result)
        expectBounded(result, within: .seconds(90))
        #expect(result.status == 0, "\(result.errorOutput)")
        server.stop()
        let record = try #require(server.connections.first)
        #expect(record.lines.count { $0.hasPrefix("RCPT TO:") } == 10_000)
        #expect(record.messages.count == 1)
    }

    @Test func tenMegabyteHeader() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        var input = Array("From: a@example.test\r\nTo: b@example.test\r\nX-Big: ".utf8)
        // One field of 10 MiB, folded into lines of 76 octets so that only the header size limit applies.
        let line = Array((String(repeating: "y", count: 76) + "\r\n ").utf8)
        while input.count < 10 * 1024 * 1024 {
            input += line
        }
        input += Array("end\r\n\r\nbody\r\n".utf8)
        let child = try MeasuredChild(
            outbox: ["send", "-t", "--host", "127.0.0.1", "--port", String(server.port), "--timeout", "10"], input: input)
        let result = try await child.wait(timeout: .seconds(60))
        report("10 MB header", result)
        expectBounded(result, within: .seconds(30))
        #expect(result.status == 65, "\(result.errorOutput)")
        #expect(result.errorOutput.contains("header section is larger than 1048576 octets"), "\(result.errorOutput)")
        server.stop()
        #expect(server.connections.isEmpty, "a rejected message opened a connection")
    }

    /// No command of `outbox` parses the MIME structure of a message, so the parser is measured in this
    /// process: the time, and the growth of this process's peak RSS, which stays the same when the
    /// parse needs less memory than earlier tests did.
    @Test func deeplyNestedMultipartParse() throws {
        var message = Array("From: a@example.test\r\nMIME-Version: 1.0\r\n".utf8)
        let depth = 10_000
        for level in 0..<depth {
            message += Array("Content-Type: multipart/mixed; boundary=\"b\(level)\"\r\n\r\n--b\(level)\r\n".utf8)
        }
        message += Array("Content-Type: text/plain\r\n\r\nleaf\r\n".utf8)
        for level in (0..<depth).reversed() {
            message += Array("--b\(level)--\r\n".utf8)
        }
        var before = rusage()
        getrusage(RUSAGE_SELF.rawValue, &before)
        let start = ContinuousClock.now
        let parsed = MIMEMessage(parsing: message)
        let serialized = parsed.serialized()
        let entities = parsed.root.walk()
        let elapsed = ContinuousClock.now - start
        var after = rusage()
        getrusage(RUSAGE_SELF.rawValue, &after)
        let growthKiB = after.ru_maxrss - before.ru_maxrss
        print("limit: multipart nested \(depth) deep (\(message.count) bytes): \(entities.count) entities, peak RSS growth \(growthKiB) KiB, \(elapsed)")

        #expect(serialized == message)
        #expect(entities.count == MIMEEntity.maximumDepth + 1, "\(entities.count) entities")
        #expect(elapsed < .seconds(10), "parsing took \(elapsed)")
        #expect(growthKiB < memoryCeilingKiB, "peak RSS grew by \(growthKiB) KiB")
    }

    /// Nested message/rfc822 bodies, which `reencoded()` (the downgrade for a server without 8BITMIME)
    /// parses again level by level.
    @Test func deeplyNestedMessageReencode() throws {
        var message: [UInt8] = []
        let depth = 10_000
        for _ in 0..<depth {
            message += Array("Content-Type: message/rfc822\r\n\r\n".utf8)
        }
        message += Array("Content-Type: text/plain\r\n\r\nleaf \u{E9}\r\n".utf8)
        var before = rusage()
        getrusage(RUSAGE_SELF.rawValue, &before)
        let start = ContinuousClock.now
        let output = try MIMEMessage(parsing: message).reencoded()
        let elapsed = ContinuousClock.now - start
        var after = rusage()
        getrusage(RUSAGE_SELF.rawValue, &after)
        let growthKiB = after.ru_maxrss - before.ru_maxrss
        print("limit: message/rfc822 nested \(depth) deep (\(message.count) bytes), reencoded: \(output.count) bytes, peak RSS growth \(growthKiB) KiB, \(elapsed)")

        #expect(output.allSatisfy { $0 < 0x80 }, "the downgrade left 8-bit bytes")
        #expect(elapsed < .seconds(10), "reencoding took \(elapsed)")
        #expect(growthKiB < memoryCeilingKiB, "peak RSS grew by \(growthKiB) KiB")
    }
}
