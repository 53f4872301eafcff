import Foundation
import Glibc
import Synchronization
import OutboxTestSupport
@testable import SMTPCore
import Testing
@testable import SMTPClient

/// A phase of the session's security steps where the scripted server misbehaves. The faults are those of
/// `FaultMatrixTests`, in place of the reply to STARTTLS or to AUTH.
enum SecurityFaultPhase: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case startTLS = "STARTTLS"
    case auth = "AUTH"

    var testDescription: String { rawValue }

    var smtpPhase: SMTPPhase {
        switch self {
        case .startTLS: .startTLS
        case .auth: .auth
        }
    }

    /// The correct reply that the fault replaces.
    var correctReply: String {
        switch self {
        case .startTLS: "220 2.0.0 Ready to start TLS\r\n"
        case .auth: "235 2.7.0 Authentication successful\r\n"
        }
    }
}

/// The wait for one reply, for every step of the client.
private let stepTimeout: Duration = .milliseconds(300)
/// The maximum time a cell may take from connecting to closing: one step timeout plus room for a loaded
/// machine.
private let maxCellDuration: Duration = .seconds(2)
/// The pause after each byte of a reply sent byte by byte. The longest correct reply here is 37 octets, so
/// it arrives in about 190 ms, within `stepTimeout`.
private let byteDelay: Duration = .milliseconds(5)
/// The open descriptors that the process may gain over the matrix, for lazily created runtime state.
private let descriptorSlack = 16

private let credentials = SASLCredentials.password(username: "alice", password: Secret("hunter2"))
/// "\0alice\0hunter2" in Base64, the initial response of AUTH PLAIN.
private let plainResponse = "AGFsaWNlAGh1bnRlcjI="

/// Returns the steps of a server that offers STARTTLS or AUTH PLAIN, reads the command and then plays
/// `fault` in place of its reply.
///
/// A reply sent byte by byte is correct, so the session goes on. After STARTTLS it goes on with a TLS
/// handshake, to which this plain server never replies: the server stalls and the client times out in the
/// handshake, which shows that it accepted the reply. After AUTH the session goes on to deliver the
/// message.
private func script(phase: SecurityFaultPhase, fault: Fault) -> [ScriptedServer.Step] {
    var steps: [ScriptedServer.Step] = [.send("220 scripted.test\r\n"), .expectLine(prefix: "EHLO")]
    switch phase {
    case .startTLS:
        steps += [.send("250-scripted.test\r\n250 STARTTLS\r\n"), .expectLine("STARTTLS")]
    case .auth:
        steps += [.send("250-scripted.test\r\n250 AUTH PLAIN\r\n"), .expectLine("AUTH PLAIN " + plainResponse)]
    }
    steps += fault.steps(replacing: phase.correctReply)
    guard fault.isHarmless else { return steps }
    switch phase {
    case .startTLS:
        steps.append(.stall(.seconds(30)))
    case .auth:
        steps += [
            .expectLine(prefix: "MAIL FROM:"), .send("250 2.1.0 OK\r\n"),
            .expectLine(prefix: "RCPT TO:"), .send("250 2.1.5 OK\r\n"),
            .expectLine("DATA"), .send("354 Go ahead\r\n"),
            .readData, .send("250 2.0.0 Queued\r\n"),
            .expectLine("QUIT"), .send("221 2.0.0 Bye\r\n"), .close,
        ]
    }
    return steps
}

private func configuration(_ server: ScriptedServer, phase: SecurityFaultPhase) -> SMTPClientConfiguration {
    switch phase {
    case .startTLS:
        SMTPClientConfiguration(
            host: "127.0.0.1", port: server.port, clientName: "client.example.test",
            timeouts: .init(all: stepTimeout), tlsMode: .requiredStartTLS)
    case .auth:
        // The server is on loopback, so credentials may go without TLS.
        SMTPClientConfiguration(
            host: "127.0.0.1", port: server.port, clientName: "client.example.test",
            timeouts: .init(all: stepTimeout), usePipelining: false, tlsMode: .off,
            authentication: AuthenticationConfiguration(credentials: credentials, mechanism: "PLAIN"))
    }
}

private let envelope = Envelope(sender: "a@example.test", recipients: ["b@example.test"])

/// Returns the inodes of this process's open TCP sockets whose remote end is 127.0.0.1:`port`.
private func openClientSockets(connectedTo port: UInt16) -> [UInt] {
    guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return [] }
    let remote = "0100007F:" + String(format: "%04X", port)
    return table.split(separator: "\n").dropFirst().compactMap { row -> UInt? in
        let fields = row.split(separator: " ")
        guard fields.count > 9, fields[2] == remote, let inode = UInt(fields[9]), inode != 0 else { return nil }
        return OpenDescriptors.containsSocket(inode: inode) ? inode : nil
    }
}

private let descriptorsBeforeMatrix = Mutex<Int?>(nil)

/// Checks the phase, kind and temporariness of the error of a cell.
private func expectError(_ error: SMTPError, phase: SecurityFaultPhase, fault: Fault) {
    if fault.isHarmless {
        // Only STARTTLS gets here: the reply was accepted and the handshake then found no TLS server.
        // SMTPPhase.startTLS covers the handshake after STARTTLS, so the timeout names the handshake
        // only in its text.
        #expect(phase == .startTLS, "a reply sent byte by byte failed the session: \(error)")
        #expect(error.phase == .startTLS, "error phase is \(error.phase): \(error)")
        #expect(error.description.contains("TLS handshake"), "\(error)")
        guard case .timedOut = error.kind else {
            Issue.record("expected the handshake to time out, got \(error)")
            return
        }
        return
    }
    #expect(error.phase == phase.smtpPhase, "error phase is \(error.phase): \(error)")
    #expect(error.isTemporary == (fault != .permanentFailure), "isTemporary is \(error.isTemporary): \(error)")

    switch fault {
    case .serviceNotAvailable:
        #expect(error.kind == .serviceNotAvailable, "\(error)")
        #expect(error.reply?.code == 421)
    case .transientFailure, .permanentFailure:
        let code = fault == .transientFailure ? 451 : 554
        #expect(error.reply?.code == code, "\(error)")
        switch (phase, error.kind) {
        case (.startTLS, .tlsUnavailable), (.auth, .authenticationFailed):
            break
        default:
            Issue.record("expected \(phase == .startTLS ? "tlsUnavailable" : "authenticationFailed"), got \(error)")
        }
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
        break
    }
}

/// Crosses STARTTLS and AUTH with every server fault of `FaultMatrixTests`, and checks the error, the time
/// taken and that the client's socket is closed afterwards.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SecurityFaultMatrixTests {
    @Test("fault in security phase", arguments: SecurityFaultPhase.allCases, Fault.allCases)
    func faultInSecurityPhase(phase: SecurityFaultPhase, fault: Fault) async throws {
        descriptorsBeforeMatrix.withLock { $0 = $0 ?? OpenDescriptors.count }
        let outgoing = try OutgoingMessage(bytes: Array("From: a@example.test\r\nSubject: fault\r\n\r\nbody\r\n".utf8))
        let server = try ScriptedServer(script: script(phase: phase, fault: fault))
        defer { server.stop() }

        let start = ContinuousClock.now
        var delivered = false
        do {
            let connection = try await SMTPConnection.open(configuration(server, phase: phase))
            do {
                let result = try await connection.send(outgoing, envelope: envelope)
                #expect(result.reply.code == 250)
                await connection.quit()
                delivered = true
            } catch {
                await connection.close()
                expectError(error, phase: phase, fault: fault)
            }
        } catch {
            expectError(error, phase: phase, fault: fault)
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < maxCellDuration, "the cell took \(elapsed) with a step timeout of \(stepTimeout)")
        #expect(delivered == (fault.isHarmless && phase == .auth), "delivered is \(delivered)")

        if fault.isHarmless && phase == .auth {
            #expect(server.waitUntilFinished())
            #expect(server.failures.isEmpty, "\(server.failures)")
        }
        server.stop()
        let record = try #require(server.connections.first)
        if !delivered {
            #expect(!record.lines.contains { $0.hasPrefix("MAIL") }, "MAIL was sent after the fault: \(record.lines)")
        }
        if phase == .startTLS {
            #expect(!record.lines.contains { $0.hasPrefix("AUTH") }, "AUTH was sent: \(record.lines)")
        }
        let leaked = openClientSockets(connectedTo: server.port)
        #expect(leaked.isEmpty, "client sockets still open: \(leaked)")
        let before = try #require(descriptorsBeforeMatrix.withLock { $0 })
        let after = OpenDescriptors.count
        #expect(after - before < descriptorSlack, "open descriptors went from \(before) to \(after)")
    }
}
