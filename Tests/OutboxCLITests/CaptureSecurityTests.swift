import Foundation
import Glibc
import OutboxTestSupport
import SMTPClient
import SMTPCore
import Synchronization
import Testing
@testable import OutboxCLI

// MARK: - Session without I/O

private let password = "correct horse"

private func securedSession(
    credentials: CaptureCredentials = .user("dev", password: Secret(password)), requiresAuthentication: Bool = false
) -> CaptureSession {
    var security = CaptureSession.Security()
    security.offersStartTLS = true
    security.credentials = credentials
    security.requiresAuthentication = requiresAuthentication
    return CaptureSession(serverName: "capture.test", security: security)
}

/// Returns a session after EHLO, STARTTLS, a handshake that negotiated TLS 1.3, and a second EHLO.
private func encryptedSession(
    credentials: CaptureCredentials = .user("dev", password: Secret(password)), requiresAuthentication: Bool = false
) -> CaptureSession {
    var session = securedSession(credentials: credentials, requiresAuthentication: requiresAuthentication)
    _ = events(&session, "EHLO client.test\r\nSTARTTLS\r\n")
    session.finishStartTLS(protocolVersion: "TLSv1.3")
    _ = events(&session, "EHLO client.test\r\n")
    return session
}

private func base64(_ text: String) -> String {
    Data(text.utf8).base64EncodedString()
}

@Suite struct CaptureSessionSecurityTests {
    @Test func authOfferedOnlyAfterStartTLS() throws {
        var session = securedSession()
        let before = try #require(replies(events(&session, "EHLO client.test\r\n")).first)
        #expect(before.lines.contains("STARTTLS"))
        #expect(!before.lines.contains { $0.hasPrefix("AUTH") })
        let plaintextAuth = try #require(replies(events(&session, "AUTH PLAIN \(base64("\0dev\0\(password)"))\r\n")).first)
        #expect(plaintextAuth.code == 538)
        #expect(plaintextAuth.enhancedCode?.description == "5.7.11")

        #expect(codes(events(&session, "STARTTLS\r\n")) == [220, -2])
        session.finishStartTLS(protocolVersion: "TLSv1.3")
        let after = try #require(replies(events(&session, "EHLO client.test\r\n")).first)
        #expect(!after.lines.contains("STARTTLS"))
        #expect(after.lines.contains("AUTH PLAIN LOGIN CRAM-MD5"))
    }

    @Test func startTLSForgetsEHLO() {
        var session = securedSession()
        _ = events(&session, "EHLO client.test\r\nSTARTTLS\r\n")
        session.finishStartTLS(protocolVersion: "TLSv1.3")
        #expect(codes(events(&session, "MAIL FROM:<a@example.test>\r\n")) == [503])
        #expect(codes(events(&session, "STARTTLS\r\n")) == [503])
    }

    @Test("commands pipelined after STARTTLS close the session", arguments: [
        "STARTTLS\r\nMAIL FROM:<a@example.test>\r\n", "STARTTLS\r\nx",
    ])
    func pipelinedAfterStartTLS(input: String) throws {
        var session = securedSession()
        _ = events(&session, "EHLO client.test\r\n")
        let result = events(&session, input)
        #expect(codes(result) == [554, -1])
        #expect(try #require(replies(result).first).text.contains("pipelined after STARTTLS"))
    }

    @Test func startTLSRejectedInTransaction() {
        var session = securedSession()
        _ = events(&session, "EHLO client.test\r\nMAIL FROM:<a@example.test>\r\n")
        #expect(codes(events(&session, "STARTTLS\r\n")) == [503])
        #expect(codes(events(&session, "STARTTLS now\r\n")) == [501])
    }

    @Test func plainWithInitialResponse() {
        var session = encryptedSession()
        #expect(codes(events(&session, "AUTH PLAIN \(base64("\0dev\0\(password)"))\r\n")) == [235])
        #expect(session.authenticatedUser == "dev")
        #expect(codes(events(&session, "AUTH PLAIN \(base64("\0dev\0\(password)"))\r\n")) == [503])
    }

    @Test("invalid PLAIN credentials get 535", arguments: [
        "\0dev\0wrong", "\0other\0\(password)", "other\0dev\0\(password)",
    ])
    func plainWrongCredentials(message: String) {
        var session = encryptedSession()
        let result = events(&session, "AUTH PLAIN \(base64(message))\r\n")
        #expect(codes(result) == [535])
        #expect(replies(result).first?.enhancedCode?.description == "5.7.8")
        #expect(session.authenticatedUser == nil)
    }

    @Test func plainAfterEmptyChallenge() throws {
        var session = encryptedSession()
        let challenge = try #require(replies(events(&session, "AUTH PLAIN\r\n")).first)
        #expect(String(decoding: challenge.encoded(), as: UTF8.self) == "334 \r\n")
        #expect(codes(events(&session, base64("dev\0dev\0\(password)") + "\r\n")) == [235])
    }

    @Test func emptyInitialResponseIsDecoded() {
        // "=" is an empty response, which is not a valid PLAIN message, so it is malformed rather than
        // invalid base64.
        var session = encryptedSession(credentials: .any)
        let result = events(&session, "AUTH PLAIN =\r\n")
        #expect(codes(result) == [501])
        #expect(replies(result).first?.text.contains("PLAIN response") == true)
    }

    @Test func cancelWithAsterisk() throws {
        var session = encryptedSession()
        _ = events(&session, "AUTH LOGIN\r\n")
        let reply = try #require(replies(events(&session, "*\r\n")).first)
        #expect(reply.code == 501)
        #expect(reply.text.contains("cancelled"))
        // The next line is a command again.
        #expect(codes(events(&session, "NOOP\r\n")) == [250])
    }

    @Test func loginExchange() {
        var session = encryptedSession()
        let first = replies(events(&session, "AUTH LOGIN\r\n"))
        #expect(first.map(\.lines) == [["VXNlcm5hbWU6"]])
        let second = replies(events(&session, base64("dev") + "\r\n"))
        #expect(second.map(\.lines) == [["UGFzc3dvcmQ6"]])
        #expect(codes(events(&session, base64(password) + "\r\n")) == [235])
    }

    @Test func loginUserAsInitialResponse() {
        var session = encryptedSession()
        #expect(codes(events(&session, "AUTH LOGIN \(base64("dev"))\r\n")) == [334])
        #expect(codes(events(&session, base64("wrong") + "\r\n")) == [535])
    }

    @Test func cramMD5Exchange() throws {
        for (secret, expected) in [(password, 235), ("wrong", 535)] {
            var session = encryptedSession()
            let challengeReply = try #require(replies(events(&session, "AUTH CRAM-MD5\r\n")).first)
            #expect(challengeReply.code == 334)
            let challenge = try #require(Data(base64Encoded: challengeReply.text))
            #expect(String(decoding: challenge, as: UTF8.self).hasSuffix("@capture.test>"))
            var client = CRAMMD5Mechanism(username: "dev", password: Secret(secret))
            let response = try client.response(to: Array(challenge))
            #expect(codes(events(&session, Data(response).base64EncodedString() + "\r\n")) == [expected])
        }
    }

    @Test("AUTH errors", arguments: [
        ("AUTH\r\n", 501), ("AUTH DIGEST-MD5\r\n", 504), ("AUTH PLAIN not*base64\r\n", 501),
        ("AUTH PLAIN AAAA BBBB\r\n", 501), ("MAIL FROM:<a@example.test>\r\nAUTH PLAIN\r\n", 503),
    ])
    func authErrors(input: String, code: Int) {
        var session = encryptedSession()
        #expect(codes(events(&session, input)).last == code)
    }

    @Test func anyCredentialsAccepted() {
        var session = encryptedSession(credentials: .any)
        #expect(codes(events(&session, "AUTH PLAIN \(base64("\0someone\0anything"))\r\n")) == [235])
        #expect(session.authenticatedUser == "someone")
    }

    @Test func authRequiredBeforeMail() throws {
        var session = encryptedSession(requiresAuthentication: true)
        let rejected = try #require(replies(events(&session, "MAIL FROM:<a@example.test>\r\n")).first)
        #expect(rejected.code == 530)
        #expect(rejected.enhancedCode?.description == "5.7.0")
        _ = events(&session, "AUTH PLAIN \(base64("\0dev\0\(password)"))\r\n")
        let result = events(&session, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n")
        #expect(codes(result) == [250, 250, 354, 0, 250])
        let message = try #require(messages(result).first)
        #expect(message.transferProtocol == "ESMTPSA")
        #expect(message.tlsProtocolVersion == "TLSv1.3")
        #expect(message.authenticatedUser == "dev")
    }

    @Test func summaryShowsTLSAndUser() {
        let message = CapturedMessage(
            sender: "a@example.test", recipients: ["b@example.test"], content: Array("Subject: s\r\n\r\n".utf8),
            clientName: "c.test", transferProtocol: "ESMTPSA", tlsProtocolVersion: "TLSv1.3", authenticatedUser: "dev")
        let line = CaptureCommand.summaryLine(for: .init(date: Date(), message: message, path: "/m/new/1"))
        #expect(line.hasSuffix(" size 14 tls TLSv1.3 user dev subject \"s\" file /m/new/1"))
        #expect(!line.contains(password))
    }
}

// MARK: - Options

@Suite struct CaptureSecurityOptionsTests {
    @Test("invalid TLS and AUTH options", arguments: [
        ["--no-tls", "--implicit-tls"], ["--no-tls", "--print-fingerprint"], ["--tls-cert", "/x.pem"],
        ["--auth", "some"], ["--auth", "any", "--auth-user", "u", "--auth-password-env", "P"], ["--auth-user", "u"],
        ["--auth-user", "u", "--auth-password-env", "P", "--auth-password-file", "/p"], ["--auth-password-env", "P"],
        ["--auth-required"], ["--allow-plaintext-auth"], ["--no-tls", "--auth", "any"],
    ])
    func invalidOptions(arguments: [String]) async throws {
        let result = try await runOutbox(["capture", "--maildir", "/nonexistent/never-created"] + arguments)
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(result.error.hasPrefix("outbox capture: "))
    }

    @Test func helpListsSecurityOptions() async throws {
        let help = try await runOutbox(["capture", "--help"])
        for option in ["--tls-cert FILE", "--print-fingerprint", "--implicit-tls", "--no-tls", "--auth any",
                       "--auth-user NAME", "--auth-password-env VARIABLE", "--auth-required", "--allow-plaintext-auth"] {
            #expect(help.output.contains(option), "\(option)")
        }
    }

    @Test func missingPasswordVariable() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        let result = try await runOutbox(
            ["capture", "--maildir", maildir, "--auth-user", "dev", "--auth-password-env", "CAPTURE_TEST_UNSET"])
        #expect(result.status == ExitCode.configuration.rawValue)
        #expect(result.error.contains("CAPTURE_TEST_UNSET"))
    }

    @Test func unreadableCertificate() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        let result = try await runOutbox(
            ["capture", "--maildir", maildir, "--tls-cert", maildir + "/none.pem", "--tls-key", maildir + "/none.key"])
        #expect(result.status == ExitCode.configuration.rawValue)
        #expect(result.error.contains("none.pem"))
    }
}

// MARK: - Server

/// A client over `TCPConnection` that can start TLS, for sending exactly the bytes a test needs.
private final class TLSLineClient {
    let connection: TCPConnection
    private var parser = ReplyParser()

    init(port: UInt16) throws {
        connection = try TCPConnection.connect(
            host: "127.0.0.1", port: port, connectTimeout: .seconds(5), deadline: nil,
            cancellation: try CancellationSignal())
    }

    func send(_ text: String) throws {
        try connection.write(Array(text.utf8), timeout: .seconds(10), deadline: nil)
    }

    func readReply() throws -> SMTPReply {
        while true {
            if let reply = try parser.nextReply() {
                return reply
            }
            parser.append(try connection.read(timeout: .seconds(10), deadline: nil))
        }
    }

    func startTLS(fingerprint: String) throws {
        try connection.startTLS(
            configuration: TLSConfiguration(trust: .pinnedSHA256Fingerprint(fingerprint)), serverName: "localhost",
            timeout: .seconds(10), deadline: nil)
    }
}

/// Returns the fingerprint from the line that `--print-fingerprint` prints.
private func printedFingerprint(_ run: CaptureRun) throws -> String {
    let prefix = "outbox capture: TLS certificate SHA-256 fingerprint "
    let line = try #require(run.output.split(separator: "\n").first { $0.hasPrefix(prefix) })
    return String(line.dropFirst(prefix.count))
}

private let testMessage = "From: a@example.test\nTo: b@example.test\nSubject: Secure\n\nbody\n"
private let passwordVariable = "CAPTURE_TEST_PASSWORD"

/// Returns the options of `outbox send` that reach the capture run over STARTTLS, pinned and logged in as dev.
private func sendArguments(_ run: CaptureRun, fingerprint: String) -> [String] {
    ["send", "-t", "--host", "127.0.0.1", "--port", String(run.port), "--tls", "starttls",
     "--tls-fingerprint", fingerprint, "--user", "dev", "--password-env", passwordVariable]
}

/// Returns a server with STARTTLS on a generated certificate.
private func makeTLSServer(maildir: String, log: @escaping @Sendable (String) -> Void) throws -> CaptureServer {
    let certificate = try SelfSignedCertificate.generate(
        commonName: "localhost", alternativeNames: CaptureCommand.generatedCertificateNames)
    var configuration = CaptureServer.Configuration(address: .ipv4)
    configuration.tls = try TLSServerContext(
        certificatePEM: certificate.certificatePEM, privateKeyPEM: certificate.privateKeyPEM)
    return try CaptureServer(
        configuration: configuration, maildir: try Maildir(creatingAt: maildir),
        onMessageSaved: { _ in }, log: log)
}

@Suite(.timeLimit(.minutes(1)))
struct CaptureSecurityServerTests {
    @Test func sendOverStartTLSWithAuth() async throws {
        let run = try await CaptureRun.start(
            ["--max-messages", "1", "--print-fingerprint", "--auth-user", "dev", "--auth-password-env",
             passwordVariable, "--auth-required"],
            environment: [passwordVariable: password])
        defer { run.remove() }
        let fingerprint = try printedFingerprint(run)

        let result = try await runOutbox(
            sendArguments(run, fingerprint: fingerprint), input: testMessage,
            environment: [passwordVariable: password])
        #expect(result.status == 0, "\(result.error)")

        let (status, output, _) = await run.finish()
        #expect(status == .success)
        #expect(output.contains(" tls TLSv1.3 user dev subject \"Secure\" file "))
        #expect(!output.contains(password))
        let text = try fileText(try #require(try savedFiles(run.maildir).first))
        #expect(text.contains(" with ESMTPSA\r\n"))
    }

    @Test func wrongPasswordGets535() async throws {
        let run = try await CaptureRun.start(
            ["--max-messages", "1", "--print-fingerprint", "--auth-user", "dev", "--auth-password-env",
             passwordVariable],
            environment: [passwordVariable: password])
        defer { run.remove() }
        let fingerprint = try printedFingerprint(run)

        let rejected = try await runOutbox(
            sendArguments(run, fingerprint: fingerprint), input: testMessage,
            environment: [passwordVariable: "wrong"])
        #expect(rejected.status == ExitCode.noPermission.rawValue)
        #expect(rejected.error.contains("535"), "\(rejected.error)")

        // The server goes on, and the right password ends the run after one message.
        let accepted = try await runOutbox(
            sendArguments(run, fingerprint: fingerprint), input: testMessage,
            environment: [passwordVariable: password])
        #expect(accepted.status == 0, "\(accepted.error)")
        let (status, _, errors) = await run.finish()
        #expect(status == .success)
        #expect(try savedFiles(run.maildir).count == 1)
        #expect(errors.contains("rejected AUTH on connection 1 from 127.0.0.1:"), "\(errors)")
        #expect(!errors.contains("wrong"))
    }

    @Test func authOfferedOnlyAfterStartTLS() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1", "--print-fingerprint", "--auth", "any"])
        defer { run.remove() }
        let client = try TLSLineClient(port: run.port)
        #expect(try client.readReply().code == 220)
        try client.send("EHLO raw.test\r\n")
        let before = try client.readReply()
        #expect(before.lines.contains("STARTTLS"))
        #expect(!before.lines.contains { $0.hasPrefix("AUTH") })
        try client.send("AUTH PLAIN \(base64("\0dev\0x"))\r\n")
        #expect(try client.readReply().code == 538)

        try client.send("STARTTLS\r\n")
        #expect(try client.readReply().code == 220)
        try client.startTLS(fingerprint: try printedFingerprint(run))
        try client.send("EHLO raw.test\r\n")
        let after = try client.readReply()
        #expect(after.lines.contains("AUTH PLAIN LOGIN CRAM-MD5"))
        #expect(!after.lines.contains("STARTTLS"))
        try client.send("AUTH PLAIN =\r\nAUTH PLAIN \(base64("\0tester\0anything"))\r\n")
        #expect(try client.readReply().code == 501)
        #expect(try client.readReply().code == 235)
        try client.send("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
        #expect(try (0..<5).map { _ in try client.readReply().code } == [250, 250, 354, 250, 221])

        let (_, output, _) = await run.finish()
        #expect(output.contains(" tls TLSv1.3 user tester subject "))
    }

    @Test func commandPipelinedAfterStartTLSRejected() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let client = try RawClient(port: run.port)
        // One write, so that the server reads the MAIL command in the same buffer as STARTTLS.
        try client.send("EHLO raw.test\r\nSTARTTLS\r\nMAIL FROM:<injected@example.test>\r\n")
        #expect(try client.readCodes(3) == [220, 250, 554])
        #expect(client.isClosedByServer())

        // The server goes on serving other clients.
        let other = try RawClient(port: run.port)
        try other.send("EHLO x.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
        #expect(try other.readCodes(7) == [220, 250, 250, 250, 354, 250, 221])
        let (_, output, errors) = await run.finish()
        #expect(!output.contains("injected@"))
        #expect(errors.contains("554 5.5.1 Commands were pipelined after STARTTLS"))
    }

    @Test func plaintextAfterStartTLSReplyFailsHandshake() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        let logs = Mutex<[String]>([])
        let server = try makeTLSServer(maildir: maildir) { line in logs.withLock { $0.append(line) } }
        server.start()
        let client = try RawClient(port: server.port)
        try client.send("EHLO raw.test\r\nSTARTTLS\r\n")
        #expect(try client.readCodes(3) == [220, 250, 220])
        try client.send("MAIL FROM:<injected@example.test>\r\n")
        #expect(client.isClosedByServer())
        server.stop()
        await server.waitUntilFinished()
        #expect(server.savedMessageCount == 0)
        #expect(logs.withLock { $0 }.contains { $0.contains("the TLS handshake after STARTTLS on connection 1") })
    }

    @Test func stopSends421OverTLS() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        let server = try makeTLSServer(maildir: maildir) { _ in }
        server.start()
        let client = try TLSLineClient(port: server.port)
        try client.send("EHLO raw.test\r\nSTARTTLS\r\n")
        #expect(try client.readReply().code == 220)
        #expect(try client.readReply().code == 250)
        #expect(try client.readReply().code == 220)
        let fingerprint = try #require(server.configuration.tls?.certificateInfo?.sha256Fingerprint)
        try client.startTLS(fingerprint: fingerprint)
        try client.send("EHLO raw.test\r\n")
        #expect(try client.readReply().code == 250)

        // The session is blocked in a read, so the 421 goes out after cancellation, through TLS.
        server.stop()
        let reply = try client.readReply()
        #expect(reply.code == 421)
        #expect(reply.text.contains("shutting down"))
        await server.waitUntilFinished()
    }

    @Test func passwordFromFile() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let passwordFile = directory + "/password"
        #expect(FileManager.default.createFile(
            atPath: passwordFile, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600]))
        let run = try await CaptureRun.start(
            ["--max-messages", "1", "--print-fingerprint", "--auth-user", "dev", "--auth-password-file", passwordFile])
        defer { run.remove() }
        let result = try await runOutbox(
            ["send", "-t", "--host", "127.0.0.1", "--port", String(run.port), "--tls-fingerprint",
             try printedFingerprint(run), "--user", "dev", "--password-file", passwordFile],
            input: testMessage)
        #expect(result.status == 0, "\(result.error)")
        let (_, output, _) = await run.finish()
        #expect(output.contains(" user dev subject "))
    }

    @Test func givenCertificateServed() async throws {
        let certificates = try TestCertificates.shared()
        let run = try await CaptureRun.start(
            ["--max-messages", "1", "--print-fingerprint", "--tls-cert", certificates.server.certificatePath,
             "--tls-key", certificates.server.keyPath])
        defer { run.remove() }
        let expected = try TestCertificates.sha256Fingerprint(ofCertificateAt: certificates.server.certificatePath)
        #expect(try printedFingerprint(run) == expected)

        let result = try await runOutbox(
            ["send", "-t", "--host", "localhost", "--port", String(run.port), "--tls", "starttls",
             "--tls-trust-file", certificates.caCertificatePath],
            input: testMessage)
        #expect(result.status == 0, "\(result.error)")
        let (_, output, _) = await run.finish()
        #expect(output.contains(" tls TLSv1."))
        #expect(!output.contains(" user "))
    }

    @Test func implicitTLS() async throws {
        let run = try await CaptureRun.start(
            ["--max-messages", "1", "--print-fingerprint", "--implicit-tls", "--auth", "any"])
        defer { run.remove() }
        let result = try await runOutbox(
            ["send", "-t", "--host", "127.0.0.1", "--port", String(run.port), "--tls", "implicit",
             "--tls-fingerprint", try printedFingerprint(run), "--user", "anyone", "--password-env", passwordVariable],
            input: testMessage, environment: [passwordVariable: "anything"])
        #expect(result.status == 0, "\(result.error)")
        let (_, output, _) = await run.finish()
        #expect(output.contains(" tls TLSv1.3 user anyone subject "))
    }

    @Test func opensslClientOverStartTLS() async throws {
        let run = try await CaptureRun.start(
            ["--max-messages", "1", "--print-fingerprint", "--auth-user", "dev", "--auth-password-env",
             passwordVariable, "--auth-required"],
            environment: [passwordVariable: password])
        defer { run.remove() }
        let commands = [
            "EHLO openssl.test", "AUTH PLAIN \(base64("\0dev\0\(password)"))", "MAIL FROM:<o@example.test>",
            "RCPT TO:<b@example.test>", "DATA", "Subject: From openssl", "", "body", ".", "QUIT",
        ]
        // -ign_eof keeps reading after standard input ends, until the server closes after QUIT.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestCertificates.opensslPath)
        process.arguments = [
            "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:\(run.port)", "-crlf", "-ign_eof", "-quiet",
        ]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data((commands.joined(separator: "\n") + "\n").utf8))
        try input.fileHandleForWriting.close()
        let transcript = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()

        #expect(transcript.contains("250 AUTH PLAIN LOGIN CRAM-MD5"), "\(transcript)")
        #expect(transcript.contains("235 2.7.0 Authentication successful"))
        #expect(transcript.contains("250 2.0.0 Message saved as "))
        let (_, printed, _) = await run.finish()
        #expect(printed.contains("from <o@example.test> to <b@example.test> size "))
        #expect(printed.contains(" user dev subject \"From openssl\""))
    }
}
