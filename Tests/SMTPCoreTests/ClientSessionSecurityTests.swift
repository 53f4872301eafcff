import Foundation
import Testing
@testable import SMTPCore

/// Drives a session through greeting and EHLO with a given configuration, recording what it does.
private struct SecureHarness {
    var session: ClientSession
    var written: [String] = []
    var events: [ClientSession.Action] = []

    init(_ configuration: ClientSession.Configuration) {
        session = ClientSession(configuration: configuration)
    }

    mutating func server(_ text: String) {
        record(session.receive(Array(text.utf8)))
    }

    mutating func record(_ actions: [ClientSession.Action]) {
        for action in actions {
            switch action {
            case .write(let bytes):
                written.append(String(decoding: bytes, as: UTF8.self))
            case .writeRedacted(let bytes, _):
                written.append(String(decoding: bytes, as: UTF8.self))
                events.append(action)
            default:
                events.append(action)
            }
        }
    }

    var failure: SMTPError? {
        for case .fail(let error) in events { return error }
        return nil
    }

    var askedForHandshake: Bool { events.contains(.startTLS) }
    var isReady: Bool { session.isReady }
}

private func configuration(
    startTLS: StartTLSPolicy, isLoopback: Bool = false, authentication: AuthenticationConfiguration? = nil
) -> ClientSession.Configuration {
    .init(clientName: "client.example.test", startTLS: startTLS, isLoopback: isLoopback, authentication: authentication)
}

private let ehloWithStartTLS = "250-mx.example.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
private let ehloWithoutStartTLS = "250-mx.example.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"

struct ClientSessionSecurityTests {
    @Test func requiredStartTLSHandshakeThenEHLOAgain() {
        var harness = SecureHarness(configuration(startTLS: .required))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithStartTLS)
        #expect(harness.written.last == "STARTTLS\r\n")
        #expect(!harness.isReady)
        harness.server("220 2.0.0 go ahead\r\n")
        #expect(harness.askedForHandshake)
        #expect(harness.session.awaitedPhase == .startTLS)
        harness.record(harness.session.tlsEstablished())
        #expect(harness.session.isEncrypted)
        #expect(harness.session.capabilities.extensions.isEmpty, "capabilities from before TLS are forgotten")
        #expect(harness.written.last == "EHLO client.example.test\r\n")
        harness.server("250-mx.example.test\r\n250 SIZE 100\r\n")
        #expect(harness.isReady)
        #expect(!harness.session.capabilities.supportsPipelining)
        #expect(harness.session.capabilities.maximumMessageSize == 100)
    }

    @Test func requiredStartTLSMissingStopsSession() {
        var harness = SecureHarness(configuration(startTLS: .required))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithoutStartTLS)
        #expect(harness.failure?.phase == .startTLS)
        guard case .tlsUnavailable? = harness.failure?.kind else {
            Issue.record("expected tlsUnavailable, got \(String(describing: harness.failure))")
            return
        }
        #expect(harness.written.last == "QUIT\r\n")
        #expect(!harness.written.contains { $0.hasPrefix("MAIL") || $0.hasPrefix("AUTH") })
        #expect(!harness.isReady)
    }

    @Test("required STARTTLS refused", arguments: [
        "454 4.7.0 TLS not available\r\n", "502 5.5.1 not implemented\r\n", "354 go on\r\n", "250 ok\r\n",
        "501 syntax\r\n",
    ])
    func requiredStartTLSRefused(reply: String) {
        var harness = SecureHarness(configuration(startTLS: .required))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithStartTLS)
        harness.server(reply)
        #expect(harness.failure?.phase == .startTLS)
        #expect(!harness.askedForHandshake)
        #expect(!harness.written.contains { $0.hasPrefix("MAIL") || $0.hasPrefix("AUTH") })
        #expect(!harness.isReady)
    }

    @Test("injected bytes after 220 rejected", arguments: [
        "220 go ahead\r\n250 injected\r\n", "220 go ahead\r\nMAIL FROM:<x@example.test>\r\n", "220 go ahead\r\n2",
    ])
    func injectedBytesRejected(replies: String) {
        var harness = SecureHarness(configuration(startTLS: .required))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithStartTLS)
        harness.server(replies)
        #expect(!harness.askedForHandshake)
        #expect(harness.failure?.phase == .startTLS)
        guard case .protocolViolation? = harness.failure?.kind else {
            Issue.record("expected a protocol violation, got \(String(describing: harness.failure))")
            return
        }
    }

    @Test func handshakeFailureEndsSession() {
        var harness = SecureHarness(configuration(startTLS: .required))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithStartTLS)
        harness.server("220 go ahead\r\n")
        harness.record(harness.session.tlsFailed("certificate has expired"))
        #expect(harness.failure?.kind == .tlsFailed("certificate has expired"))
        #expect(harness.events.contains(.close))
        #expect(harness.written.last == "STARTTLS\r\n")
    }

    @Test func opportunisticWithoutOfferContinues() {
        var harness = SecureHarness(configuration(startTLS: .ifOffered))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithoutStartTLS)
        #expect(harness.isReady)
        #expect(!harness.session.isEncrypted)
    }

    @Test func opportunisticRefusalContinues() {
        var harness = SecureHarness(configuration(startTLS: .ifOffered))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithStartTLS)
        harness.server("454 4.7.0 TLS not available\r\n")
        #expect(harness.isReady)
    }

    @Test func neverIgnoresOffer() {
        var harness = SecureHarness(configuration(startTLS: .never))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithStartTLS)
        #expect(harness.isReady)
        #expect(!harness.written.contains("STARTTLS\r\n"))
    }

    @Test func credentialsNotSentUnencryptedToRemoteServer() {
        let authentication = AuthenticationConfiguration(
            credentials: .password(username: "user", password: Secret("hunter2")))
        var harness = SecureHarness(configuration(startTLS: .never, authentication: authentication))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server(ehloWithStartTLS)
        #expect(harness.failure?.phase == .auth)
        #expect(!harness.written.contains { $0.hasPrefix("AUTH") })
        #expect(harness.failure?.description.contains("hunter2") == false)
    }

    private func authenticated(
        _ credentials: SASLCredentials, mechanism: String? = nil, offered: String = "PLAIN LOGIN"
    ) -> SecureHarness {
        let authentication = AuthenticationConfiguration(credentials: credentials, mechanism: mechanism)
        var harness = SecureHarness(configuration(startTLS: .never, isLoopback: true, authentication: authentication))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server("250-mx.example.test\r\n250 AUTH \(offered)\r\n")
        return harness
    }

    private let alice = SASLCredentials.password(username: "alice", password: Secret("hunter2"))

    @Test func plainLoginSucceeds() {
        var harness = authenticated(alice, offered: "LOGIN PLAIN")
        #expect(harness.written.last == "AUTH PLAIN AGFsaWNlAGh1bnRlcjI=\r\n")
        guard case .writeRedacted(_, let shown)? = harness.events.last else {
            Issue.record("AUTH was not written redacted")
            return
        }
        #expect(shown == "AUTH PLAIN <redacted>")
        harness.server("235 2.7.0 Authentication successful\r\n")
        #expect(harness.isReady)
        #expect(harness.session.isAuthenticated)
        #expect(harness.session.authenticationMechanism == "PLAIN")
    }

    @Test func loginAnswersEachChallengeRedacted() {
        var harness = authenticated(alice, mechanism: "LOGIN")
        #expect(harness.written.last == "AUTH LOGIN\r\n")
        harness.server("334 VXNlcm5hbWU6\r\n")
        #expect(harness.written.last == "YWxpY2U=\r\n")
        harness.server("334 UGFzc3dvcmQ6\r\n")
        #expect(harness.written.last == "aHVudGVyMg==\r\n")
        let redactedCount = harness.events.filter { if case .writeRedacted = $0 { true } else { false } }.count
        #expect(redactedCount == 3)
        harness.server("235 2.7.0 ok\r\n")
        #expect(harness.isReady)
    }

    @Test("rejected login explains", arguments: [
        ("535 5.7.8 Authentication credentials invalid", "app password", false),
        ("534 5.7.9 Authentication mechanism is too weak", "stronger", false),
        ("538 5.7.11 Encryption required", "TLS", false),
        ("454 4.7.0 Temporary authentication failure", "later", true),
    ])
    func rejectedLoginExplains(reply: String, hint: String, temporary: Bool) {
        var harness = authenticated(alice)
        harness.server(reply + "\r\n")
        #expect(harness.failure?.phase == .auth)
        #expect(harness.failure?.isTemporary == temporary)
        #expect(harness.failure?.description.contains(hint) == true)
        #expect(harness.failure?.description.contains("hunter2") == false)
        #expect(!harness.isReady)
    }

    @Test func xoauth2ErrorShown() {
        let token = SASLCredentials.oauth2(username: "alice@example.test", token: Secret("ya29.token"))
        var harness = authenticated(token, offered: "XOAUTH2")
        #expect(harness.written.last?.hasPrefix("AUTH XOAUTH2 ") == true)
        let json = #"{"status":"401","schemes":"bearer","scope":"https://mail.example.test/"}"#
        harness.server("334 \(Data(json.utf8).base64EncodedString())\r\n")
        #expect(harness.written.last == "\r\n")
        harness.server("535 5.7.8 Username and Password not accepted\r\n")
        #expect(harness.failure?.phase == .auth)
        #expect(harness.failure?.description.contains("401") == true)
        #expect(harness.failure?.description.contains("ya29") == false)
    }

    @Test func endlessChallengesCancelled() {
        var harness = authenticated(alice, mechanism: "LOGIN")
        for _ in 0..<20 where !harness.written.contains("*\r\n") {
            harness.server("334 VXNlcm5hbWU6\r\n")
        }
        #expect(harness.written.last == "*\r\n")
        #expect(harness.written.filter { $0 == "*\r\n" }.count == 1)
        harness.server("501 5.7.0 cancelled\r\n")
        #expect(harness.failure?.phase == .auth)
        #expect(!harness.isReady)
    }

    @Test func challengeAfterCancelEndsSession() {
        var harness = authenticated(alice, mechanism: "LOGIN")
        harness.server("334 not*base64!\r\n")
        #expect(harness.written.last == "*\r\n")
        let writes = harness.written.count
        harness.server("334 VXNlcm5hbWU6\r\n")
        #expect(harness.failure?.phase == .auth)
        #expect(harness.written.count == writes || harness.written.last == "QUIT\r\n")
        #expect(!harness.written.contains("YWxpY2U=\r\n"))
    }

    @Test func invalidChallengeCancelled() {
        var harness = authenticated(alice, mechanism: "LOGIN")
        harness.server("334 not*base64!\r\n")
        #expect(harness.written.last == "*\r\n")
    }

    @Test func noCommonMechanismFailsBeforeAuth() {
        let harness = authenticated(alice, offered: "GSSAPI NTLM")
        #expect(harness.failure?.phase == .auth)
        #expect(!harness.written.contains { $0.hasPrefix("AUTH") })
        #expect(harness.failure?.description.contains("GSSAPI") == true)
    }

    @Test func authAfterStartTLSUsesNewCapabilities() {
        let authentication = AuthenticationConfiguration(credentials: alice)
        var harness = SecureHarness(configuration(startTLS: .required, authentication: authentication))
        harness.server("220 mx.example.test ESMTP\r\n")
        harness.server("250-mx.example.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")
        #expect(harness.written.last == "STARTTLS\r\n")
        harness.server("220 go ahead\r\n")
        harness.record(harness.session.tlsEstablished())
        harness.server("250-mx.example.test\r\n250 AUTH LOGIN\r\n")
        #expect(harness.written.last == "AUTH LOGIN\r\n")
    }

    @Test func echoedCredentialsRedacted() {
        var harness = authenticated(alice, offered: "PLAIN")
        let sent = "AGFsaWNlAGh1bnRlcjI="
        #expect(harness.written.last == "AUTH PLAIN \(sent)\r\n")
        harness.server("501 5.5.2 cannot decode: AUTH PLAIN \(sent)\r\n")
        #expect(harness.failure?.description.contains(sent) == false)
        #expect(harness.failure?.description.contains("<redacted>") == true)
        #expect(harness.session.sentSecrets == [sent])
    }

    @Test func nonStandardSuccessIsProtocolViolation() {
        var harness = authenticated(alice, offered: "PLAIN")
        harness.server("250 2.0.0 Ok\r\n")
        guard case .protocolViolation? = harness.failure?.kind else {
            Issue.record("expected a protocol violation, got \(String(describing: harness.failure))")
            return
        }
        #expect(!harness.isReady)
    }

    @Test("line breaks in credentials stop AUTH", arguments: ["ali\r\nce", "alice\u{0}"])
    func lineBreakInUserName(username: String) {
        var harness = authenticated(.password(username: username, password: Secret("pw")), offered: "PLAIN LOGIN")
        #expect(harness.failure?.phase == .auth)
        #expect(!harness.written.contains { $0.hasPrefix("AUTH") })
        harness.server("")
    }
}
