import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An aiosmtpd SMTP server on 127.0.0.1, run as a child process, for tests that need STARTTLS,
/// implicit TLS or AUTH without root.
///
/// `start(options:)` runs `Tests/Support/aiosmtpd-server.py` with Debian's `/usr/bin/python3`
/// and python3-aiosmtpd 1.4. The server accepts any sender and recipient and saves each message
/// as one file in `maildir/new` (see `SavedMessage`). With `Options.authentication` it offers
/// AUTH PLAIN and LOGIN, accepts only that user, and replies 535 to other credentials. It never
/// offers CRAM-MD5 or SCRAM. It announces SIZE 33554432 and 8BITMIME, but not SMTPUTF8,
/// PIPELINING, DSN or CHUNKING.
///
/// Guard tests with `AIOSMTPDServer.isAvailable`:
///
///     @Test(.enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment)))
///
/// `stop()` stops the server with SIGTERM and deletes its directory. `deinit` does the same for
/// a server that was not stopped.
public final class AIOSMTPDServer: @unchecked Sendable {
    /// How the server uses TLS, with `Options.certificateFile` and `Options.privateKeyFile`.
    public enum TLSMode: Sendable {
        case none
        /// The server offers STARTTLS (RFC 3207).
        case startTLS
        /// The server starts TLS when a client connects, like SMTPS (RFC 8314).
        case implicit
    }

    /// Settings for `start(options:)`. The defaults give a server without TLS and AUTH.
    public struct Options: Sendable {
        public var tls: TLSMode
        /// A PEM file with the server certificate, followed by any intermediate certificates.
        public var certificateFile: URL?
        /// A PEM file with the private key of `certificateFile`.
        public var privateKeyFile: URL?
        /// The only user name and password that AUTH accepts, or nil for a server without AUTH.
        public var authentication: TestServerCredentials?
        /// Whether the server replies 530 to MAIL, RCPT and DATA until the client has
        /// authenticated. Needs `authentication`.
        public var requiresAuthentication: Bool
        /// Whether the server offers and accepts AUTH only after STARTTLS. Needs a `tls` other
        /// than `.none`. With `.implicit`, AUTH always runs over TLS.
        public var allowsAuthenticationOnlyOverTLS: Bool
        /// Whether the server replies 530 to every command except EHLO, NOOP, STARTTLS and QUIT
        /// until STARTTLS. Needs `tls` to be `.startTLS`.
        public var requiresSTARTTLS: Bool

        public init(
            tls: TLSMode = .none,
            certificateFile: URL? = nil,
            privateKeyFile: URL? = nil,
            authentication: TestServerCredentials? = nil,
            requiresAuthentication: Bool = false,
            allowsAuthenticationOnlyOverTLS: Bool = false,
            requiresSTARTTLS: Bool = false
        ) {
            self.tls = tls
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
            self.authentication = authentication
            self.requiresAuthentication = requiresAuthentication
            self.allowsAuthenticationOnlyOverTLS = allowsAuthenticationOnlyOverTLS
            self.requiresSTARTTLS = requiresSTARTTLS
        }
    }

    /// The port that the server listens on at 127.0.0.1.
    public let port: UInt16
    /// The directory that contains the Maildir, the log and the password file.
    public let directory: URL

    /// The Maildir that receives every message.
    public var maildir: URL { directory.appendingPathComponent("maildir", isDirectory: true) }
    /// The server's log: starts, stops, AUTH results and saved messages.
    public var logFile: URL { directory.appendingPathComponent("aiosmtpd.log") }

    private let process: Process

    // `@unchecked Sendable` is sound because `isStopped` is the only mutable state and is read
    // and written only while `lock` is held, and `Process` is only signaled or waited for.
    private let lock = NSLock()
    private var isStopped = false

    private init(port: UInt16, directory: URL, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    deinit {
        stop()
    }

    // MARK: Availability

    /// The `aiosmtpd-server.py` script next to this file.
    public static let scriptURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("aiosmtpd-server.py")

    /// Debian's interpreter, which finds python3-aiosmtpd. A `python3` earlier in PATH (from
    /// pyenv, say) may not have the module.
    public static let pythonURL = URL(fileURLWithPath: "/usr/bin/python3")

    /// The reason why no server can start in this process, or nil when one can.
    public static let unavailableReason: String? = {
        guard FileManager.default.isExecutableFile(atPath: pythonURL.path) else {
            return "\(pythonURL.path) is not installed (apt-get install python3-aiosmtpd)"
        }
        let result = try? runProcessSynchronously(pythonURL, ["-c", "import aiosmtpd"])
        guard let result, result.status == 0 else {
            return "\(pythonURL.path) cannot import aiosmtpd (apt-get install python3-aiosmtpd)"
        }
        return nil
    }()

    /// Whether `start(options:)` can run here: Debian's python3 and its aiosmtpd are installed.
    public static var isAvailable: Bool { unavailableReason == nil }

    /// Text for the comment of an `.enabled(if: AIOSMTPDServer.isAvailable, …)` trait, which
    /// Swift Testing prints when it skips the test.
    public static var skipComment: String {
        "needs aiosmtpd: \(unavailableReason ?? "available")"
    }

    // MARK: Starting and stopping

    /// Starts a server with `options` on a port that the kernel picks, and waits until it
    /// prints "ready PORT".
    ///
    /// - Throws: `TestServerError.unavailable` when python3 or aiosmtpd is missing,
    ///   `TestServerError.commandFailed` when the script exits (after a usage error, say), and
    ///   `TestServerError.timedOut` when it prints nothing within `timeout`.
    public static func start(options: Options = Options(), timeout: Duration = .seconds(10)) async throws -> AIOSMTPDServer {
        if let reason = unavailableReason {
            throw TestServerError.unavailable(reason)
        }

        let directory = try makeTemporaryDirectory(prefix: "outbox-aiosmtpd")
        let readyFile = directory.appendingPathComponent("ready")
        let logFile = directory.appendingPathComponent("aiosmtpd.log")
        let process: Process
        let command: String
        do {
            let arguments = try scriptArguments(options, directory: directory)
            command = "aiosmtpd-server.py " + arguments.joined(separator: " ")
            process = try launch(arguments, standardOutput: readyFile, standardError: logFile)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }

        // Port 0 lets the kernel choose, so no other process can take the port in between.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let ready = (try? String(contentsOf: readyFile, encoding: .utf8)) ?? ""
            if ready.hasSuffix("\n"), let port = parseReadyLine(ready) {
                return AIOSMTPDServer(port: port, directory: directory, process: process)
            }
            if !process.isRunning {
                let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
                try? FileManager.default.removeItem(at: directory)
                throw TestServerError.commandFailed(command: command, status: process.terminationStatus, output: ready + log)
            }
            if clock.now >= deadline {
                let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
                let server = AIOSMTPDServer(port: 0, directory: directory, process: process)
                server.stop()
                throw TestServerError.timedOut("waiting \(timeout) for \(command) to print \"ready PORT\":\n\(log)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Returns the script's arguments for `options`, and writes the AUTH password to a file in
    /// `directory` that only its owner can read.
    private static func scriptArguments(_ options: Options, directory: URL) throws -> [String] {
        var arguments = [
            scriptURL.path, "--port", "0",
            "--maildir", directory.appendingPathComponent("maildir", isDirectory: true).path,
        ]
        switch options.tls {
        case .none:
            break
        case .startTLS:
            arguments.append("--starttls")
        case .implicit:
            arguments.append("--implicit-tls")
        }
        if let certificateFile = options.certificateFile {
            arguments += ["--cert", certificateFile.path]
        }
        if let privateKeyFile = options.privateKeyFile {
            arguments += ["--key", privateKeyFile.path]
        }
        if let authentication = options.authentication {
            let passwordFile = directory.appendingPathComponent("auth-password")
            try writeSecretFile(passwordFile, contents: authentication.password)
            arguments += ["--auth-user", authentication.user, "--auth-password-file", passwordFile.path]
        }
        if options.requiresAuthentication {
            arguments.append("--require-auth")
        }
        if options.allowsAuthenticationOnlyOverTLS {
            arguments.append("--auth-require-tls")
        }
        if options.requiresSTARTTLS {
            arguments.append("--require-starttls")
        }
        return arguments
    }

    private static func launch(_ arguments: [String], standardOutput: URL, standardError: URL) throws -> Process {
        _ = FileManager.default.createFile(atPath: standardOutput.path, contents: nil)
        _ = FileManager.default.createFile(atPath: standardError.path, contents: nil)
        let process = Process()
        process.executableURL = pythonURL
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: standardOutput)
        process.standardError = try FileHandle(forWritingTo: standardError)
        try process.run()
        return process
    }

    /// Returns the port from the script's line "ready PORT", or nil for other text.
    private static func parseReadyLine(_ text: String) -> UInt16? {
        let fields = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
        guard fields.count == 2, fields[0] == "ready" else {
            return nil
        }
        return UInt16(fields[1])
    }

    /// Stops the server with SIGTERM, waits for it to exit and deletes `directory`. A server
    /// still running after 5 seconds gets SIGKILL. Calling it again does nothing.
    public func stop() {
        let alreadyStopped = lock.withLock {
            defer { isStopped = true }
            return isStopped
        }
        if alreadyStopped {
            return
        }

        // The script unblocks SIGTERM itself, because Foundation's Process (Swift 6.3 on Linux)
        // starts it with the signal mask of a Dispatch thread, which blocks SIGTERM.
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(5))
        while process.isRunning && clock.now < deadline {
            usleep(20_000)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Returns what the server has logged so far.
    public func log() -> String {
        (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
    }

    // MARK: Saved messages

    /// Returns the files in `maildir/new`, oldest first. The names start with the time of
    /// saving in nanoseconds, so sorting by name sorts by time.
    public func deliveredMessages() throws -> [URL] {
        let newDirectory = maildir.appendingPathComponent("new", isDirectory: true)
        guard FileManager.default.fileExists(atPath: newDirectory.path) else {
            return []
        }
        return try FileManager.default.contentsOfDirectory(at: newDirectory, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Waits until at least `count` messages are in `maildir/new` and returns them, oldest first.
    ///
    /// - Throws: `TestServerError.timedOut` with the server's log when fewer than `count`
    ///   messages arrived within `timeout`.
    @discardableResult
    public func waitForDeliveries(count: Int, timeout: Duration = .seconds(10)) async throws -> [URL] {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let messages = try deliveredMessages()
            if messages.count >= count {
                return messages
            }
            if clock.now >= deadline {
                throw TestServerError.timedOut(
                    "waiting \(timeout) for \(count) messages in \(maildir.path)/new, found \(messages.count). "
                        + "aiosmtpd log:\n" + log()
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A message as `aiosmtpd-server.py` saved it: three header lines that the script adds,
    /// then the DATA bytes exactly as the client sent them, after dot-unstuffing.
    public struct SavedMessage: Sendable {
        /// The MAIL FROM address without angle brackets, empty for `<>`.
        public let mailFrom: String
        /// The RCPT TO addresses without angle brackets, in the order the client sent them.
        public let recipients: [String]
        /// The user name that the client authenticated as, or nil without AUTH.
        public let authenticatedUser: String?
        /// The DATA bytes, with the client's line endings.
        public let content: Data

        /// Reads and splits a file from `maildir/new`.
        public init(contentsOf file: URL) throws {
            try self.init(fileContents: Data(contentsOf: file))
        }

        /// Splits the contents of a saved file.
        ///
        /// - Throws: `TestServerError.unexpectedDeliveryFormat` when the file does not start
        ///   with the `X-MailFrom:` and `X-RcptTo:` lines.
        public init(fileContents: Data) throws {
            var rest = fileContents[...]

            func takeLine(_ name: String) -> String? {
                let prefix = Data("\(name): ".utf8)
                guard rest.starts(with: prefix), let end = rest.firstRange(of: Data("\r\n".utf8)) else {
                    return nil
                }
                let value = String(decoding: rest[rest.startIndex + prefix.count..<end.lowerBound], as: UTF8.self)
                rest = rest[end.upperBound...]
                return value
            }

            guard let mailFrom = takeLine("X-MailFrom"), let recipients = takeLine("X-RcptTo") else {
                let firstLine = fileContents.prefix(80)
                throw TestServerError.unexpectedDeliveryFormat(
                    "expected X-MailFrom and X-RcptTo lines, found: \(String(decoding: firstLine, as: UTF8.self))"
                )
            }
            self.mailFrom = mailFrom
            self.recipients = recipients.isEmpty ? [] : recipients.components(separatedBy: ", ")
            authenticatedUser = takeLine("X-AuthLogin")
            content = Data(rest)
        }
    }
}
