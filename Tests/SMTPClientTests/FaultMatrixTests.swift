import Foundation
import Glibc
import Synchronization
import OutboxTestSupport
@testable import SMTPCore
import Testing
@testable import SMTPClient

/// A point of the session where the scripted server misbehaves.
enum FaultPhase: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case greeting
    case ehlo = "EHLO"
    case mail = "MAIL"
    case rcpt = "RCPT"
    case data = "DATA"
    /// After the 354 reply, before the server has read any of the message content.
    case dataTransfer = "data transfer"
    case endOfData = "end of data"
    case quit = "QUIT"

    var testDescription: String { rawValue }

    /// The phases an `SMTPError` may name for a fault here. A fault during the data transfer reaches a
    /// client that is still writing as a failed write, and a client that has written everything as the
    /// reply to the final dot.
    var expectedErrorPhases: Set<SMTPPhase> {
        switch self {
        case .greeting: [.greeting]
        case .ehlo: [.ehlo]
        case .mail: [.mail]
        case .rcpt: [.rcpt]
        case .data: [.data]
        case .dataTransfer: [.dataTransfer, .endOfData]
        case .endOfData: [.endOfData]
        case .quit: [.quit]
        }
    }
}

/// What the scripted server does in place of its correct reply.
enum Fault: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case serviceNotAvailable = "421 and close"
    case transientFailure = "451"
    case permanentFailure = "554"
    case closed = "close without reply"
    case stall = "stall past timeout"
    case garbage = "garbage line"
    case overlongLine = "5,000-octet line"
    case byteAtATime = "correct reply byte by byte"
    case codeMismatch = "continuation with other code"

    var testDescription: String { rawValue }

    /// Whether the session must still deliver the message.
    var isHarmless: Bool { self == .byteAtATime }

    /// Returns the steps that replace `reply`, the reply a correct server sends at this point.
    func steps(replacing reply: String) -> [ScriptedServer.Step] {
        let code = Int(reply.prefix(3))!
        switch self {
        case .serviceNotAvailable:
            return [.send("421 4.3.2 Service shutting down\r\n"), .close]
        case .transientFailure:
            return [.send("451 4.3.0 Local error, try again later\r\n")]
        case .permanentFailure:
            return [.send("554 5.3.0 Transaction failed\r\n")]
        case .closed:
            return [.close]
        case .stall:
            // `stop()` ends the stall as soon as the test is done with the server.
            return [.stall(.seconds(30))]
        case .garbage:
            return [.send("HELLO\r\n")]
        case .overlongLine:
            // 5,000 octets before the CRLF, beyond the client's default limit of 4,096.
            return [.send("\(code) " + String(repeating: "x", count: 4_996) + "\r\n")]
        case .byteAtATime:
            return [.sendSlowly(reply, byteDelay: byteDelay)]
        case .codeMismatch:
            return [.send("\(code)-a\r\n\(code + 1) b\r\n")]
        }
    }
}

/// The wait for one reply, for every step of the client.
private let stepTimeout: Duration = .milliseconds(300)
/// The maximum time a cell may take from connecting to closing. It is one step timeout plus room for a
/// loaded machine.
private let maxCellDuration: Duration = .seconds(2)
/// The pause after each byte of a reply sent byte by byte. Every correct reply of the script is at most
/// 19 octets, so it arrives within about 100 ms, well inside `stepTimeout`, which bounds the whole reply.
private let byteDelay: Duration = .milliseconds(5)
/// The open descriptors that the process may gain over the matrix, for lazily created runtime state.
private let descriptorSlack = 16

/// One exchange of a correct session without PIPELINING: what the server reads, then its reply.
private struct Exchange {
    let phase: FaultPhase
    let reads: [ScriptedServer.Step]
    /// Nil for the data transfer, which has no reply of its own.
    let reply: String?
}

private let correctSession: [Exchange] = [
    Exchange(phase: .greeting, reads: [], reply: "220 scripted.test\r\n"),
    Exchange(phase: .ehlo, reads: [.expectLine(prefix: "EHLO")], reply: "250 scripted.test\r\n"),
    Exchange(phase: .mail, reads: [.expectLine(prefix: "MAIL FROM:")], reply: "250 2.1.0 OK\r\n"),
    Exchange(phase: .rcpt, reads: [.expectLine(prefix: "RCPT TO:")], reply: "250 2.1.5 OK\r\n"),
    Exchange(phase: .data, reads: [.expectLine("DATA")], reply: "354 Go ahead\r\n"),
    Exchange(phase: .dataTransfer, reads: [], reply: nil),
    Exchange(phase: .endOfData, reads: [.readData], reply: "250 2.0.0 Queued\r\n"),
    Exchange(phase: .quit, reads: [.expectLine("QUIT")], reply: "221 2.0.0 Bye\r\n"),
]

/// Builds the script of a server that plays a correct session up to `phase` and then `fault`.
///
/// The data transfer has no reply of its own. Its fault is therefore the reply to the final dot sent
/// early, while the client writes the content and before the server reads it, or a close or stall at
/// that point. After a harmless fault the session goes on to QUIT. After any other fault the script
/// ends, and the server reads until the client closes.
private func script(phase: FaultPhase, fault: Fault) -> [ScriptedServer.Step] {
    let endOfDataReply = correctSession.first { $0.phase == .endOfData }!.reply!
    var steps: [ScriptedServer.Step] = []
    var replySentEarly = false
    for exchange in correctSession {
        steps += exchange.reads
        if exchange.phase == phase {
            let reply = exchange.reply ?? endOfDataReply
            steps += fault.steps(replacing: reply)
            guard fault.isHarmless else { return steps }
            replySentEarly = exchange.reply == nil
        } else if let reply = exchange.reply, !(exchange.phase == .endOfData && replySentEarly) {
            steps.append(.send(reply))
        }
    }
    steps.append(.close)
    return steps
}

private func configuration(_ server: ScriptedServer) -> SMTPClientConfiguration {
    SMTPClientConfiguration(
        host: "127.0.0.1", port: server.port, clientName: "client.example.test", timeouts: .init(all: stepTimeout),
        sessionDeadline: nil, tlsMode: .off)
}

private let envelope = Envelope(sender: "a@example.test", recipients: ["b@example.test"])

/// Returns a short message, or for the data transfer one of 8 MiB. That is far more than the loopback
/// socket buffers take in while the server does not read, so the client is still writing at the fault.
private func message(for phase: FaultPhase) throws -> OutgoingMessage {
    var text = "From: a@example.test\r\nTo: b@example.test\r\nSubject: fault matrix\r\n\r\n"
    if phase == .dataTransfer {
        let line = String(repeating: "x", count: 78) + "\r\n"
        text += String(repeating: line, count: 8 * 1024 * 1024 / line.utf8.count)
    } else {
        text += "body\r\n"
    }
    return try OutgoingMessage(bytes: Array(text.utf8))
}

/// Returns the inodes of this process's open TCP sockets whose remote end is 127.0.0.1:`port`, read from
/// /proc/net/tcp. A closed socket is either gone from that table or listed with inode 0 (TIME_WAIT).
private func openClientSockets(connectedTo port: UInt16) -> [UInt] {
    guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return [] }
    let remote = "0100007F:" + String(format: "%04X", port)
    return table.split(separator: "\n").dropFirst().compactMap { row -> UInt? in
        let fields = row.split(separator: " ")
        guard fields.count > 9, fields[2] == remote, let inode = UInt(fields[9]), inode != 0 else { return nil }
        return OpenDescriptors.containsSocket(inode: inode) ? inode : nil
    }
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
        let server = try ScriptedServer(script: script(phase: phase, fault: fault))
        defer { server.stop() }

        let start = ContinuousClock.now
        do {
            let connection = try await SMTPConnection.open(configuration(server))
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
        #expect(elapsed < maxCellDuration, "the cell took \(elapsed) with a step timeout of \(stepTimeout)")

        if fault.isHarmless {
            #expect(server.waitUntilFinished())
            #expect(server.failures.isEmpty, "\(server.failures)")
        }
        server.stop()
        let leaked = openClientSockets(connectedTo: server.port)
        #expect(leaked.isEmpty, "client sockets still open: \(leaked)")
        let before = try #require(descriptorsBeforeMatrix.withLock { $0 })
        let after = OpenDescriptors.count
        #expect(after - before < descriptorSlack, "open descriptors went from \(before) to \(after)")
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
        var config = configuration(server)
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
}
