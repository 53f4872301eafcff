import Synchronization
import Foundation
import OutboxTestSupport
import SMTPCore
import Testing
@testable import SMTPClient

private func configuration(_ server: ScriptedServer, timeout: Duration = .seconds(5)) -> SMTPClientConfiguration {
    SMTPClientConfiguration(
        host: "127.0.0.1", port: server.port, clientName: "client.example.test", timeouts: .init(all: timeout))
}

private let message = "From: a@example.test\r\nTo: b@example.test\r\nSubject: test\r\n\r\n.dot\r\nbody\r\n"

private func outgoing(_ text: String = message) throws -> OutgoingMessage {
    try OutgoingMessage(bytes: Array(text.utf8))
}

private let envelope = Envelope(sender: "a@example.test", recipients: ["b@example.test"])

@Suite(.timeLimit(.minutes(1)))
struct SMTPConnectionTests {
    @Test func sendsMessageToScriptedServer() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        let result = try await connection.send(try outgoing(), envelope: envelope)
        await connection.quit()
        #expect(result.reply.code == 250)
        #expect(server.waitUntilFinished())
        let record = try #require(server.connections.first)
        #expect(record.lines.first == "EHLO client.example.test")
        #expect(record.lines.contains("MAIL FROM:<a@example.test> SIZE=\(try outgoing().statistics.size)"))
        #expect(record.lines.last == "QUIT")
        #expect(record.messages.count == 1)
        #expect(String(decoding: record.messages[0], as: UTF8.self).contains("\r\n..dot\r\n"))
    }

    @Test func batchReusesConnectionAndPipelines() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        let batch = try (0..<5).map { index in
            (try outgoing("Subject: \(index)\r\n\r\nbody \(index)\r\n"), envelope)
        }
        let results = await connection.send(batch)
        await connection.quit()
        #expect(results.count == 5)
        #expect(results.allSatisfy { if case .success = $0 { true } else { false } })
        #expect(server.waitUntilFinished())
        let record = try #require(server.connections.first)
        #expect(server.connections.count == 1)
        #expect(record.messages.count == 5)
        #expect(record.lines.filter { $0.hasPrefix("MAIL FROM:") }.count == 5)
        #expect(!record.lines.contains("RSET"))
    }

    /// Returns a message of exactly `size` octets whose first three body lines start with a dot, so
    /// that its encoded form is `size` + 6 octets: three stuffed dots and the final ".".
    private static func messageOfSize(_ size: Int) -> [UInt8] {
        var bytes = Array("Subject: size\r\n\r\n.one\r\n.two\r\n.three\r\n".utf8)
        let line = Array(String(repeating: "x", count: 70).utf8) + [13, 10]
        while size - bytes.count >= 2 * line.count {
            bytes += line
        }
        bytes += [UInt8](repeating: 0x79, count: size - bytes.count - 2) + [13, 10]
        return bytes
    }

    /// Messages whose encoded form is just under, at and just over one chunk. Up to one chunk, the
    /// content encoded by the scan is sent as it is. Beyond, the content is read and encoded again.
    @Test(arguments: [1000, OutgoingMessage.chunkSize - 7, OutgoingMessage.chunkSize - 6,
                      OutgoingMessage.chunkSize - 5, OutgoingMessage.chunkSize + 10, 3 * OutgoingMessage.chunkSize])
    func contentAroundOneChunkArrivesWhole(size: Int) async throws {
        let bytes = Self.messageOfSize(size)
        #expect(bytes.count == size)
        var encoder = DataEncoder()
        var expected: [UInt8] = []
        try encoder.encode(bytes, into: &expected)
        encoder.finish(into: &expected)
        #expect(expected.count == size + 6)
        let message = try OutgoingMessage(bytes: bytes)
        #expect((message.encoded != nil) == (expected.count <= OutgoingMessage.chunkSize))

        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        let results = await connection.send([(message, envelope), (try outgoing(), envelope)])
        await connection.quit()
        #expect(results.allSatisfy { if case .success = $0 { true } else { false } })
        #expect(server.waitUntilFinished())
        let record = try #require(server.connections.first)
        // The server records each message up to the CR LF before the final ".".
        #expect(record.messages.first == Array(expected.dropLast(3)))
        #expect(record.messages.count == 2)
    }

    @Test func rejectedMessageThenRsetBeforeNext() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.defaultRecipientReply = "550 5.1.1 No such user"
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        let results = await connection.send([(try outgoing(), envelope), (try outgoing(), envelope)])
        await connection.quit()
        for result in results {
            guard case .failure(let error) = result else {
                Issue.record("expected a rejection")
                continue
            }
            #expect(error.kind == .allRecipientsRejected)
            #expect(error.recipientResults.first?.reply.enhancedCode?.description == "5.1.1")
        }
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        #expect(lines.contains("RSET"))
    }

    @Test func partialRejectionDeliversToOthers() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.recipientReplies = ["bad@example.test": "550 5.1.1 No such user"]
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        let twoRecipients = Envelope(sender: "a@example.test", recipients: ["bad@example.test", "b@example.test"])
        let result = try await connection.send(try outgoing(), envelope: twoRecipients)
        await connection.quit()
        #expect(result.accepted.map(\.address) == ["b@example.test"])
        #expect(result.rejected.map(\.address) == ["bad@example.test"])
        #expect(result.rejected.first?.reply.code == 550)
    }

    @Test func greetingByteAtATime() async throws {
        let server = try ScriptedServer(script: [
            .sendSlowly("220-scripted.test\r\n220 ready\r\n", byteDelay: .milliseconds(2)),
            .expectLine(prefix: "EHLO"),
            .sendSlowly("250-scripted.test\r\n250 PIPELINING\r\n", byteDelay: .milliseconds(2)),
            .expectLine("QUIT"),
            .send("221 bye\r\n"),
        ])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        #expect(connection.capabilities.supportsPipelining)
        await connection.quit()
        #expect(server.waitUntilFinished())
        #expect(server.failures.isEmpty)
    }

    @Test func stalledGreetingTimesOut() async throws {
        let server = try ScriptedServer(script: [.stall(.seconds(3))])
        defer { server.stop() }
        let start = ContinuousClock.now
        do {
            _ = try await SMTPConnection.open(configuration(server, timeout: .milliseconds(300)))
            Issue.record("expected a timeout")
        } catch {
            #expect(error.phase == .greeting)
            #expect(error.isTemporary)
            guard case .timedOut = error.kind else {
                Issue.record("expected a timeout, got \(error)")
                return
            }
        }
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test func drippingServerStoppedByDeadline() async throws {
        let server = try ScriptedServer(script: [
            .sendSlowly("220 " + String(repeating: "x", count: 100) + "\r\n", byteDelay: .milliseconds(50)),
        ])
        defer { server.stop() }
        var config = configuration(server, timeout: .seconds(1))
        config.sessionDeadline = .milliseconds(500)
        let start = ContinuousClock.now
        do {
            _ = try await SMTPConnection.open(config)
            Issue.record("expected the deadline to end the session")
        } catch {
            #expect(error.phase == .greeting)
            guard case .timedOut = error.kind else {
                Issue.record("expected a timeout, got \(error)")
                return
            }
        }
        #expect(ContinuousClock.now - start < .seconds(3), "the drip would last 5 s")
    }

    @Test func drippedReplyBoundedByTimeout() async throws {
        let server = try ScriptedServer(script: [
            .send("220 scripted.test\r\n"),
            .expectLine(prefix: "EHLO"),
            .sendSlowly("250-scripted.test\r\n" + String(repeating: "250-X\r\n", count: 40) + "250 OK\r\n",
                        byteDelay: .milliseconds(20)),
        ], readTimeout: .seconds(30))
        defer { server.stop() }
        let start = ContinuousClock.now
        do {
            _ = try await SMTPConnection.open(configuration(server, timeout: .milliseconds(500)))
            Issue.record("expected the reply timeout to end the session")
        } catch {
            #expect(error.phase == .ehlo)
            guard case .timedOut = error.kind else {
                Issue.record("expected a timeout, got \(error)")
                return
            }
        }
        // The drip would take about 5 s; each byte arrives well within the 500 ms timeout.
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test func cancellationEndsBlockedRead() async throws {
        let server = try ScriptedServer(script: [.stall(.seconds(20))], readTimeout: .seconds(30))
        defer { server.stop() }
        let config = configuration(server, timeout: .seconds(30))
        let task = Task { () async -> Result<SMTPConnection, SMTPError> in
            do throws(SMTPError) {
                return .success(try await SMTPConnection.open(config))
            } catch {
                return .failure(error)
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        let start = ContinuousClock.now
        task.cancel()
        let result = await task.value
        // Far below the 20 s stall, with room for a loaded machine to schedule the task.
        #expect(ContinuousClock.now - start < .seconds(5))
        guard case .failure(let error) = result else {
            Issue.record("expected cancellation")
            return
        }
        #expect(error.kind == .cancelled)
    }

    @Test func closeAfterDataIsTemporary() async throws {
        let server = try ScriptedServer(script: ScriptedServer.Step.throughFirstPipelinedMessage + [.close])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        let sample = try outgoing()
        do {
            _ = try await connection.send(sample, envelope: envelope)
            Issue.record("expected a failure")
        } catch {
            #expect(error.phase == .endOfData)
            #expect(error.kind == .connectionClosed)
            #expect(error.isTemporary)
        }
        #expect(!connection.isOpen)
    }

    @Test func closeAfterDataFailsLaterInMail() async throws {
        // The first message is accepted, and the connection closes after the second one's data.
        let server = try ScriptedServer(script: ScriptedServer.Step.throughFirstPipelinedMessage + [
            .send("250 queued\r\n"),
            .expectLine(prefix: "MAIL"),
            .expectLine(prefix: "RCPT"),
            .expectLine("DATA"),
            .send("250 ok\r\n250 ok\r\n354 go\r\n"),
            .readData,
            .close,
        ])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        let results = await connection.send(try (0..<4).map { _ in (try outgoing(), envelope) })
        #expect(results.count == 4)
        guard case .success = results[0] else {
            Issue.record("the first message failed: \(results[0])")
            return
        }
        // The second message's content went out before the connection closed, so its outcome is unknown.
        let phases = results.dropFirst().map { result -> SMTPPhase? in
            if case .failure(let error) = result { error.phase } else { nil }
        }
        #expect(phases == [.endOfData, .mail, .mail])
        for result in results.dropFirst() {
            if case .failure(let error) = result {
                #expect(error.kind == .connectionClosed)
            }
        }
    }

    @Test func idle421DetectedBeforeMail() async throws {
        let server = try ScriptedServer(script: [
            .send("220 scripted.test\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250 scripted.test\r\n"),
            .stall(.milliseconds(200)),
            .send("421 4.4.2 idle timeout\r\n"),
            .close,
        ])
        defer { server.stop() }
        let connection = try await SMTPConnection.open(configuration(server))
        try await Task.sleep(for: .milliseconds(500))
        let sample = try outgoing()
        do {
            _ = try await connection.send(sample, envelope: envelope)
            Issue.record("expected a failure")
        } catch {
            #expect(error.isTemporary)
        }
        #expect(server.waitUntilFinished())
        #expect(!(server.connections.first?.lines.contains { $0.hasPrefix("MAIL") } ?? true))
    }

    @Test func refusedConnectionNamesAddress() async throws {
        let port = try ScriptedServer(script: []).port  // free, then closed when the server is released
        let config = SMTPClientConfiguration(host: "127.0.0.1", port: port, timeouts: .init(all: .seconds(2)))
        do {
            _ = try await SMTPConnection.open(config)
            Issue.record("expected a connection failure")
        } catch {
            #expect(error.phase == .connect)
            #expect(error.isTemporary)
            #expect(error.description.contains("127.0.0.1"))
        }
    }

    @Test func transcriptHasBothDirections() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let lines = LockedLines()
        let connection = try await SMTPConnection.open(configuration(server)) { lines.append($0.description) }
        _ = try await connection.send(try outgoing(), envelope: envelope)
        await connection.quit()
        let transcript = lines.all
        #expect(transcript.contains("C: EHLO client.example.test"))
        #expect(transcript.contains("S: 250 2.0.0 Message accepted"))
        #expect(transcript.contains("C: QUIT"))
        #expect(!transcript.contains { $0.contains("body") })
    }

    @Test func defaultClientNameIsLiteralOrQualified() {
        #expect(SessionDriver.addressLiteral("127.0.0.1:2525") == "[127.0.0.1]")
        #expect(SessionDriver.addressLiteral("[::1]:2525") == "[IPv6:::1]")
        let name = SessionDriver.defaultClientName(localAddress: "127.0.0.1:2525")
        #expect(name == "[127.0.0.1]" || name.contains("."))
    }
}

/// Collects transcript lines from the connection's thread.
final class LockedLines: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) {
        lines.withLock { $0.append(line) }
    }

    var all: [String] { lines.withLock { $0 } }
}
