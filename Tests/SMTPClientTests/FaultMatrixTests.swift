import Foundation
import Glibc
import Synchronization
import OutboxTestSupport
@testable import SMTPCore
import Testing
@testable import SMTPClient

private let envelope = Envelope(sender: "a@example.test", recipients: ["b@example.test"])

private func message(for phase: FaultPhase) throws -> OutgoingMessage {
    let text = "From: a@example.test\r\nTo: b@example.test\r\nSubject: fault matrix\r\n\r\n" + phase.messageBody
    return try OutgoingMessage(bytes: Array(text.utf8))
}

/// The open descriptor count before the first cell of the matrix ran.
private let descriptorsBeforeMatrix = Mutex<Int?>(nil)

/// Checks the kind, reply code and temporariness of the error of a failing cell.
private func expectError(_ error: SMTPError, phase: FaultPhase, fault: Fault) {
    #expect(phase.expectedErrorPhases.contains(error.phase), "error phase is \(error.phase): \(error)")
    #expect(error.isTemporary == (fault != .permanentFailure), "isTemporary is \(error.isTemporary): \(error)")

    let rejectsOnlyRecipient = phase == .rcpt && (fault == .transientFailure || fault == .permanentFailure)
    switch fault {
    case .serviceNotAvailable where phase == .dataTransfer:
        // The server closes while the client still writes, so the client may never read the 421.
        #expect(error.kind == .serviceNotAvailable || error.kind == .connectionClosed, "\(error)")
    case .serviceNotAvailable:
        #expect(error.kind == .serviceNotAvailable, "\(error)")
        #expect(error.reply?.code == 421)
    case .transientFailure, .permanentFailure:
        #expect(error.kind == (rejectsOnlyRecipient ? .allRecipientsRejected : .rejected), "\(error)")
        #expect(error.reply?.code == (fault == .transientFailure ? 451 : 554))
    case .closed:
        #expect(error.kind == .connectionClosed, "\(error)")
    case .stall:
        guard case .timedOut = error.kind else {
            Issue.record("expected a timeout, got \(error)")
            return
        }
    case .garbage, .overlongLine, .codeMismatch:
        guard case .protocolViolation = error.kind else {
            Issue.record("expected a protocol violation, got \(error)")
            return
        }
    case .byteAtATime:
        Issue.record("a reply sent byte by byte failed the session: \(error)")
    }
}

/// Crosses every phase of a session with every server fault, and checks the error, the time taken and
/// that the client's socket is closed afterwards.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FaultMatrixTests {
    @Test("fault in phase", arguments: FaultPhase.allCases, Fault.allCases)
    func faultInPhase(phase: FaultPhase, fault: Fault) async throws {
        descriptorsBeforeMatrix.withLock { $0 = $0 ?? OpenDescriptors.count }
        let outgoing = try message(for: phase)
        let server = try ScriptedServer(script: FaultMatrix.script(phase: phase, fault: fault))
        defer { server.stop() }

        let start = ContinuousClock.now
        do {
            let connection = try await SMTPConnection.open(FaultMatrix.configuration(port: server.port))
            do {
                let result = try await connection.send(outgoing, envelope: envelope)
                #expect(result.reply.code == 250)
                await connection.quit()
                #expect(!connection.isOpen)
                #expect(fault.isHarmless || phase == .quit, "the session succeeded despite the fault")
            } catch {
                await connection.close()
                expectError(error, phase: phase, fault: fault)
            }
        } catch {
            expectError(error, phase: phase, fault: fault)
        }
        let elapsed = ContinuousClock.now - start
        #expect(
            elapsed < FaultMatrix.maxCellDuration,
            "the cell took \(elapsed) with a step timeout of \(FaultMatrix.stepTimeout)")

        if fault.isHarmless {
            #expect(server.waitUntilFinished())
            #expect(server.failures.isEmpty, "\(server.failures)")
        }
        server.stop()
        let leaked = openClientSockets(connectedTo: server.port)
        #expect(leaked.isEmpty, "client sockets still open: \(leaked)")
        let before = try #require(descriptorsBeforeMatrix.withLock { $0 })
        let after = OpenDescriptors.count
        #expect(after - before < FaultMatrix.descriptorSlack, "open descriptors went from \(before) to \(after)")
    }

    /// A reply that arrives in the same read as the 354 waits until the content is sent, and then fails
    /// the message as its end-of-data reply.
    @Test func earlyReplyWith354EndsCleanly() throws {
        var session = ClientSession(configuration: .init(clientName: "client.example.test"))
        _ = session.receive(Array("220 scripted.test\r\n".utf8))
        _ = session.receive(Array("250 scripted.test\r\n".utf8))
        let content = try DataEncoder.scan([Array("Subject: x\r\n\r\nbody\r\n".utf8)])
        let transaction = Transaction(
            sender: "a@example.test", recipients: [Recipient("b@example.test")], content: content)
        _ = session.send(transaction)
        _ = session.receive(Array("250 2.1.0 OK\r\n".utf8))
        _ = session.receive(Array("250 2.1.5 OK\r\n".utf8))

        let actions = session.receive(Array("354 Go ahead\r\n451 4.3.0 Local error\r\n".utf8))
        #expect(actions == [.sendMessageContent])
        #expect(session.awaitedPhase == .dataTransfer)
        let after = session.messageContentSent()
        guard case .transactionCompleted(.failure(let error))? = after.first else {
            Issue.record("expected the early reply to fail the message, got \(after)")
            return
        }
        #expect(error.phase == .endOfData)
        #expect(error.reply?.code == 451)
        #expect(error.isTemporary)
    }

    /// Each byte comes well within the step timeout, so only the session deadline ends the session.
    @Test func drippingServerStoppedBySessionDeadline() async throws {
        let drip = "220 " + String(repeating: "x", count: 1_000) + "\r\n"
        let server = try ScriptedServer(script: [.sendSlowly(drip, byteDelay: .milliseconds(400))])
        defer { server.stop() }
        var config = FaultMatrix.configuration(port: server.port)
        config.timeouts = .init(all: .seconds(30))
        config.sessionDeadline = .milliseconds(1_500)

        let start = ContinuousClock.now
        do {
            _ = try await SMTPConnection.open(config)
            Issue.record("expected the session deadline to end the session")
        } catch {
            #expect(error.phase == .greeting)
            #expect(error.isTemporary)
            if case .timedOut = error.kind {} else {
                Issue.record("expected a timeout, got \(error)")
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(1_400), "ended after \(elapsed), before the deadline")
        #expect(elapsed < .milliseconds(2_500), "ended after \(elapsed), the deadline is 1.5 s")

        server.stop()
        let leaked = openClientSockets(connectedTo: server.port)
        #expect(leaked.isEmpty, "client sockets still open: \(leaked)")
    }

    /// The server takes 40 KiB/s, so the client's writes never wait a whole second without progress, but
    /// no 64 KiB block of the content goes out within the data-block timeout of 1 s. The message is 4 MiB,
    /// which would take 100 s at that rate.
    @Test func slowReaderStoppedByDataBlockTimeout() async throws {
        let outgoing = try message(bodySize: 4 * 1024 * 1024)
        let server = try ScriptedServer(script: slowReadingScript(bytes: 4 * 1024, every: .milliseconds(100)))
        defer { server.stop() }
        var config = FaultMatrix.configuration(port: server.port)
        config.timeouts = .init(all: .seconds(10))
        config.timeouts.dataBlock = .seconds(1)

        let start = ContinuousClock.now
        let connection = try await SMTPConnection.open(config)
        try limitClientSendBuffer(port: server.port)
        do {
            _ = try await connection.send(outgoing, envelope: envelope)
            Issue.record("expected the data-block timeout to end the session")
        } catch {
            #expect(error.phase == .dataTransfer)
            #expect(error.isTemporary)
            if case .timedOut(let detail) = error.kind {
                #expect(detail.contains("data-block timeout of 1.0 seconds"), "\(detail)")
                #expect(detail.contains("block of 65536 octets"), "\(detail)")
            } else {
                Issue.record("expected a timeout, got \(error)")
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .seconds(1), "ended after \(elapsed), before the data-block timeout")
        #expect(elapsed < .seconds(5), "ended after \(elapsed), the data-block timeout is 1 s")
        #expect(!connection.isOpen)

        #expect(server.waitUntilFinished())
        #expect(server.failures.isEmpty, "\(server.failures)")
        let received = try #require(server.connections.first).receivedBytes.count
        #expect(received < outgoing.statistics.size, "the server received all \(received) octets")
        server.stop()
        let leaked = openClientSockets(connectedTo: server.port)
        #expect(leaked.isEmpty, "client sockets still open: \(leaked)")
        await connection.close()
    }

    /// A server that takes five 64 KiB blocks per data-block timeout receives the whole message.
    @Test func steadyReaderGetsWholeMessage() async throws {
        let outgoing = try message(bodySize: 1024 * 1024)
        let server = try ScriptedServer(script: slowReadingScript(bytes: 32 * 1024, every: .milliseconds(100)))
        defer { server.stop() }
        var config = FaultMatrix.configuration(port: server.port)
        config.timeouts = .init(all: .seconds(10))
        config.timeouts.dataBlock = .seconds(1)

        let connection = try await SMTPConnection.open(config)
        try limitClientSendBuffer(port: server.port)
        let result = try await connection.send(outgoing, envelope: envelope)
        await connection.quit()

        #expect(result.reply.code == 250)
        #expect(server.waitUntilFinished())
        #expect(server.failures.isEmpty, "\(server.failures)")
        let messages = try #require(server.connections.first).messages
        #expect(messages.count == 1)
        #expect(messages.first?.count == outgoing.statistics.size)
    }
}

/// Gives the client's socket to 127.0.0.1:`port` a fixed send buffer of 32 KiB, as a client whose kernel
/// buffers little of the content.
///
/// Linux grows a send buffer with the MSS and the congestion window, to megabytes on loopback, and wakes a
/// blocked writer only when a third of the buffer is free. On loopback, the client would then wait for
/// hundreds of KiB to drain between writes, and a slow reader would stop it after one data-block timeout
/// with or without a bound on each block. With 32 KiB, each write waited for about 12 KiB to drain in a
/// measurement on Linux 6.18.
private func limitClientSendBuffer(port: UInt16) throws {
    let inode = try #require(openClientSockets(connectedTo: port).first)
    let descriptor = try #require(OpenDescriptors.descriptors(ofSocket: inode).first)
    // Linux doubles the value.
    var size: Int32 = 16 * 1024
    let status = setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    #expect(status == 0, "setsockopt(SO_SNDBUF) failed with errno \(errno)")
}

/// Returns a message whose body is `bodySize` octets of 80-octet lines.
private func message(bodySize: Int) throws -> OutgoingMessage {
    let line = String(repeating: "x", count: 78) + "\r\n"
    let body = String(repeating: line, count: bodySize / line.utf8.count)
    let text = "From: a@example.test\r\nTo: b@example.test\r\nSubject: slow reader\r\n\r\n" + body
    return try OutgoingMessage(bytes: Array(text.utf8))
}

/// Returns the script of a server without PIPELINING that reads the message data at most `bytes` at a time
/// in each `interval`, and otherwise plays a correct session.
private func slowReadingScript(bytes: Int, every interval: Duration) -> [ScriptedServer.Step] {
    [
        .send("220 scripted.test\r\n"),
        .expectLine(prefix: "EHLO"), .send("250 scripted.test\r\n"),
        .expectLine(prefix: "MAIL FROM:"), .send("250 2.1.0 OK\r\n"),
        .expectLine(prefix: "RCPT TO:"), .send("250 2.1.5 OK\r\n"),
        .expectLine("DATA"), .send("354 Go ahead\r\n"),
        .readSlowly(bytes: bytes, every: interval), .send("250 2.0.0 Queued\r\n"),
        .expectLine("QUIT"), .send("221 2.0.0 Bye\r\n"), .close,
    ]
}
