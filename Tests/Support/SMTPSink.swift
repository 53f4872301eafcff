import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Postfix's `smtp-sink` test server, run as a child process on a free port of 127.0.0.1.
///
/// smtp-sink accepts mail and throws it away, and its options make it fail on purpose. Options
/// that tests use (see smtp-sink(1) of Postfix 3.7):
/// - `-Q DATA`: reply 421 and disconnect after DATA (any command names, comma-separated).
/// - `-q RCPT`: disconnect without a reply after RCPT.
/// - `-r MAIL` and `-f RCPT`: reject the command with 450 or 500. Both turn off PIPELINING.
/// - `-A 0`: send "550 This violates SMTP" right after the 354 reply to DATA and stop reading.
/// - `-8`, `-N`, `-p`, `-E`, `-e`: do not announce 8BITMIME, DSN, PIPELINING,
///   ENHANCEDSTATUSCODES, or ESMTP at all.
/// - `-w 5`: wait 5 seconds before replying to DATA.
///
/// smtp-sink never announces SIZE, SMTPUTF8 or STARTTLS. It announces AUTH PLAIN LOGIN and
/// replies "250 2.0.0 Ok" (not 235) to AUTH, whatever the credentials. The process always runs with `-c`, so that `receivedMessageCount()` can count
/// messages, and as root also with `-u nobody`, because smtp-sink refuses to keep root.
///
/// With `dumpsMessages: true`, every transaction goes to its own file in `dumpDirectory`. Such a
/// file starts with lines that smtp-sink adds (`X-Client-Addr`, `X-Client-Proto`, `X-Helo-Args`,
/// `X-Mail-Args`, one `X-Rcpt-Args` per RCPT, a 3-line `Received:`), then the DATA lines with LF
/// endings, then one empty line. smtp-sink does not undo dot-stuffing: a line sent as "..x"
/// stays "..x" in the file.
public final class SMTPSink: @unchecked Sendable {
    /// The port that smtp-sink listens on at 127.0.0.1.
    public let port: UInt16
    /// The directory that contains the dumps and the output of smtp-sink.
    public let directory: URL
    /// The directory that receives one file per mail transaction, or nil without `dumpsMessages`.
    public let dumpDirectory: URL?

    private let process: Process
    private let outputFile: URL

    // `@unchecked Sendable` is sound because `isStopped` is the only mutable state and is read
    // and written only while `lock` is held, and `Process` is only signaled or waited for.
    private let lock = NSLock()
    private var isStopped = false

    /// The smtp-sink executable of Debian's postfix package.
    public static let executableURL = URL(fileURLWithPath: "/usr/sbin/smtp-sink")

    /// Whether smtp-sink is installed.
    public static var isAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: executableURL.path)
    }

    /// Text for the comment of an `.enabled(if: SMTPSink.isAvailable, …)` trait.
    public static let skipComment = "needs smtp-sink from the postfix package (apt-get install postfix)"

    private init(port: UInt16, directory: URL, dumpDirectory: URL?, process: Process, outputFile: URL) {
        self.port = port
        self.directory = directory
        self.dumpDirectory = dumpDirectory
        self.process = process
        self.outputFile = outputFile
    }

    deinit {
        stop()
    }

    /// Starts smtp-sink with `options` on `port`, or on a free port, and waits until it listens.
    ///
    /// - Parameters:
    ///   - options: smtp-sink options, for example `["-Q", "DATA"]`. Leave out the address and
    ///     backlog, which this adds.
    ///   - dumpsMessages: whether to write each transaction to a file in `dumpDirectory` (`-d`).
    ///   - port: the port to listen on, such as the port of a server that a test stopped, or nil
    ///     for a free port.
    ///   - timeout: how long to wait until the port listens.
    /// - Throws: `TestServerError.unavailable` when smtp-sink is not installed, and
    ///   `TestServerError.commandFailed` when it exits or does not listen within `timeout`.
    public static func start(
        options: [String] = [],
        dumpsMessages: Bool = false,
        port chosenPort: UInt16? = nil,
        timeout: Duration = .seconds(20)
    ) async throws -> SMTPSink {
        guard isAvailable else {
            throw TestServerError.unavailable("\(executableURL.path) is not installed (apt-get install postfix)")
        }

        let directory = try makeTemporaryDirectory(prefix: "outbox-smtp-sink")
        let runsAsRoot = getuid() == 0
        var arguments = ["-c"]
        if runsAsRoot {
            arguments += ["-u", "nobody"]
        }

        var dumpDirectory: URL?
        if dumpsMessages {
            let dumps = directory.appendingPathComponent("dumps", isDirectory: true)
            try FileManager.default.createDirectory(at: dumps, withIntermediateDirectories: true)
            if runsAsRoot {
                // smtp-sink writes the dumps after it has switched to nobody.
                let nobody = getpwnam("nobody")
                guard let nobody else {
                    throw TestServerError.unavailable("user nobody does not exist, and smtp-sink needs it when run as root")
                }
                chown(dumps.path, nobody.pointee.pw_uid, nobody.pointee.pw_gid)
            }
            dumpDirectory = dumps
            // smtp-sink appends a random hexadecimal number to the expanded template.
            arguments += ["-d", dumps.path + "/message."]
        }

        let port = try chosenPort ?? findFreeLoopbackPort()
        arguments += options + ["127.0.0.1:\(port)", "64"]

        let outputFile = directory.appendingPathComponent("smtp-sink.log")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        let outputHandle = try FileHandle(forWritingTo: outputFile)

        let process = Process()
        process.executableURL = executableURL
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outputHandle
        process.standardError = outputHandle
        try process.run()

        let sink = SMTPSink(
            port: port,
            directory: directory,
            dumpDirectory: dumpDirectory,
            process: process,
            outputFile: outputFile
        )
        let command = "smtp-sink " + arguments.joined(separator: " ")

        // Checking the socket table, not connecting, leaves the session counters and -n at zero.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while !isListeningOnLoopback(port: port) {
            if !process.isRunning {
                let output = sink.output()
                sink.stop()
                throw TestServerError.commandFailed(command: command, status: process.terminationStatus, output: output)
            }
            if clock.now >= deadline {
                let output = sink.output()
                sink.stop()
                throw TestServerError.timedOut("waiting \(timeout) for \(command) to listen:\n\(output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return sink
    }

    /// Stops smtp-sink with SIGKILL, waits for it to exit and deletes `directory`. Calling it
    /// again does nothing.
    public func stop() {
        let alreadyStopped = lock.withLock {
            defer { isStopped = true }
            return isStopped
        }
        if alreadyStopped {
            return
        }

        // Not SIGTERM: on Linux, Foundation's Process (Swift 6.3.1) starts the child with the
        // signal mask of the spawning thread, and Dispatch threads block SIGTERM. SIGKILL loses
        // nothing that tests read: smtp-sink writes the -c counters as they change, and a -d
        // dump is complete once its transaction ends.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Returns what smtp-sink has printed so far: its counters and any error.
    public func output() -> String {
        (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
    }

    /// Returns the number of messages that smtp-sink has accepted with a reply to ".", from the
    /// last `mesg=` counter that `-c` printed.
    public func receivedMessageCount() -> Int {
        let reports = output().split(whereSeparator: { $0 == "\n" || $0 == "\r" })
        guard let last = reports.last(where: { $0.contains("mesg=") }) else {
            return 0
        }
        let fields = last.split(separator: " ")
        guard let field = fields.first(where: { $0.hasPrefix("mesg=") }) else {
            return 0
        }
        return Int(field.dropFirst("mesg=".count)) ?? 0
    }

    /// Returns the dump files, sorted by name, which is random. Empty without `dumpsMessages`.
    public func dumpedMessages() throws -> [URL] {
        guard let dumpDirectory else {
            return []
        }
        return try FileManager.default.contentsOfDirectory(at: dumpDirectory, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Waits until smtp-sink has accepted at least `count` messages.
    ///
    /// - Throws: `TestServerError.timedOut` with the output of smtp-sink.
    public func waitForMessages(count: Int, timeout: Duration = .seconds(10)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while receivedMessageCount() < count {
            if clock.now >= deadline {
                throw TestServerError.timedOut(
                    "waiting \(timeout) for \(count) messages at smtp-sink on port \(port), "
                        + "received \(receivedMessageCount()). Output:\n\(output())"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Returns whether a TCP socket listens on 127.0.0.1:`port` or on all IPv4 addresses, read
/// from Linux's /proc/net/tcp.
///
/// NOTE: Linux only. Elsewhere this returns false, so `SMTPSink.start` times out.
func isListeningOnLoopback(port: UInt16) -> Bool {
    guard let table = readProcFile("/proc/net/tcp") else {
        return false
    }
    let portHex = String(format: "%04X", port)
    let listenState = "0A"
    for line in table.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        guard fields.count > 3 else {
            continue
        }
        let localAddress = fields[1]
        let isLoopbackOrAny = localAddress == "0100007F:\(portHex)" || localAddress == "00000000:\(portHex)"
        if isLoopbackOrAny && fields[3] == listenState {
            return true
        }
    }
    return false
}
