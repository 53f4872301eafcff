import Foundation
import Outbox
import OutboxTestSupport
import Synchronization
import Testing

@Suite struct SMTPPoolTests {
    @Test func idleCloseIsReplaced() async throws {
        let server = try ScriptedServer(scripts: [oneMessageThenClose(), [.playESMTP(.init())]])
        let transport = SMTPTransport(account: loopbackAccount(port: server.port, connections: 1))
        let mailer = Mailer(transport: transport)

        _ = try await mailer.send(makeMessage(subject: "first"))
        #expect(server.waitUntilFinished(connectionCount: 1))
        let result = try await mailer.send(makeMessage(subject: "second"))
        await mailer.shutdown()

        #expect(result.accepted.count == 1)
        #expect(server.connections.count == 2)
        #expect(server.connections.last?.messages.count == 1)
        #expect(server.failures.isEmpty)
    }

    @Test func idle421IsReplaced() async throws {
        let farewell = "421 4.4.2 scripted.test idle timeout, closing\r\n"
        let server = try ScriptedServer(scripts: [oneMessageThenClose(farewell: farewell), [.playESMTP(.init())]])
        let mailer = Mailer(transport: SMTPTransport(account: loopbackAccount(port: server.port, connections: 1)))

        _ = try await mailer.send(makeMessage(subject: "first"))
        #expect(server.waitUntilFinished(connectionCount: 1))
        let result = try await mailer.send(makeMessage(subject: "second"))
        await mailer.shutdown()

        #expect(result.accepted.count == 1)
        #expect(server.connections.count == 2)
        // Nothing of the second message went over the first connection.
        #expect(server.connections.first?.lines.filter { $0.hasPrefix("MAIL") }.count == 1)
    }

    @Test func connectionIsReused() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        let transport = SMTPTransport(account: loopbackAccount(port: server.port, connections: 2))
        let mailer = Mailer(transport: transport)

        for index in 0..<3 {
            _ = try await mailer.send(makeMessage(subject: "message \(index)"))
        }
        let open = await transport.openConnections
        await mailer.shutdown()

        #expect(open == 1)
        #expect(server.connections.count == 1)
        #expect(server.connections.first?.messages.count == 3)
    }

    @Test func failureAfterDataIsNotRetried() async throws {
        // The server takes the message data and closes before its reply: the message may have been
        // delivered, so the send fails instead of going out again on a new connection.
        let script: [ScriptedServer.Step] = [
            .send("220 scripted.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250 scripted.test\r\n"),
            .expectLine(prefix: "MAIL FROM:"),
            .send("250 OK\r\n"),
            .expectLine(prefix: "RCPT TO:"),
            .send("250 OK\r\n"),
            .expectLine("DATA"),
            .send("354 go ahead\r\n"),
            .readData,
            .close,
        ]
        let server = try ScriptedServer(scripts: [script, [.playESMTP(.init())]])
        let mailer = Mailer(account: loopbackAccount(port: server.port))

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }
        await mailer.shutdown()

        #expect(error.phase == .endOfData)
        #expect(error.isOutcomeUnknown)
        #expect(error.isRetryable)
        #expect(server.connections.count == 1)
    }

    @Test func cancellationStopsSend() async throws {
        let script: [ScriptedServer.Step] = [
            .send("220 scripted.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250 scripted.test\r\n"),
            .expectLine(prefix: "MAIL FROM:"),
            .send("250 OK\r\n"),
            .expectLine(prefix: "RCPT TO:"),
            .send("250 OK\r\n"),
            .expectLine("DATA"),
            .send("354 go ahead\r\n"),
            .readData,
            .stall(.seconds(8)),
        ]
        let server = try ScriptedServer(script: script)
        let mailer = Mailer(account: loopbackAccount(port: server.port))
        let message = try makeMessage()

        let started = ContinuousClock.now
        let task = Task { await sendResult(mailer, message) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let result = await task.value
        let elapsed = ContinuousClock.now - started
        await mailer.shutdown()

        guard case .failure(let error) = result else {
            Issue.record("the cancelled send returned \(result)")
            return
        }
        #expect(error.kind == .cancelled)
        #expect(error.isRetryable)
        #expect(elapsed < .seconds(4))
    }

    @Test func cancellationWhileWaitingForSlot() async throws {
        let script: [ScriptedServer.Step] = [
            .send("220 scripted.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250 scripted.test\r\n"),
            .stall(.seconds(8)),
        ]
        let server = try ScriptedServer(script: script)
        let mailer = Mailer(account: loopbackAccount(port: server.port, connections: 1))
        let message = try makeMessage()

        // The first send keeps the only connection busy, waiting for the reply to MAIL.
        let holder = Task { await sendResult(mailer, message) }
        try await Task.sleep(for: .milliseconds(200))
        let waiter = Task { await sendResult(mailer, message) }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        waiter.cancel()
        let waiterResult = await waiter.value
        let elapsed = ContinuousClock.now - started
        holder.cancel()
        _ = await holder.value
        await mailer.shutdown()

        guard case .failure(let error) = waiterResult else {
            Issue.record("the cancelled send returned \(waiterResult)")
            return
        }
        #expect(error.kind == .cancelled)
        #expect(elapsed < .seconds(2))
        #expect(server.connections.count == 1)
    }

    @Test func concurrentSendsShareBoundedPool() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        let transport = SMTPTransport(account: loopbackAccount(port: server.port, connections: 3))
        let mailer = Mailer(transport: transport)
        let taskCount = 40

        let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<taskCount {
                let message = try makeMessage(subject: "concurrent \(index)")
                group.addTask { try await mailer.send(message).accepted.count }
            }
            return try await group.reduce(0, +)
        }
        let open = await transport.openConnections
        await mailer.shutdown()
        #expect(server.waitUntilFinished(connectionCount: server.connections.count))

        #expect(accepted == taskCount)
        #expect(open <= 3)
        #expect(server.connections.count <= 3)
        #expect(server.connections.map(\.messages.count).reduce(0, +) == taskCount)
        #expect(server.failures.isEmpty)
    }
}

/// Sends and returns the outcome with the error's type, which `Task.result` would lose.
private func sendResult(_ mailer: Mailer, _ message: MessageBuilder) async -> Result<SendResult, MailError> {
    do {
        return .success(try await mailer.send(message))
    } catch {
        return .failure(error)
    }
}
