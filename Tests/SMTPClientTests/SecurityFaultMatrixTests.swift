import Foundation
import Glibc
import Synchronization
import OutboxTestSupport
@testable import SMTPCore
import Testing
@testable import SMTPClient

private let envelope = Envelope(sender: "a@example.test", recipients: ["b@example.test"])

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

/// Crosses STARTTLS and AUTH with every server fault of the fault matrix, and checks the error, the time
/// taken and that the client's socket is closed afterwards.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SecurityFaultMatrixTests {
    @Test("fault in security phase", arguments: SecurityFaultPhase.allCases, Fault.allCases)
    func faultInSecurityPhase(phase: SecurityFaultPhase, fault: Fault) async throws {
        descriptorsBeforeMatrix.withLock { $0 = $0 ?? OpenDescriptors.count }
        let outgoing = try OutgoingMessage(bytes: Array("From: a@example.test\r\nSubject: fault\r\n\r\nbody\r\n".utf8))
        let server = try ScriptedServer(script: FaultMatrix.script(phase: phase, fault: fault))
        defer { server.stop() }

        let start = ContinuousClock.now
        var delivered = false
        do {
            let connection = try await SMTPConnection.open(FaultMatrix.configuration(port: server.port, securityPhase: phase))
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
        #expect(
            elapsed < FaultMatrix.maxCellDuration,
            "the cell took \(elapsed) with a step timeout of \(FaultMatrix.stepTimeout)")
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
        #expect(after - before < FaultMatrix.descriptorSlack, "open descriptors went from \(before) to \(after)")
    }
}
