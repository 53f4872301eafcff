import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway Postfix instance on loopback, for tests that need a real SMTP server.
///
/// `start()` runs `Tests/Support/postfix-instance` with a new directory and a free port. The
/// instance accepts mail for any address in `example.test`, `example.org` and `localhost.test`
/// and delivers each accepted recipient's copy as one file in `maildir/new`. It rejects at RCPT
/// with 550 every recipient whose local part starts with `reject-`, and with 554 every recipient
/// outside those domains. It announces PIPELINING, SIZE 10485760, 8BITMIME, DSN, SMTPUTF8,
/// ENHANCEDSTATUSCODES and CHUNKING, but no STARTTLS or AUTH. Delivery status notifications to
/// senders in those domains (after `NOTIFY=SUCCESS`, say) land in the same Maildir as one more
/// file, and those to other senders are dropped.
///
/// `start(options:)` adds STARTTLS, a second port with implicit TLS, and AUTH through a
/// throwaway Dovecot auth service with the mechanisms PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1 and
/// SCRAM-SHA-256 (see `Options`).
///
/// Starting Postfix needs root. Guard tests with `PostfixInstance.isAvailable`, or with
/// `isSASLAvailable` when they set `Options.sasl`:
///
///     @Test(.enabled(if: PostfixInstance.isAvailable, PostfixInstance.skipComment))
///
/// `stop()` stops the instance, and its Dovecot if any, and deletes its directory. `deinit`
/// does the same for an instance that was not stopped.
public final class PostfixInstance: @unchecked Sendable {
    /// Settings for `start(options:)`. The defaults give the instance that `start()` starts.
    public struct Options: Sendable {
        /// A PEM file with the server certificate, followed by any intermediate certificates.
        /// With `privateKeyFile`, smtpd offers STARTTLS on `port` (`smtpd_tls_security_level =
        /// may`). The script copies both files into the instance directory.
        public var certificateFile: URL?
        /// A PEM file with the private key of `certificateFile`.
        public var privateKeyFile: URL?
        /// Whether smtpd also listens on `implicitTLSPort` with TLS from the first byte, like
        /// the submissions service of RFC 8314. Needs `certificateFile`.
        public var listensWithImplicitTLS: Bool
        /// The only user that AUTH accepts, checked by a Dovecot instance that belongs to this
        /// instance. Dovecot's passwd-file format rules out a colon, whitespace or control
        /// character in the user name, and a colon or control character in the password.
        public var sasl: TestServerCredentials?
        /// Whether smtpd rejects MAIL with "530 5.7.0 … Authentication required" until the
        /// client has authenticated. Needs `sasl`.
        public var requiresAuthentication: Bool
        /// Whether smtpd offers and accepts AUTH only over TLS (`smtpd_tls_auth_only = yes`).
        /// Needs `sasl` and `certificateFile`.
        public var allowsAuthenticationOnlyOverTLS: Bool

        public init(
            certificateFile: URL? = nil,
            privateKeyFile: URL? = nil,
            listensWithImplicitTLS: Bool = false,
            sasl: TestServerCredentials? = nil,
            requiresAuthentication: Bool = false,
            allowsAuthenticationOnlyOverTLS: Bool = false
        ) {
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
            self.listensWithImplicitTLS = listensWithImplicitTLS
            self.sasl = sasl
            self.requiresAuthentication = requiresAuthentication
            self.allowsAuthenticationOnlyOverTLS = allowsAuthenticationOnlyOverTLS
        }
    }

    /// The directory that contains the instance's configuration, queue, log and Maildir.
    public let directory: URL
    /// The port that smtpd listens on, at 127.0.0.1 and, where the host has IPv6 loopback, at ::1.
    public let port: UInt16
    /// The port with implicit TLS, at the same addresses as `port`, or nil without
    /// `Options.listensWithImplicitTLS`.
    public let implicitTLSPort: UInt16?

    /// The Maildir that receives every delivered message.
    public var maildir: URL { directory.appendingPathComponent("maildir", isDirectory: true) }
    /// The Postfix log of this instance (`maillog_file`).
    public var logFile: URL { directory.appendingPathComponent("maillog") }
    /// The log of the Dovecot auth service, which exists only with `Options.sasl`.
    public var dovecotLogFile: URL { directory.appendingPathComponent("dovecot/dovecot.log") }

    // `@unchecked Sendable` is sound because `isStopped` is the only mutable state and is
    // read and written only while `lock` is held.
    private let lock = NSLock()
    private var isStopped = false

    private init(directory: URL, port: UInt16, implicitTLSPort: UInt16?) {
        self.directory = directory
        self.port = port
        self.implicitTLSPort = implicitTLSPort
    }

    deinit {
        do {
            try stop()
        } catch {
            FileHandle.standardError.write(Data("PostfixInstance: stop in deinit failed: \(error)\n".utf8))
        }
    }

    // MARK: Availability

    /// The `postfix-instance` script next to this file.
    public static let scriptURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("postfix-instance")

    /// The shell that runs the script, so that a checkout without the executable bit still works.
    private static let bashURL = URL(fileURLWithPath: "/bin/bash")

    /// The reason why no instance can start in this process, or nil when one can.
    public static let unavailableReason: String? = {
        if getuid() != 0 {
            return "starting Postfix needs root (running as uid \(getuid()))"
        }
        if !FileManager.default.isExecutableFile(atPath: "/usr/lib/postfix/sbin/master") {
            return "Postfix is not installed (apt-get install postfix)"
        }
        return nil
    }()

    /// Whether `start()` can run here: the process is root and Postfix is installed.
    public static var isAvailable: Bool { unavailableReason == nil }

    /// Text for the comment of an `.enabled(if: PostfixInstance.isAvailable, …)` trait, which
    /// Swift Testing prints when it skips the test.
    public static var skipComment: String {
        "needs a Postfix instance: \(unavailableReason ?? "available")"
    }

    /// The Dovecot executable of Debian's dovecot-core package, which `Options.sasl` needs.
    private static let dovecotURL = URL(fileURLWithPath: "/usr/sbin/dovecot")

    /// The reason why no instance with `Options.sasl` can start in this process, or nil when
    /// one can.
    public static let saslUnavailableReason: String? = {
        if let reason = unavailableReason {
            return reason
        }
        if !FileManager.default.isExecutableFile(atPath: dovecotURL.path) {
            return "Dovecot is not installed (apt-get install dovecot-core)"
        }
        return nil
    }()

    /// Whether `start(options:)` can run here with `Options.sasl` set.
    public static var isSASLAvailable: Bool { saslUnavailableReason == nil }

    /// Text for the comment of an `.enabled(if: PostfixInstance.isSASLAvailable, …)` trait.
    public static var saslSkipComment: String {
        "needs a Postfix instance with Dovecot SASL: \(saslUnavailableReason ?? "available")"
    }

    // MARK: Starting and stopping

    /// Creates an instance in a new temporary directory, starts it on a free port and waits
    /// until smtpd accepts connections.
    ///
    /// - Throws: `TestServerError.unavailable` when the process is not root or Postfix is
    ///   missing, and `TestServerError.commandFailed` when Postfix fails to start.
    public static func start() async throws -> PostfixInstance {
        try await start(options: Options())
    }

    /// Creates an instance with `options` in a new temporary directory, starts it on free ports
    /// and waits until smtpd accepts connections on each of them.
    ///
    /// - Throws: `TestServerError.unavailable` when the process is not root, or Postfix, or
    ///   Dovecot for `options.sasl`, is missing. `TestServerError.commandFailed` when Postfix or
    ///   Dovecot fails to start or `options` is inconsistent, with the script's error message.
    public static func start(options: Options) async throws -> PostfixInstance {
        if let reason = options.sasl == nil ? unavailableReason : saslUnavailableReason {
            throw TestServerError.unavailable(reason)
        }

        // Another process can take a free port before Postfix binds it, so retry on new ones.
        let maximumAttempts = 3
        for attempt in 1...maximumAttempts {
            let directory = try makeTemporaryDirectory(prefix: "outbox-postfix")
            let port = try findFreeLoopbackPort()
            var implicitTLSPort: UInt16?
            if options.listensWithImplicitTLS {
                implicitTLSPort = try findFreeLoopbackPort(excluding: [port])
            }

            let arguments: [String]
            do {
                arguments = try scriptArguments(options, directory: directory, port: port, implicitTLSPort: implicitTLSPort)
            } catch {
                try? FileManager.default.removeItem(at: directory)
                throw error
            }
            let result = try await runProcess(bashURL, [scriptURL.path] + arguments)

            if result.status == 0 {
                return PostfixInstance(directory: directory, port: port, implicitTLSPort: implicitTLSPort)
            }

            let log = (try? String(contentsOf: directory.appendingPathComponent("maillog"), encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(at: directory)
            if result.status == 77 {
                throw TestServerError.unavailable(result.output.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if log.contains("Address already in use") && attempt < maximumAttempts {
                continue
            }
            throw TestServerError.commandFailed(
                command: "postfix-instance " + arguments.joined(separator: " "),
                status: result.status,
                output: result.output
            )
        }
        preconditionFailure("the start loop returns or throws on its last attempt")
    }

    /// Returns the arguments of `postfix-instance start` for `options`, and writes the SASL
    /// password to a file in `directory` that only its owner can read.
    private static func scriptArguments(
        _ options: Options,
        directory: URL,
        port: UInt16,
        implicitTLSPort: UInt16?
    ) throws -> [String] {
        var arguments = ["start", directory.path, String(port)]
        if let certificateFile = options.certificateFile {
            arguments += ["--tls-cert", certificateFile.path]
        }
        if let privateKeyFile = options.privateKeyFile {
            arguments += ["--tls-key", privateKeyFile.path]
        }
        if let implicitTLSPort {
            arguments += ["--implicit-tls-port", String(implicitTLSPort)]
        }
        if let sasl = options.sasl {
            let passwordFile = directory.appendingPathComponent("sasl-password")
            try writeSecretFile(passwordFile, contents: sasl.password)
            arguments += ["--sasl-user", sasl.user, "--sasl-password-file", passwordFile.path]
        }
        if options.requiresAuthentication {
            arguments.append("--require-auth")
        }
        if options.allowsAuthenticationOnlyOverTLS {
            arguments.append("--tls-auth-only")
        }
        return arguments
    }

    /// Stops the instance, waits until none of its processes is left and deletes its directory.
    /// Calling it again does nothing.
    public func stop() throws {
        let alreadyStopped = lock.withLock {
            defer { isStopped = true }
            return isStopped
        }
        if alreadyStopped {
            return
        }

        // Synchronous, so that deinit can call it.
        let result = try runProcessSynchronously(Self.bashURL, [Self.scriptURL.path, "stop", directory.path])
        guard result.status == 0 else {
            throw TestServerError.commandFailed(
                command: "postfix-instance stop \(directory.path)",
                status: result.status,
                output: result.output
            )
        }
        try FileManager.default.removeItem(at: directory)
    }

    // MARK: Delivered messages

    /// Returns the files in `maildir/new`, oldest first by modification time, then by name.
    public func deliveredMessages() throws -> [URL] {
        let newDirectory = maildir.appendingPathComponent("new", isDirectory: true)
        let files = try FileManager.default.contentsOfDirectory(
            at: newDirectory,
            includingPropertiesForKeys: [.contentModificationDateKey]
        )
        let dated = files.map { file in
            let date = (try? file.resourceValues(forKeys: [.contentModificationDateKey]))?.contentModificationDate
            return (file: file, date: date ?? .distantPast)
        }
        return dated
            .sorted { ($0.date, $0.file.lastPathComponent) < ($1.date, $1.file.lastPathComponent) }
            .map(\.file)
    }

    /// Waits until at least `count` messages are in `maildir/new` and returns them, oldest first.
    ///
    /// - Throws: `TestServerError.timedOut` with the end of the Postfix log when fewer than
    ///   `count` messages arrived within `timeout`.
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
                let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? "(no log at \(logFile.path))"
                let logTail = log.split(separator: "\n", omittingEmptySubsequences: false).suffix(30)
                throw TestServerError.timedOut(
                    "waiting \(timeout) for \(count) messages in \(maildir.path)/new, found \(messages.count). "
                        + "Postfix log:\n" + logTail.joined(separator: "\n")
                )
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// A message as the virtual delivery agent of Postfix 3.7 stored it in the Maildir, split into
/// the lines that Postfix added and the message that the client sent.
///
/// Compared with the DATA that the client sent (after SMTP dot-unstuffing), a delivered file
/// differs in these ways, seen with Postfix 3.7.11 configured by `postfix-instance`:
/// - Postfix prepends, in this order: `Return-Path: <sender>` (`<>` for the null sender),
///   `X-Original-To: rcpt`, `Delivered-To: rcpt` and a 3-line `Received:` header. The
///   `Received:` header ends in `for <rcpt>;` only when the transaction had one recipient.
///   Each accepted recipient gets its own file, even within one transaction.
/// - Every line ends in LF. CRLF and a bare LF both become LF, and a bare CR stays as it is.
///   Long lines (5,000 characters in a body line, 3,000 in a header) are kept whole.
/// - A first line that starts with "From " (an mbox separator) becomes the header
///   `X-Mailbox-Line: From …`.
/// - When a line that is not a header field ends the header section without an empty line,
///   Postfix inserts the empty line. A message with no header fields gets an empty line after
///   `Received:`.
/// - Nothing else changes: no Message-ID, Date, From or To is added, and addresses in headers
///   are not rewritten, because `postfix-instance` sets `local_header_rewrite_clients` empty.
///   With the Postfix default (`permit_inet_interfaces`), a loopback client's message gets
///   `Message-Id:`, `Date:` and `From:` appended to its header and `To: bob` becomes
///   `To: bob@mx.localhost.test`.
///   Folding, tabs, trailing spaces, 8-bit and UTF-8 bytes, and empty lines at the end of the
///   body are kept.
public struct DeliveredMessage: Sendable {
    /// The envelope sender from `Return-Path:`, empty for the null sender `<>`.
    public let envelopeSender: String
    /// The recipient address from `X-Original-To:`, as the client sent it in RCPT TO.
    public let originalRecipient: String
    /// The recipient address from `Delivered-To:`.
    public let deliveredTo: String
    /// The `Received:` header that smtpd added, with its continuation lines joined by LF.
    public let receivedHeader: String
    /// The message after the added lines, with every LF turned back into CRLF, so that it
    /// equals the DATA the client sent when that used CRLF throughout.
    public let content: Data

    /// Reads and splits a file from `maildir/new`.
    public init(contentsOf file: URL) throws {
        try self.init(fileContents: Data(contentsOf: file))
    }

    /// Splits the contents of a delivered file.
    ///
    /// - Throws: `TestServerError.unexpectedDeliveryFormat` when the file does not start with
    ///   the lines that Postfix adds.
    public init(fileContents: Data) throws {
        var lines = fileContents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)[...]

        func takeHeader(_ name: String) throws -> String {
            guard let line = lines.first, line.starts(with: Data("\(name): ".utf8)) else {
                let found = lines.first.map { String(decoding: $0, as: UTF8.self) } ?? "end of file"
                throw TestServerError.unexpectedDeliveryFormat("expected a \(name) header, found: \(found)")
            }
            lines.removeFirst()
            return String(decoding: line.dropFirst(name.utf8.count + 2), as: UTF8.self)
        }

        let returnPath = try takeHeader("Return-Path")
        envelopeSender = String(returnPath.dropFirst().dropLast())
        originalRecipient = try takeHeader("X-Original-To")
        deliveredTo = try takeHeader("Delivered-To")

        var received = try takeHeader("Received")
        while let line = lines.first, line.first == UInt8(ascii: "\t") || line.first == UInt8(ascii: " ") {
            received += "\n" + String(decoding: line, as: UTF8.self)
            lines.removeFirst()
        }
        receivedHeader = received

        // The file ends in LF, so the last element of the split is empty and gets no CRLF.
        var message = Data()
        for (index, line) in lines.enumerated() {
            message.append(contentsOf: line)
            if index < lines.count - 1 {
                message.append(contentsOf: [UInt8(ascii: "\r"), UInt8(ascii: "\n")])
            }
        }
        content = message
    }
}

/// A user name and password that a test server accepts for AUTH.
public struct TestServerCredentials: Sendable {
    public var user: String
    public var password: String

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}

/// An error from starting, using or stopping a test server.
public enum TestServerError: Error, CustomStringConvertible {
    /// The server cannot run in this process, for the reason in the associated value.
    case unavailable(String)
    case commandFailed(command: String, status: Int32, output: String)
    case timedOut(String)
    case unexpectedDeliveryFormat(String)
    case socketFailed(String)

    public var description: String {
        switch self {
        case .unavailable(let reason):
            return "test server unavailable: \(reason)"
        case .commandFailed(let command, let status, let output):
            return "\(command) failed with exit status \(status):\n\(output)"
        case .timedOut(let detail):
            return "timed out \(detail)"
        case .unexpectedDeliveryFormat(let detail):
            return "delivered file has an unexpected format: \(detail)"
        case .socketFailed(let detail):
            return "socket call failed: \(detail)"
        }
    }
}

// MARK: - Helpers shared with SMTPSink

struct ProcessResult {
    let status: Int32
    /// Standard output and standard error, interleaved.
    let output: String
}

/// Runs a command to completion without blocking a thread of the Swift concurrency pool.
func runProcess(_ executable: URL, _ arguments: [String]) async throws -> ProcessResult {
    let (process, outputFile) = try makeProcess(executable, arguments)
    defer { try? FileManager.default.removeItem(at: outputFile) }

    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { finished in
            continuation.resume(returning: finished.terminationStatus)
        }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    let output = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
    return ProcessResult(status: status, output: output)
}

/// Runs a command to completion, blocking the calling thread.
func runProcessSynchronously(_ executable: URL, _ arguments: [String]) throws -> ProcessResult {
    let (process, outputFile) = try makeProcess(executable, arguments)
    defer { try? FileManager.default.removeItem(at: outputFile) }

    try process.run()
    process.waitUntilExit()
    let output = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
    return ProcessResult(status: process.terminationStatus, output: output)
}

/// Creates a process whose standard output and standard error go to a new temporary file, so
/// that no pipe can fill up and block it.
private func makeProcess(_ executable: URL, _ arguments: [String]) throws -> (Process, URL) {
    let outputFile = FileManager.default.temporaryDirectory
        .appendingPathComponent("outbox-process-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
    let outputHandle = try FileHandle(forWritingTo: outputFile)

    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = outputHandle
    process.standardError = outputHandle
    return (process, outputFile)
}

/// Creates a new directory under the temporary directory. The name is short because Postfix
/// puts UNIX-domain sockets below it, and their paths may have at most 107 bytes.
func makeTemporaryDirectory(prefix: String) throws -> URL {
    let suffix = UUID().uuidString.prefix(8).lowercased()
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(suffix)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

/// Creates `file` with permissions 0600 and writes `contents` to it, for a password that
/// should not appear in a command line.
///
/// - Throws: `POSIXError` when `file` exists already or cannot be created.
func writeSecretFile(_ file: URL, contents: String) throws {
    let descriptor = open(file.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard descriptor >= 0 else {
        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    try handle.write(contentsOf: Data(contents.utf8))
    try handle.close()
}

/// Returns a TCP port that is free on 127.0.0.1 and, where the host has IPv6 loopback, on ::1.
///
/// The kernel picks the port when a socket binds port 0. The socket is closed before this
/// returns, so another process can still take the port before the caller binds it. Ports in
/// `excluding` are skipped, because the kernel may pick a port again once its socket is closed.
public func findFreeLoopbackPort(excluding excludedPorts: Set<UInt16> = []) throws -> UInt16 {
    for _ in 0..<20 {
        let port = try bindLoopback(family: AF_INET, port: 0)
        if excludedPorts.contains(port) {
            continue
        }
        do {
            _ = try bindLoopback(family: AF_INET6, port: port)
            return port
        } catch LoopbackBindError.addressInUse {
            continue
        } catch LoopbackBindError.familyUnavailable {
            return port
        }
    }
    throw TestServerError.socketFailed("found no TCP port that is free on both 127.0.0.1 and ::1 in 20 attempts")
}

private enum LoopbackBindError: Error {
    case addressInUse
    case familyUnavailable
}

/// Binds a TCP socket to the loopback address of `family` and closes it again.
///
/// - Returns: The bound port, which the kernel chooses when `port` is 0.
private func bindLoopback(family: Int32, port: UInt16) throws -> UInt16 {
    #if canImport(Glibc)
    let socketType = Int32(SOCK_STREAM.rawValue)
    #else
    let socketType = SOCK_STREAM
    #endif
    let descriptor = socket(family, socketType, 0)
    if descriptor < 0 {
        if errno == EAFNOSUPPORT {
            throw LoopbackBindError.familyUnavailable
        }
        throw TestServerError.socketFailed("socket(): \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }

    var storage = sockaddr_storage()
    let length: socklen_t
    if family == AF_INET {
        length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutableBytes(of: &storage) { bytes in
            let address = bytes.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
            address.pointee.sin_family = sa_family_t(AF_INET)
            address.pointee.sin_port = port.bigEndian
            address.pointee.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        }
    } else {
        length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        withUnsafeMutableBytes(of: &storage) { bytes in
            let address = bytes.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
            address.pointee.sin6_family = sa_family_t(AF_INET6)
            address.pointee.sin6_port = port.bigEndian
            _ = inet_pton(AF_INET6, "::1", &address.pointee.sin6_addr)
        }
    }

    let bindResult = withUnsafePointer(to: &storage) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    if bindResult != 0 {
        switch errno {
        case EADDRINUSE:
            throw LoopbackBindError.addressInUse
        case EADDRNOTAVAIL, EAFNOSUPPORT:
            throw LoopbackBindError.familyUnavailable
        default:
            throw TestServerError.socketFailed("bind() to loopback port \(port): \(String(cString: strerror(errno)))")
        }
    }

    var boundLength = length
    let nameResult = withUnsafeMutablePointer(to: &storage) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &boundLength) }
    }
    guard nameResult == 0 else {
        throw TestServerError.socketFailed("getsockname(): \(String(cString: strerror(errno)))")
    }
    return withUnsafeBytes(of: &storage) { bytes in
        if family == AF_INET {
            return UInt16(bigEndian: bytes.load(as: sockaddr_in.self).sin_port)
        }
        return UInt16(bigEndian: bytes.load(as: sockaddr_in6.self).sin6_port)
    }
}
