import Foundation
import OutboxTestSupport
import Testing
@testable import OutboxCLI

private let user = "alice"
private let password = "s3cret-Pässwörd"
private let message = "From: alice@example.test\nTo: bob@example.test\nSubject: secure\n\nHello over TLS.\n"

/// Writes the password to a file only its owner can read, as `--password-file` expects.
private func passwordFile() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-password-\(UUID().uuidString)")
    let created = FileManager.default.createFile(
        atPath: url.path, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600])
    try #require(created, "could not create \(url.path)")
    return url
}

/// Returns the forms in which a leaked password could appear in a transcript.
private func secretForms() -> [String] {
    let plain = Data("\0\(user)\0\(password)".utf8).base64EncodedString()
    var forms = [password, plain, Data(password.utf8).base64EncodedString()]
    for offset in 1...2 {
        let shifted = Data((String(repeating: "x", count: offset) + password).utf8).base64EncodedString()
        forms.append(String(shifted.dropFirst(4).dropLast(4)))
    }
    return forms
}

/// `outbox send` through Postfix with STARTTLS and SASL from Dovecot, and aiosmtpd with implicit TLS.
@Suite(
    .enabled(if: PostfixInstance.isSASLAvailable, Comment(rawValue: PostfixInstance.saslSkipComment)),
    .timeLimit(.minutes(3)))
struct SecureSendTests {
    private func startPostfix(certificate: TestCertificates.Identity) async throws -> PostfixInstance {
        try await PostfixInstance.start(options: .init(
            certificateFile: URL(fileURLWithPath: certificate.certificatePath),
            privateKeyFile: URL(fileURLWithPath: certificate.keyPath),
            listensWithImplicitTLS: true,
            sasl: TestServerCredentials(user: user, password: password),
            requiresAuthentication: true, allowsAuthenticationOnlyOverTLS: true))
    }

    @Test("STARTTLS and AUTH through Postfix", arguments: ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", nil])
    func startTLSAndAuthThroughPostfix(mechanism: String?) async throws {
        let certificates = try TestCertificates.shared()
        let postfix = try await startPostfix(certificate: certificates.server)
        defer { try? postfix.stop() }
        let secret = try passwordFile()
        defer { try? FileManager.default.removeItem(at: secret) }

        var arguments = [
            "send", "-t", "--debug", "--host", "localhost", "--port", String(postfix.port), "--tls", "starttls",
            "--tls-trust-file", certificates.caCertificatePath, "--user", user, "--password-file", secret.path,
        ]
        if let mechanism {
            arguments += ["--auth", mechanism]
        }
        let result = try await runOutbox(arguments, input: message)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("C: STARTTLS"))
        #expect(result.error.contains("C: AUTH \(mechanism ?? "SCRAM-SHA-256")"))
        for form in secretForms() {
            #expect(!result.error.contains(form), "the --debug output contains a form of the password")
        }
        let delivered = try await postfix.waitForDeliveries(count: 1)
        let copy = try DeliveredMessage(contentsOf: delivered[0])
        #expect(copy.deliveredTo == "bob@example.test")
        #expect(copy.receivedHeader.contains("ESMTPSA"), "Postfix records an authenticated TLS session")
    }

    @Test func implicitTLSThroughPostfix() async throws {
        let certificates = try TestCertificates.shared()
        let postfix = try await startPostfix(certificate: certificates.server)
        defer { try? postfix.stop() }
        let secret = try passwordFile()
        defer { try? FileManager.default.removeItem(at: secret) }
        let port = try #require(postfix.implicitTLSPort)
        let result = try await runOutbox(
            ["send", "-t", "--host", "127.0.0.1", "--port", String(port), "--tls", "implicit",
             "--tls-trust-file", certificates.caCertificatePath, "--user", user, "--password-file", secret.path],
            input: message)
        #expect(result.status == 0, "\(result.error)")
        _ = try await postfix.waitForDeliveries(count: 1)
    }

    @Test("untrusted certificates stop the session", arguments: ["expired", "otherName", "selfSigned", "systemTrust"])
    func untrustedCertificate(kind: String) async throws {
        let certificates = try TestCertificates.shared()
        let identity: TestCertificates.Identity
        var trust = ["--tls-trust-file", certificates.caCertificatePath]
        let expected: String
        switch kind {
        case "expired":
            identity = certificates.expired
            expected = "expired"
        case "otherName":
            identity = certificates.otherName
            expected = "localhost"
        case "selfSigned":
            identity = certificates.selfSigned
            expected = "self-signed"
        default:
            identity = certificates.server
            trust = []
            expected = "issuer"
        }
        let postfix = try await startPostfix(certificate: identity)
        defer { try? postfix.stop() }
        let secret = try passwordFile()
        defer { try? FileManager.default.removeItem(at: secret) }
        let result = try await runOutbox(
            ["send", "-t", "--debug", "--host", "localhost", "--port", String(postfix.port), "--tls", "starttls",
             "--user", user, "--password-file", secret.path] + trust,
            input: message)
        #expect(result.status == ExitCode.temporaryFailure.rawValue, "\(result.error)")
        #expect(result.error.contains("STARTTLS failed"))
        #expect(result.error.contains(expected))
        #expect(result.error.contains("SHA-256 fingerprint"))
        #expect(result.error.contains("--tls-fingerprint"))
        #expect(!result.error.contains("C: AUTH"))
        #expect(!result.error.contains("C: MAIL"))
        #expect(try postfix.deliveredMessages().isEmpty)
    }

    @Test func pinnedFingerprintTrustsSelfSigned() async throws {
        let certificates = try TestCertificates.shared()
        let postfix = try await startPostfix(certificate: certificates.selfSigned)
        defer { try? postfix.stop() }
        let secret = try passwordFile()
        defer { try? FileManager.default.removeItem(at: secret) }
        let fingerprint = try TestCertificates.sha256Fingerprint(ofCertificateAt: certificates.selfSigned.certificatePath)
        let result = try await runOutbox(
            ["send", "-t", "--host", "localhost", "--port", String(postfix.port), "--tls", "starttls",
             "--tls-fingerprint", fingerprint, "--user", user, "--password-file", secret.path],
            input: message)
        #expect(result.status == 0, "\(result.error)")
        _ = try await postfix.waitForDeliveries(count: 1)
    }

    @Test func wrongPasswordExplained() async throws {
        let certificates = try TestCertificates.shared()
        let postfix = try await startPostfix(certificate: certificates.server)
        defer { try? postfix.stop() }
        let result = try await runOutbox(
            ["send", "-t", "--host", "localhost", "--port", String(postfix.port), "--tls", "starttls",
             "--tls-trust-file", certificates.caCertificatePath, "--user", user, "--password-command", "echo wrong"],
            input: message)
        #expect(result.status == ExitCode.noPermission.rawValue, "\(result.error)")
        #expect(result.error.contains("535"))
        #expect(result.error.contains("app password"))
    }
}

@Suite(.enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment)), .timeLimit(.minutes(1)))
struct AIOSMTPDSendTests {
    @Test("TLS and AUTH through aiosmtpd", arguments: [("PLAIN", "implicit"), ("LOGIN", "implicit"), ("PLAIN", "starttls")])
    func tlsThroughAIOSMTPD(mechanism: String, tlsMode: String) async throws {
        let certificates = try TestCertificates.shared()
        let server = try await AIOSMTPDServer.start(options: .init(
            tls: tlsMode == "implicit" ? .implicit : .startTLS,
            certificateFile: URL(fileURLWithPath: certificates.server.certificatePath),
            privateKeyFile: URL(fileURLWithPath: certificates.server.keyPath),
            authentication: TestServerCredentials(user: user, password: password), requiresAuthentication: true))
        defer { server.stop() }
        let result = try await runOutbox(
            ["send", "-t", "--debug", "--host", "localhost", "--port", String(server.port), "--tls", tlsMode,
             "--tls-trust-file", certificates.caCertificatePath, "--user", user, "--password-env", "OUTBOX_TEST_PASSWORD",
             "--auth", mechanism],
            input: message, environment: ["OUTBOX_TEST_PASSWORD": password])
        #expect(result.status == 0, "\(result.error)")
        for form in secretForms() {
            #expect(!result.error.contains(form), "the --debug output contains a form of the password")
        }
        let delivered = try await server.waitForDeliveries(count: 1)
        #expect(delivered.count == 1)
    }

    /// Credentials may go unencrypted to a server on loopback. The refusal for other servers is tested
    /// in the session core, because tests reach no server off loopback.
    @Test func plaintextCredentialsAllowedOnLoopback() async throws {
        let server = try await AIOSMTPDServer.start(options: .init(
            authentication: TestServerCredentials(user: user, password: password)))
        defer { server.stop() }
        let result = try await runOutbox(
            ["send", "-t", "--host", "127.0.0.1", "--port", String(server.port), "--user", user,
             "--password-env", "OUTBOX_TEST_PASSWORD"],
            input: message, environment: ["OUTBOX_TEST_PASSWORD": password])
        #expect(result.status == 0, "credentials may go to loopback without TLS: \(result.error)")
    }
}
