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
}
