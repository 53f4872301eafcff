import Foundation
import OutboxTestSupport
import SMTPCore
import Testing
@testable import SMTPClient

private let credentials = SASLCredentials.password(username: "alice", password: Secret("hunter2"))

private func configuration(_ server: ScriptedServer, tlsMode: TLSMode) -> SMTPClientConfiguration {
    SMTPClientConfiguration(
        host: "127.0.0.1", port: server.port, clientName: "client.example.test", timeouts: .init(all: .seconds(5)),
        tlsMode: tlsMode, authentication: AuthenticationConfiguration(credentials: credentials))
}

/// Asserts that nothing after STARTTLS carried credentials, an envelope or a TLS handshake.
private func expectNothingSent(after server: ScriptedServer) throws {
    #expect(server.waitUntilFinished())
    let record = try #require(server.connections.first)
    #expect(!record.lines.contains { $0.hasPrefix("AUTH") }, "AUTH was sent: \(record.lines)")
    #expect(!record.lines.contains { $0.hasPrefix("MAIL") }, "MAIL was sent: \(record.lines)")
    #expect(!record.receivedText.contains("aHVudGVyMg"), "the password was sent")
    #expect(!record.receivedBytes.contains(0x16), "a TLS handshake record was sent")
}

/// A man in the middle who strips or rejects STARTTLS must not get credentials or mail.
@Suite(.timeLimit(.minutes(1)))
struct StartTLSAttackTests {
    @Test func strippedOfferStopsSession() async throws {
        let server = try ScriptedServer(script: [
            .send("220 mx.example.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250-mx.example.test\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n"),
            .expectLine(matching: .anyLine),
            .close,
        ])
        defer { server.stop() }
        do {
            _ = try await SMTPConnection.open(configuration(server, tlsMode: .requiredStartTLS))
            Issue.record("the session went on without TLS")
        } catch {
            #expect(error.phase == .startTLS)
            guard case .tlsUnavailable = error.kind else {
                Issue.record("expected tlsUnavailable, got \(error)")
                return
            }
        }
        try expectNothingSent(after: server)
    }

    @Test("refused STARTTLS stops session", arguments: [
        "454 4.7.0 TLS not available due to local problem", "502 5.5.2 Error: command not recognized",
        "354 go ahead", "250 OK",
    ])
    func refusedStartTLSStopsSession(reply: String) async throws {
        let server = try ScriptedServer(script: [
            .send("220 mx.example.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250-mx.example.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"),
            .expectLine("STARTTLS"),
            .send(reply + "\r\n"),
            .expectLine(matching: .anyLine),
            .close,
        ])
        defer { server.stop() }
        do {
            _ = try await SMTPConnection.open(configuration(server, tlsMode: .requiredStartTLS))
            Issue.record("the session went on without TLS")
        } catch {
            #expect(error.phase == .startTLS)
        }
        try expectNothingSent(after: server)
    }

    @Test("bytes injected after 220 rejected", arguments: [
        "220 2.0.0 Ready\r\n250-mx.example.test\r\n250 AUTH PLAIN\r\n",
        "220 2.0.0 Ready\r\n334 \r\n",
    ])
    func injectedBytesRejected(packet: String) async throws {
        let server = try ScriptedServer(script: [
            .send("220 mx.example.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250-mx.example.test\r\n250 STARTTLS\r\n"),
            .expectLine("STARTTLS"),
            .send(packet),
            .stall(.milliseconds(300)),
            .close,
        ])
        defer { server.stop() }
        do {
            _ = try await SMTPConnection.open(configuration(server, tlsMode: .requiredStartTLS))
            Issue.record("the session accepted injected bytes")
        } catch {
            #expect(error.phase == .startTLS)
            #expect(error.description.contains("injected"))
        }
        try expectNothingSent(after: server)
    }

    @Test func endlessChallengesCancelled() async throws {
        let server = try ScriptedServer(script: [
            .send("220 mx.example.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250-mx.example.test\r\n250 AUTH LOGIN\r\n"),
            .expectLine("AUTH LOGIN"),
        ] + (0..<30).flatMap { _ in [ScriptedServer.Step.send("334 VXNlcm5hbWU6\r\n"), .expectLine(matching: .anyLine)] })
        defer { server.stop() }
        do {
            _ = try await SMTPConnection.open(configuration(server, tlsMode: .off))
            Issue.record("the session accepted endless challenges")
        } catch {
            #expect(error.phase == .auth)
        }
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        #expect(lines.contains("*"))
        #expect(lines.count < 15, "the client answered \(lines.count) lines")
    }
}
