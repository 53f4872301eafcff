import Foundation
import OutboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Checks STARTTLS, implicit TLS and AUTH of the aiosmtpd and Postfix test servers with clients
/// that share no code with Outbox: Python's smtplib (driven through `Process`), a SCRAM exchange
/// written in Python on top of smtplib, `openssl s_client`, and Dovecot's `doveadm auth test`.
/// A failure here points at the harness, not at the client under test.
@Suite("Auth server harness")
struct AuthServerHarnessTests {
    static let user = "alice@example.test"
    static let password = "correct horse battery"
    static let credentials = TestServerCredentials(user: user, password: password)
    static let message = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: harness\r\n\r\n.dot line\r\nbody\r\n"

    // MARK: aiosmtpd

    @Test(
        "aiosmtpd STARTTLS then PLAIN and LOGIN",
        .enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment)),
        .enabled(if: Tools.hasOpenSSL, Comment(rawValue: Tools.openSSLSkipComment))
    )
    func aiosmtpdStartTLSThenAuth() async throws {
        let certificates = try await TestCertificateFiles.make()
        defer { certificates.remove() }
        let server = try await AIOSMTPDServer.start(options: .init(
            tls: .startTLS,
            certificateFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey,
            authentication: Self.credentials,
            requiresAuthentication: true,
            allowsAuthenticationOnlyOverTLS: true
        ))
        defer { server.stop() }

        for mechanism in ["PLAIN", "LOGIN"] {
            let result = try await SMTPProbe(
                port: server.port, tls: .startTLS, caFile: certificates.caCertificate,
                mechanism: mechanism, user: Self.user, password: Self.password,
                message: Self.message
            ).run()
            #expect(result.error == nil, "\(mechanism): \(result.error ?? "")")
            #expect(result.starttlsOffered == true, "\(mechanism)")
            #expect(result.authBeforeStarttls == [], "AUTH before STARTTLS, \(mechanism)")
            #expect(result.tlsVersion?.hasPrefix("TLSv1.") == true, "\(mechanism)")
            #expect(result.authMechanisms == ["LOGIN", "PLAIN"], "\(mechanism)")
            #expect(result.mailBeforeAuth?.code == 530, "\(mechanism)")
            #expect(result.auth?.code == 235, "\(mechanism)")
            #expect(result.sendmail?.refused == [], "\(mechanism)")
        }

        let files = try await server.waitForDeliveries(count: 2)
        #expect(files.count == 2)
        for file in files {
            let saved = try AIOSMTPDServer.SavedMessage(contentsOf: file)
            #expect(saved.mailFrom == "alice@example.test")
            #expect(saved.recipients == ["bob@example.test", "carol@example.org"])
            #expect(saved.authenticatedUser == Self.user)
            #expect(saved.content == Data(Self.message.utf8))
        }
    }

    @Test(
        "aiosmtpd rejects bad credentials",
        .enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment))
    )
    func aiosmtpdRejectsBadCredentials() async throws {
        // No TLS at all, so AUTH runs in plain text, which the server allows because
        // allowsAuthenticationOnlyOverTLS is false.
        let server = try await AIOSMTPDServer.start(options: .init(authentication: Self.credentials))
        defer { server.stop() }

        let cases: [(mechanism: String, user: String, password: String, code: Int)] = [
            ("PLAIN", Self.user, "wrong", 535),
            ("LOGIN", Self.user, "wrong", 535),
            ("PLAIN", "mallory@example.test", Self.password, 535),
            ("CRAM-MD5", Self.user, Self.password, 504),
            ("PLAIN", Self.user, Self.password, 235),
        ]
        for testCase in cases {
            let result = try await SMTPProbe(
                port: server.port, tls: .none, mechanism: testCase.mechanism,
                user: testCase.user, password: testCase.password
            ).run()
            #expect(result.error == nil, "\(testCase): \(result.error ?? "")")
            #expect(result.authMechanisms == ["LOGIN", "PLAIN"], "\(testCase)")
            #expect(result.auth?.code == testCase.code, "\(testCase)")
        }
        #expect(try server.deliveredMessages().isEmpty)
    }

    @Test(
        "aiosmtpd without credentials hides AUTH",
        .enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment))
    )
    func aiosmtpdWithoutCredentialsHidesAuth() async throws {
        let server = try await AIOSMTPDServer.start()
        defer { server.stop() }

        let result = try await SMTPProbe(
            port: server.port, tls: .none, mechanism: "PLAIN", user: Self.user, password: Self.password,
            message: Self.message
        ).run()
        #expect(result.error == nil, "\(result.error ?? "")")
        #expect(result.authMechanisms == [])
        #expect(result.mailBeforeAuth?.code == 250)
        #expect(result.auth?.code == 504)
        #expect(result.sendmail?.refused == [])
        let files = try await server.waitForDeliveries(count: 1)
        let saved = try AIOSMTPDServer.SavedMessage(contentsOf: try #require(files.first))
        #expect(saved.authenticatedUser == nil)
        #expect(saved.content == Data(Self.message.utf8))
    }

    @Test(
        "aiosmtpd requires STARTTLS",
        .enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment)),
        .enabled(if: Tools.hasOpenSSL, Comment(rawValue: Tools.openSSLSkipComment))
    )
    func aiosmtpdRequiresStartTLS() async throws {
        let certificates = try await TestCertificateFiles.make()
        defer { certificates.remove() }
        let server = try await AIOSMTPDServer.start(options: .init(
            tls: .startTLS,
            certificateFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey,
            requiresSTARTTLS: true
        ))
        defer { server.stop() }

        let result = try await SMTPProbe(
            port: server.port, tls: .startTLS, caFile: certificates.caCertificate, message: Self.message
        ).run()
        #expect(result.error == nil, "\(result.error ?? "")")
        #expect(result.mailBeforeStarttls?.code == 530)
        #expect(result.mailBeforeAuth?.code == 250)
        #expect(result.sendmail?.refused == [])
        try await server.waitForDeliveries(count: 1)
    }

    @Test(
        "aiosmtpd STARTTLS fails for untrusted CA",
        .enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment)),
        .enabled(if: Tools.hasOpenSSL, Comment(rawValue: Tools.openSSLSkipComment))
    )
    func aiosmtpdStartTLSFailsForUntrustedCA() async throws {
        let certificates = try await TestCertificateFiles.make()
        defer { certificates.remove() }
        let server = try await AIOSMTPDServer.start(options: .init(
            tls: .startTLS,
            certificateFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey
        ))
        defer { server.stop() }

        // No CA file: the client trusts only the system's CAs, which did not sign the test
        // certificate, so the check in smtplib's starttls() must fail.
        let result = try await SMTPProbe(port: server.port, tls: .startTLS, caFile: nil).run()
        let error = try #require(result.error)
        #expect(error.contains("CERTIFICATE_VERIFY_FAILED"), "\(error)")
    }

    @Test(
        "aiosmtpd implicit TLS with s_client",
        .enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment)),
        .enabled(if: Tools.hasOpenSSL, Comment(rawValue: Tools.openSSLSkipComment))
    )
    func aiosmtpdImplicitTLS() async throws {
        let certificates = try await TestCertificateFiles.make()
        defer { certificates.remove() }
        let server = try await AIOSMTPDServer.start(options: .init(
            tls: .implicit,
            certificateFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey,
            authentication: Self.credentials,
            requiresAuthentication: true,
            allowsAuthenticationOnlyOverTLS: true
        ))
        defer { server.stop() }

        let session = try await OpenSSLClientSession.run(
            port: server.port, startTLS: false, caFile: certificates.caCertificate,
            commands: ["EHLO client.example.test", "MAIL FROM:<alice@example.test>", plainAuthCommand(), "QUIT"]
        )
        #expect(session.status == 0, "\(session.errorOutput)")
        #expect(session.replyLines.first?.hasPrefix("220 ") == true, "\(session.replyLines)")
        #expect(session.replyLines.contains("250-AUTH LOGIN PLAIN"), "\(session.replyLines)")
        #expect(session.replyLines.contains { $0.hasPrefix("530 ") }, "\(session.replyLines)")
        #expect(session.replyLines.contains { $0.hasPrefix("235 ") }, "\(session.replyLines)")
        #expect(session.errorOutput.contains("verify return:1"), "\(session.errorOutput)")

        let result = try await SMTPProbe(
            port: server.port, tls: .implicit, caFile: certificates.caCertificate,
            mechanism: "LOGIN", user: Self.user, password: Self.password, message: Self.message
        ).run()
        #expect(result.error == nil, "\(result.error ?? "")")
        #expect(result.auth?.code == 235)
        #expect(result.sendmail?.refused == [])
        try await server.waitForDeliveries(count: 1)
    }

    // MARK: Postfix with Dovecot SASL

    @Test(
        "Postfix STARTTLS then PLAIN, LOGIN, CRAM-MD5",
        .enabled(if: PostfixInstance.isSASLAvailable, Comment(rawValue: PostfixInstance.saslSkipComment)),
        .enabled(if: Tools.hasOpenSSL, Comment(rawValue: Tools.openSSLSkipComment)),
        .enabled(if: Tools.hasPython, Comment(rawValue: Tools.pythonSkipComment))
    )
    func postfixStartTLSThenAuth() async throws {
        let certificates = try await TestCertificateFiles.make()
        defer { certificates.remove() }
        let postfix = try await PostfixInstance.start(options: .init(
            certificateFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey,
            sasl: Self.credentials,
            requiresAuthentication: true,
            allowsAuthenticationOnlyOverTLS: true
        ))
        defer { try? postfix.stop() }

        for mechanism in ["PLAIN", "LOGIN", "CRAM-MD5"] {
            let result = try await SMTPProbe(
                port: postfix.port, tls: .startTLS, caFile: certificates.caCertificate,
                mechanism: mechanism, user: Self.user, password: Self.password,
                message: Self.message
            ).run()
            #expect(result.error == nil, "\(mechanism): \(result.error ?? "")")
            #expect(result.starttlsOffered == true, "\(mechanism)")
            #expect(result.authBeforeStarttls == [], "AUTH before STARTTLS, \(mechanism)")
            #expect(result.mailBeforeStarttls?.code == 530, "\(mechanism)")
            #expect(result.authMechanisms == PostfixMechanisms.all, "\(mechanism)")
            #expect(result.mailBeforeAuth?.code == 530, "\(mechanism)")
            #expect(result.auth?.code == 235, "\(mechanism)")
            #expect(result.sendmail?.refused == [], "\(mechanism)")
        }

        // Each message has two recipients, and Postfix writes one file per recipient.
        let files = try await postfix.waitForDeliveries(count: 6)
        #expect(files.count == 6)
        for file in files {
            let delivered = try DeliveredMessage(contentsOf: file)
            #expect(delivered.envelopeSender == "alice@example.test")
            #expect(delivered.content == Data(Self.message.utf8))
        }
        let log = try String(contentsOf: postfix.logFile, encoding: .utf8)
        for mechanism in ["PLAIN", "LOGIN", "CRAM-MD5"] {
            #expect(log.contains("sasl_method=\(mechanism), sasl_username=\(Self.user)"), "\(mechanism)")
        }
    }

    @Test(
        "Postfix SCRAM-SHA-1 and SCRAM-SHA-256",
        .enabled(if: PostfixInstance.isSASLAvailable, Comment(rawValue: PostfixInstance.saslSkipComment)),
        .enabled(if: Tools.hasOpenSSL, Comment(rawValue: Tools.openSSLSkipComment)),
        .enabled(if: Tools.hasPython, Comment(rawValue: Tools.pythonSkipComment))
    )
    func postfixSCRAM() async throws {
        let certificates = try await TestCertificateFiles.make()
        defer { certificates.remove() }
        let postfix = try await PostfixInstance.start(options: .init(
            certificateFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey,
            sasl: Self.credentials
        ))
        defer { try? postfix.stop() }

        for mechanism in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
            let result = try await SMTPProbe(
                port: postfix.port, tls: .startTLS, caFile: certificates.caCertificate,
                mechanism: mechanism, user: Self.user, password: Self.password,
                message: Self.message
            ).run()
            #expect(result.error == nil, "\(mechanism): \(result.error ?? "")")
            // Without smtpd_tls_auth_only, AUTH is offered before STARTTLS too.
            #expect(result.authBeforeStarttls == PostfixMechanisms.all, "\(mechanism)")
            #expect(result.auth?.code == 235, "\(mechanism)")
            #expect(result.scramServerSignatureValid == true, "\(mechanism)")
            #expect(result.sendmail?.refused == [], "\(mechanism)")

            let wrong = try await SMTPProbe(
                port: postfix.port, tls: .startTLS, caFile: certificates.caCertificate,
                mechanism: mechanism, user: Self.user, password: "wrong"
            ).run()
            #expect(wrong.error == nil, "\(mechanism): \(wrong.error ?? "")")
            #expect(wrong.auth?.code == 535, "wrong password, \(mechanism)")
        }
        try await postfix.waitForDeliveries(count: 4)
        let log = try String(contentsOf: postfix.logFile, encoding: .utf8)
        #expect(log.contains("sasl_method=SCRAM-SHA-1, sasl_username=\(Self.user)"))
        #expect(log.contains("sasl_method=SCRAM-SHA-256, sasl_username=\(Self.user)"))
    }

    @Test(
        "Postfix rejects bad credentials",
        .enabled(if: PostfixInstance.isSASLAvailable, Comment(rawValue: PostfixInstance.saslSkipComment)),
        .enabled(if: Tools.hasPython, Comment(rawValue: Tools.pythonSkipComment))
    )
    func postfixRejectsBadCredentials() async throws {
        let postfix = try await PostfixInstance.start(options: .init(sasl: Self.credentials))
        defer { try? postfix.stop() }

        let cases: [(mechanism: String, user: String, password: String)] = [
            ("PLAIN", Self.user, "wrong"),
            ("LOGIN", Self.user, "wrong"),
            ("CRAM-MD5", Self.user, "wrong"),
            ("PLAIN", "mallory@example.test", Self.password),
        ]
        for testCase in cases {
            let result = try await SMTPProbe(
                port: postfix.port, tls: .none, mechanism: testCase.mechanism,
                user: testCase.user, password: testCase.password
            ).run()
            #expect(result.error == nil, "\(testCase): \(result.error ?? "")")
            #expect(result.auth?.code == 535, "\(testCase)")
        }
        let dovecotLog = try String(contentsOf: postfix.dovecotLogFile, encoding: .utf8)
        #expect(dovecotLog.contains("Password mismatch"), "\(dovecotLog)")
        #expect(dovecotLog.contains("unknown user"), "\(dovecotLog)")
    }

    @Test(
        "Postfix implicit TLS with s_client",
        .enabled(if: PostfixInstance.isSASLAvailable, Comment(rawValue: PostfixInstance.saslSkipComment)),
        .enabled(if: Tools.hasOpenSSL, Comment(rawValue: Tools.openSSLSkipComment))
    )
    func postfixImplicitTLS() async throws {
        let certificates = try await TestCertificateFiles.make()
        defer { certificates.remove() }
        let postfix = try await PostfixInstance.start(options: .init(
            certificateFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey,
            listensWithImplicitTLS: true,
            sasl: Self.credentials,
            requiresAuthentication: true,
            allowsAuthenticationOnlyOverTLS: true
        ))
        defer { try? postfix.stop() }
        let implicitTLSPort = try #require(postfix.implicitTLSPort)
        #expect(implicitTLSPort != postfix.port)

        let commands = [
            "EHLO client.example.test", "MAIL FROM:<alice@example.test>", plainAuthCommand(),
            "MAIL FROM:<alice@example.test>", "QUIT",
        ]
        let implicit = try await OpenSSLClientSession.run(
            port: implicitTLSPort, startTLS: false, caFile: certificates.caCertificate, commands: commands
        )
        #expect(implicit.status == 0, "\(implicit.errorOutput)")
        #expect(implicit.replyLines.first?.hasPrefix("220 ") == true, "\(implicit.replyLines)")
        #expect(implicit.replyLines.contains("250-AUTH \(PostfixMechanisms.all.joined(separator: " "))"), "\(implicit.replyLines)")
        #expect(implicit.replyLines.contains { $0.hasPrefix("530 5.7.0 ") }, "\(implicit.replyLines)")
        #expect(implicit.replyLines.contains { $0.hasPrefix("235 ") }, "\(implicit.replyLines)")
        #expect(implicit.replyLines.contains { $0.hasPrefix("250 2.1.0 ") }, "\(implicit.replyLines)")
        #expect(implicit.errorOutput.contains("verify return:1"), "\(implicit.errorOutput)")

        // s_client sends its own EHLO and STARTTLS, and prints replies only from then on.
        let startTLS = try await OpenSSLClientSession.run(
            port: postfix.port, startTLS: true, caFile: certificates.caCertificate, commands: commands
        )
        #expect(startTLS.status == 0, "\(startTLS.errorOutput)")
        #expect(startTLS.replyLines.contains { $0.hasPrefix("235 ") }, "\(startTLS.replyLines)")
        #expect(startTLS.errorOutput.contains("verify return:1"), "\(startTLS.errorOutput)")

        let untrusted = try await OpenSSLClientSession.run(
            port: implicitTLSPort, startTLS: false, caFile: nil, commands: ["QUIT"]
        )
        #expect(untrusted.status != 0)
        #expect(untrusted.errorOutput.contains("certificate verify failed"), "\(untrusted.errorOutput)")
    }

    @Test(
        "Postfix TLS without SASL hides AUTH",
        .enabled(if: PostfixInstance.isAvailable, Comment(rawValue: PostfixInstance.skipComment)),
        .enabled(if: Tools.hasOpenSSL, Comment(rawValue: Tools.openSSLSkipComment)),
        .enabled(if: Tools.hasPython, Comment(rawValue: Tools.pythonSkipComment))
    )
    func postfixTLSWithoutSASL() async throws {
        let certificates = try await TestCertificateFiles.make()
        defer { certificates.remove() }
        let postfix = try await PostfixInstance.start(options: .init(
            certificateFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey
        ))
        defer { try? postfix.stop() }
        #expect(postfix.implicitTLSPort == nil)

        let result = try await SMTPProbe(
            port: postfix.port, tls: .startTLS, caFile: certificates.caCertificate, message: Self.message
        ).run()
        #expect(result.error == nil, "\(result.error ?? "")")
        #expect(result.starttlsOffered == true)
        #expect(result.authMechanisms == [])
        #expect(result.mailBeforeAuth?.code == 250)
        #expect(result.sendmail?.refused == [])
        try await postfix.waitForDeliveries(count: 2)
    }

    @Test(
        "Dovecot auth test and no TCP listener",
        .enabled(if: PostfixInstance.isSASLAvailable, Comment(rawValue: PostfixInstance.saslSkipComment))
    )
    func dovecotAuthTestAndNoTCPListener() async throws {
        let postfix = try await PostfixInstance.start(options: .init(sasl: Self.credentials))
        defer { try? postfix.stop() }
        let configuration = postfix.directory.appendingPathComponent("dovecot/dovecot.conf").path

        // doveadm of Dovecot 2.3.19 has no -m option, so "auth test" tries PLAIN only.
        let accepted = try await Tools.run("/usr/bin/doveadm", [
            "-c", configuration, "auth", "test", "-x", "service=smtp", Self.user, Self.password,
        ])
        #expect(accepted.status == 0, "\(accepted.output)")
        #expect(accepted.output.contains("auth succeeded"), "\(accepted.output)")
        let rejected = try await Tools.run("/usr/bin/doveadm", [
            "-c", configuration, "auth", "test", "-x", "service=smtp", Self.user, "wrong",
        ])
        #expect(rejected.status == 77, "\(rejected.output)")
        #expect(rejected.output.contains("auth failed"), "\(rejected.output)")

        let processes = try DovecotProcesses(dovecotDirectory: postfix.directory.appendingPathComponent("dovecot"))
        #expect(processes.ids.count >= 2, "master and at least one child: \(processes.ids)")
        #expect(processes.listeningTCPPorts().isEmpty, "Dovecot listens on TCP: \(processes.listeningTCPPorts())")

        try postfix.stop()
        #expect(processes.runningIDs().isEmpty, "Dovecot processes left after stop: \(processes.runningIDs())")
        #expect(!FileManager.default.fileExists(atPath: postfix.directory.path))
    }

    /// Returns "AUTH PLAIN" with the initial response for the test user.
    private func plainAuthCommand() -> String {
        let response = Data("\0\(Self.user)\0\(Self.password)".utf8).base64EncodedString()
        return "AUTH PLAIN \(response)"
    }
}

/// The mechanisms that `postfix-instance --sasl-user` configures in Dovecot, in the order
/// that Postfix announces them.
private enum PostfixMechanisms {
    static let all = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]
}

// MARK: - External programs

private enum Tools {
    static let pythonPath = "/usr/bin/python3"
    static let openSSLPath = "/usr/bin/openssl"

    static var hasPython: Bool { FileManager.default.isExecutableFile(atPath: pythonPath) }
    static let pythonSkipComment = "needs Debian's python3 at /usr/bin/python3 (apt-get install python3)"
    static var hasOpenSSL: Bool { FileManager.default.isExecutableFile(atPath: openSSLPath) }
    static let openSSLSkipComment = "needs the openssl command (apt-get install openssl)"

    struct Result {
        let status: Int32
        let output: String
        let errorOutput: String
    }

    /// Runs a program to completion with `input` on standard input, without blocking a thread
    /// of the Swift concurrency pool. A program still running after `timeout` gets SIGKILL.
    static func run(
        _ path: String,
        _ arguments: [String],
        input: Data = Data(),
        timeout: Duration = .seconds(30)
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("outbox-tool-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputFile = directory.appendingPathComponent("stdin")
        let outputFile = directory.appendingPathComponent("stdout")
        let errorFile = directory.appendingPathComponent("stderr")
        try input.write(to: inputFile)
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardInput = try FileHandle(forReadingFrom: inputFile)
        process.standardOutput = try FileHandle(forWritingTo: outputFile)
        process.standardError = try FileHandle(forWritingTo: errorFile)

        var timeoutTask: Task<Void, Never>?
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in
                continuation.resume(returning: finished.terminationStatus)
            }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
                return
            }
            let processIdentifier = process.processIdentifier
            timeoutTask = Task {
                do {
                    try await Task.sleep(for: timeout)
                } catch {
                    return
                }
                kill(processIdentifier, SIGKILL)
            }
        }
        timeoutTask?.cancel()
        return Result(
            status: status,
            output: (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "",
            errorOutput: (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
        )
    }
}

/// A CA certificate and a server certificate for localhost, 127.0.0.1 and ::1 that it signed,
/// made with the openssl command in a new temporary directory. Both keys are ECDSA P-256, and
/// the certificates are valid for 2 days.
private struct TestCertificateFiles {
    let directory: URL
    var caCertificate: URL { directory.appendingPathComponent("ca.pem") }
    var serverCertificate: URL { directory.appendingPathComponent("server.pem") }
    var serverKey: URL { directory.appendingPathComponent("server.key") }

    static func make() async throws -> TestCertificateFiles {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("outbox-certificates-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let files = TestCertificateFiles(directory: directory)
        do {
            try await files.generate()
        } catch {
            files.remove()
            throw error
        }
        return files
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    private func generate() async throws {
        let caKey = directory.appendingPathComponent("ca.key").path
        let request = directory.appendingPathComponent("server.csr").path
        let extensions = directory.appendingPathComponent("server.ext")
        try Data("""
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = serverAuth
            subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1

            """.utf8).write(to: extensions)

        try await openSSL([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", caKey, "-out", caCertificate.path, "-days", "2", "-subj", "/CN=Outbox Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try await openSSL([
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", serverKey.path, "-out", request, "-subj", "/CN=localhost",
        ])
        let serial = "0x" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16)
        try await openSSL([
            "x509", "-req", "-in", request, "-CA", caCertificate.path, "-CAkey", caKey,
            "-set_serial", String(serial), "-days", "2", "-extfile", extensions.path, "-out", serverCertificate.path,
        ])
    }

    private func openSSL(_ arguments: [String]) async throws {
        let result = try await Tools.run(Tools.openSSLPath, arguments)
        guard result.status == 0 else {
            throw TestServerError.commandFailed(
                command: "openssl " + arguments.joined(separator: " "),
                status: result.status,
                output: result.output + result.errorOutput
            )
        }
    }
}

/// One `openssl s_client` session that sends `commands` and records the server's replies.
private struct OpenSSLClientSession {
    let status: Int32
    /// The lines that the server sent after the TLS handshake, without CRLF.
    let replyLines: [String]
    /// What s_client printed on standard error: the certificate checks and any error.
    let errorOutput: String

    /// Connects to 127.0.0.1:`port`, with `-starttls smtp` when `startTLS` is true, and checks
    /// the certificate against `caFile` (nil leaves only the system's CAs) and 127.0.0.1.
    ///
    /// With `-quiet`, s_client keeps the connection open after the end of its input, so the
    /// commands must end with QUIT, after which the server closes the connection.
    static func run(port: UInt16, startTLS: Bool, caFile: URL?, commands: [String]) async throws -> OpenSSLClientSession {
        var arguments = [
            "s_client", "-connect", "127.0.0.1:\(port)", "-verify_return_error", "-verify_ip", "127.0.0.1",
            "-quiet",
        ]
        if startTLS {
            arguments += ["-starttls", "smtp"]
        }
        if let caFile {
            arguments += ["-CAfile", caFile.path]
        }
        let input = commands.map { $0 + "\r\n" }.joined()
        let result = try await Tools.run(Tools.openSSLPath, arguments, input: Data(input.utf8))
        // Swift treats CRLF as one Character, which isNewline matches as a whole.
        let lines = result.output.split(whereSeparator: \.isNewline).map(String.init)
        return OpenSSLClientSession(status: result.status, replyLines: lines, errorOutput: result.errorOutput)
    }
}

/// One SMTP session by Python's smtplib, configured by JSON and reporting JSON (see `script`).
private struct SMTPProbe: Encodable {
    enum TLS: String, Encodable {
        case none
        case startTLS = "starttls"
        case implicit
    }

    struct Result: Decodable {
        struct Reply: Decodable {
            let code: Int
            let text: String
        }

        struct Sendmail: Decodable {
            let refused: [String]?
            let error: String?
        }

        let starttlsOffered: Bool?
        let authBeforeStarttls: [String]?
        let mailBeforeStarttls: Reply?
        let tlsVersion: String?
        let authMechanisms: [String]?
        let mailBeforeAuth: Reply?
        let auth: Reply?
        let scramServerSignatureValid: Bool?
        let sendmail: Sendmail?
        /// The exception that ended the session early, as "TypeName: message".
        let error: String?
    }

    let port: UInt16
    let tls: TLS
    /// The CA file that the client trusts, or nil for the system's CAs.
    var cafile: String?
    var mechanism: String?
    var user: String?
    var password: String?
    var message: String?
    var sender = "alice@example.test"
    var recipients = ["bob@example.test", "carol@example.org"]

    init(
        port: UInt16,
        tls: TLS,
        caFile: URL? = nil,
        mechanism: String? = nil,
        user: String? = nil,
        password: String? = nil,
        message: String? = nil
    ) {
        self.port = port
        self.tls = tls
        self.cafile = caFile?.path
        self.mechanism = mechanism
        self.user = user
        self.password = password
        self.message = message
    }

    func run() async throws -> Result {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let configuration = String(decoding: try encoder.encode(self), as: UTF8.self)
        let result = try await Tools.run(Tools.pythonPath, ["-c", Self.script, configuration])
        guard result.status == 0 else {
            throw TestServerError.commandFailed(
                command: "python3 -c <smtplib probe> \(configuration)",
                status: result.status,
                output: result.output + result.errorOutput
            )
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Result.self, from: Data(result.output.utf8))
    }

    /// The session: EHLO, STARTTLS with `tls == .startTLS` (probing MAIL before it), EHLO
    /// again, a probe MAIL and RSET, AUTH with `mechanism`, then `message` when set, and QUIT.
    /// SCRAM runs as a raw exchange (RFC 5802) over smtplib's docmd, because smtplib has no
    /// SCRAM, and the script checks the server signature.
    static let script = #"""
        import base64, hashlib, hmac, json, os, smtplib, ssl, sys

        config = json.loads(sys.argv[1])
        result = {}

        def reply(code, text):
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            return {"code": code, "text": text}

        def auth_mechanisms(client):
            return client.esmtp_features.get("auth", "").split()

        def probe_mail(client):
            response = reply(*client.docmd("MAIL FROM:<" + config["sender"] + ">"))
            client.docmd("RSET")
            return response

        def scram(client, mechanism, user, password):
            hash_name = "sha1" if mechanism == "SCRAM-SHA-1" else "sha256"
            client_nonce = base64.b64encode(os.urandom(18)).decode()
            client_first_bare = "n=" + user.replace("=", "=3D").replace(",", "=2C") + ",r=" + client_nonce
            initial = base64.b64encode(("n,," + client_first_bare).encode()).decode()
            code, text = client.docmd("AUTH", mechanism + " " + initial)
            if code != 334:
                return reply(code, text)
            server_first = base64.b64decode(text).decode()
            fields = dict(field.split("=", 1) for field in server_first.split(","))
            if not fields["r"].startswith(client_nonce):
                raise ValueError("server nonce does not start with the client nonce")
            salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
            client_key = hmac.digest(salted, b"Client Key", hash_name)
            stored_key = hashlib.new(hash_name, client_key).digest()
            client_final_without_proof = "c=biws,r=" + fields["r"]
            auth_message = ",".join([client_first_bare, server_first, client_final_without_proof]).encode()
            signature = hmac.digest(stored_key, auth_message, hash_name)
            proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
            code, text = client.docmd(base64.b64encode((client_final_without_proof + ",p=" + proof).encode()).decode())
            if code == 334:
                server_final = base64.b64decode(text).decode()
                server_key = hmac.digest(salted, b"Server Key", hash_name)
                expected = "v=" + base64.b64encode(hmac.digest(server_key, auth_message, hash_name)).decode()
                result["scram_server_signature_valid"] = server_final == expected
                code, text = client.docmd("")
            return reply(code, text)

        try:
            context = None
            if config["tls"] != "none":
                context = ssl.create_default_context(cafile=config.get("cafile"))
            if config["tls"] == "implicit":
                client = smtplib.SMTP_SSL("127.0.0.1", config["port"], context=context, timeout=10)
            else:
                client = smtplib.SMTP("127.0.0.1", config["port"], timeout=10)
            client.ehlo("client.example.test")
            if config["tls"] == "starttls":
                result["starttls_offered"] = client.has_extn("starttls")
                result["auth_before_starttls"] = auth_mechanisms(client)
                result["mail_before_starttls"] = probe_mail(client)
                client.starttls(context=context)
                client.ehlo("client.example.test")
            if isinstance(client.sock, ssl.SSLSocket):
                result["tls_version"] = client.sock.version()
            result["auth_mechanisms"] = auth_mechanisms(client)
            result["mail_before_auth"] = probe_mail(client)

            mechanism = config.get("mechanism")
            if mechanism and mechanism.startswith("SCRAM-"):
                result["auth"] = scram(client, mechanism, config["user"], config["password"])
            elif mechanism:
                client.user, client.password = config["user"], config["password"]
                methods = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login, "CRAM-MD5": client.auth_cram_md5}
                try:
                    result["auth"] = reply(*client.auth(mechanism, methods[mechanism]))
                except smtplib.SMTPAuthenticationError as error:
                    result["auth"] = reply(error.smtp_code, error.smtp_error)

            if config.get("message") is not None:
                try:
                    refused = client.sendmail(config["sender"], config["recipients"], config["message"].encode())
                    result["sendmail"] = {"refused": sorted(refused)}
                except smtplib.SMTPException as error:
                    result["sendmail"] = {"error": type(error).__name__ + ": " + str(error)}
            client.quit()
        except (OSError, smtplib.SMTPException, ValueError) as error:
            result["error"] = type(error).__name__ + ": " + str(error)

        print(json.dumps(result))
        """#
}

/// The processes of the Dovecot instance that `postfix-instance` starts under DIR/dovecot: the
/// master from `run/master.pid` and all its descendants, read from /proc.
private struct DovecotProcesses {
    let ids: [Int32]

    init(dovecotDirectory: URL) throws {
        let pidText = try String(contentsOf: dovecotDirectory.appendingPathComponent("run/master.pid"), encoding: .utf8)
        let masterID = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        var found: [Int32] = [masterID]
        var foundNew = true
        while foundNew {
            foundNew = false
            for (processID, parentID) in Self.parentIDs() where found.contains(parentID) && !found.contains(processID) {
                found.append(processID)
                foundNew = true
            }
        }
        ids = found
    }

    /// Returns the ids that still belong to a running process. A zombie counts as stopped,
    /// because it has exited and only waits for init to reap it.
    func runningIDs() -> [Int32] {
        ids.filter { processID in
            guard let state = Self.stat(of: processID)?.state else {
                return false
            }
            return state != "Z"
        }
    }

    /// Returns the TCP ports on which one of these processes has a listening socket, read from
    /// /proc/net/tcp and /proc/net/tcp6 and matched by socket inode.
    func listeningTCPPorts() -> [UInt16] {
        var inodes = Set<String>()
        for processID in ids {
            let fdDirectory = "/proc/\(processID)/fd"
            let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: fdDirectory)) ?? []
            for descriptor in descriptors {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDirectory)/\(descriptor)"),
                    target.hasPrefix("socket:[")
                else {
                    continue
                }
                inodes.insert(String(target.dropFirst("socket:[".count).dropLast()))
            }
        }

        var ports: [UInt16] = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = readProcFile(table) ?? ""
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                let listenState = "0A"
                guard fields.count > 9, fields[3] == listenState, inodes.contains(String(fields[9])) else {
                    continue
                }
                if let portText = fields[1].split(separator: ":").last, let port = UInt16(portText, radix: 16) {
                    ports.append(port)
                }
            }
        }
        return ports
    }

    /// Returns every process id with its parent id, from /proc/PID/stat.
    private static func parentIDs() -> [(Int32, Int32)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard let processID = Int32(entry), let stat = stat(of: processID) else {
                return nil
            }
            return (processID, stat.parentID)
        }
    }

    /// Reads the state and parent id from /proc/PID/stat. They follow the command name, which
    /// is in parentheses and may contain spaces.
    private static func stat(of processID: Int32) -> (state: String, parentID: Int32)? {
        guard let text = try? String(contentsOfFile: "/proc/\(processID)/stat", encoding: .utf8),
            let nameEnd = text.range(of: ") ", options: .backwards)
        else {
            return nil
        }
        let fields = text[nameEnd.upperBound...].split(separator: " ")
        guard fields.count > 1, let parentID = Int32(fields[1]) else {
            return nil
        }
        return (String(fields[0]), parentID)
    }
}
