import Foundation
import MailStore
import Outbox
import OutboxTestSupport
import SMTPCore
import Synchronization
import Testing

/// A phase of a cell: one of the session's phases or one of its security steps.
private enum CellPhase: CustomStringConvertible {
    case session(FaultPhase)
    case security(SecurityFaultPhase)

    var description: String {
        switch self {
        case .session(let phase): phase.rawValue
        case .security(let phase): phase.rawValue
        }
    }

    /// The phases that the stored error may name.
    var expectedErrorPhases: Set<SMTPPhase> {
        switch self {
        case .session(let phase): phase.expectedErrorPhases
        case .security(let phase): [phase.smtpPhase]
        }
    }

    /// The body of the queued message: 8 MiB for the data transfer, a line otherwise.
    var messageBody: String {
        switch self {
        case .session(let phase): phase.messageBody
        case .security: FaultPhase.greeting.messageBody
        }
    }

    var securityPhase: SecurityFaultPhase? {
        switch self {
        case .session: nil
        case .security(let phase): phase
        }
    }

    func script(fault: Fault) -> [ScriptedServer.Step] {
        switch self {
        case .session(let phase): FaultMatrix.script(phase: phase, fault: fault)
        case .security(let phase): FaultMatrix.script(phase: phase, fault: fault)
        }
    }
}

/// Where a cell must leave the message.
private enum ExpectedOutcome {
    /// In Sent, with the recipient delivered.
    case sent
    /// In Failed, with the recipient failed and the 554 reply stored.
    case failed
    /// In the Outbox, with the recipient deferred and a next attempt set.
    case deferred
}

private func expectedOutcome(phase: CellPhase, fault: Fault) -> ExpectedOutcome {
    switch (phase, fault) {
    case (.session(.quit), _):
        // The server accepted the message before QUIT, so nothing at QUIT can undo that.
        .sent
    case (.security(.startTLS), .byteAtATime):
        // The reply is correct, and the TLS handshake after it times out against this plain server.
        .deferred
    case (_, .byteAtATime):
        .sent
    case (_, .permanentFailure):
        .failed
    default:
        .deferred
    }
}

/// Returns the reply code that the store must keep for the recipient, or nil for none. `storedCode` is
/// the code it keeps, for the one cell where either is right.
private func expectedReplyCode(phase: CellPhase, fault: Fault, outcome: ExpectedOutcome, storedCode: Int?) -> Int? {
    switch (outcome, fault) {
    case (.sent, _):
        // The reply to RCPT, which the store keeps for a delivered recipient.
        250
    case (.failed, _):
        554
    case (.deferred, .serviceNotAvailable):
        // The server closes while the client still writes, so the client may never read the 421.
        if case .session(.dataTransfer) = phase, storedCode == nil { nil } else { 421 }
    case (.deferred, .transientFailure):
        451
    case (.deferred, _):
        nil
    }
}

/// Returns the phase named at the start of `lastError`, which `SMTPError.description` writes as
/// "PHASE failed (...)", if it is one of `phases`.
private func errorPhase(in lastError: String, among phases: Set<SMTPPhase>) -> SMTPPhase? {
    phases.first { lastError.hasPrefix("\($0) failed") }
}

/// Returns whether the sender must count the attempt as an unknown outcome: after the final "." the
/// connection ended, timed out, or the server sent no valid reply. A 4xx or 5xx reply is an outcome.
private func expectsUnknownOutcome(fault: Fault, errorPhase: SMTPPhase?, storedCode: Int?) -> Bool {
    guard errorPhase == .endOfData else { return false }
    switch fault {
    case .closed, .stall, .garbage, .overlongLine, .codeMismatch: return true
    case .serviceNotAvailable: return storedCode == nil
    case .transientFailure, .permanentFailure, .byteAtATime: return false
    }
}

/// The open descriptor count before the first cell of the matrix ran.
private let descriptorsBeforeMatrix = Mutex<Int?>(nil)

/// Crosses every phase of a session, STARTTLS and AUTH included, with every server fault of the fault
/// matrix, and flushes one queued message through `OutboxSender` in each cell.
///
/// Each cell checks what the store contains afterwards: the folder, the recipient's state and reply, the
/// attempt count, the next attempt, the unknown outcome count and the last error. It also checks the
/// flush report, the time the flush took, and that no client socket or other descriptor is left open.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct StoreFaultMatrixTests {
    @Test("stored outcome of fault in phase", arguments: FaultPhase.allCases, Fault.allCases)
    func faultInPhase(phase: FaultPhase, fault: Fault) async throws {
        try await checkCell(phase: .session(phase), fault: fault)
    }

    @Test("stored outcome of fault in security phase", arguments: SecurityFaultPhase.allCases, Fault.allCases)
    func faultInSecurityPhase(phase: SecurityFaultPhase, fault: Fault) async throws {
        try await checkCell(phase: .security(phase), fault: fault)
    }

    private func checkCell(phase: CellPhase, fault: Fault) async throws {
        descriptorsBeforeMatrix.withLock { $0 = $0 ?? OpenDescriptors.count }
        // The store, the sender and the server are gone when `flushAndCheck` returns, so that their
        // descriptors count as leaked only if they stay open.
        let port = try await flushAndCheck(phase: phase, fault: fault)

        let leaked = openClientSockets(connectedTo: port)
        #expect(leaked.isEmpty, "client sockets still open: \(leaked)")
        let before = try #require(descriptorsBeforeMatrix.withLock { $0 })
        let after = OpenDescriptors.count
        #expect(after - before < FaultMatrix.descriptorSlack, "open descriptors went from \(before) to \(after)")
    }

    /// Queues one message, flushes it against a server that plays the cell's fault, checks the store and
    /// the report, and returns the server's port.
    private func flushAndCheck(phase: CellPhase, fault: Fault) async throws -> UInt16 {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(script: phase.script(fault: fault))
        defer { server.stop() }
        let id = try fixture.queue(port: server.port, body: phase.messageBody)
        let securityPhase = phase.securityPhase
        let sender = OutboxSender(store: fixture.store, configuration: .init(connectionsPerServer: 1)) { account in
            FaultMatrix.configuration(port: UInt16(account)!, securityPhase: securityPhase)
        }

        let start = ContinuousClock.now
        let report = try await sender.flush()
        let elapsed = ContinuousClock.now - start
        let flushed = Date()
        #expect(
            elapsed < FaultMatrix.maxCellDuration,
            "the flush took \(elapsed) with a step timeout of \(FaultMatrix.stepTimeout)")

        let message = try fixture.message(id)
        let recipient = try #require(message.recipients.first)
        let outcome = expectedOutcome(phase: phase, fault: fault)
        let storedCode = recipient.reply?.code
        #expect(message.attempts == 1)
        #expect(message.leaseOwner == nil, "the message is still claimed by \(message.leaseOwner ?? "")")
        #expect(storedCode == expectedReplyCode(phase: phase, fault: fault, outcome: outcome, storedCode: storedCode),
                "stored reply: \(String(describing: recipient.reply))")
        #expect(report.errors.isEmpty, "\(report.errors)")

        var namedPhase: SMTPPhase?
        switch outcome {
        case .sent:
            #expect(message.folder == .sent)
            #expect(recipient.state == .delivered)
            #expect(message.nextAttempt == nil)
            #expect(message.lastError == nil, "last error: \(message.lastError ?? "")")
            #expect(report.sent == [id])
            #expect(report.failed.isEmpty)
            #expect(report.deferred.isEmpty)
        case .failed, .deferred:
            let lastError = try #require(message.lastError)
            namedPhase = errorPhase(in: lastError, among: phase.expectedErrorPhases)
            #expect(namedPhase != nil, "the last error names none of \(phase.expectedErrorPhases): \(lastError)")
            if outcome == .failed {
                #expect(message.folder == .failed)
                #expect(recipient.state == .failed)
                #expect(message.nextAttempt == nil)
                #expect(report.failed == [id])
                #expect(report.sent.isEmpty)
                #expect(report.deferred.isEmpty)
            } else {
                #expect(message.folder == .outbox)
                #expect(recipient.state == .deferred)
                #expect(message.nextAttempt.map { $0 > flushed } == true,
                        "next attempt: \(String(describing: message.nextAttempt))")
                #expect(report.deferred == [id])
                #expect(report.sent.isEmpty)
                #expect(report.failed.isEmpty)
            }
        }

        let unknown = expectsUnknownOutcome(fault: fault, errorPhase: namedPhase, storedCode: storedCode)
        #expect(message.unknownOutcomes == (unknown ? 1 : 0))
        #expect(report.unknownOutcomes == (unknown ? [id] : []))
        if unknown {
            #expect(recipient.error?.contains("may have been delivered") == true, "\(recipient.error ?? "")")
        }

        if fault.isHarmless, outcome == .sent {
            #expect(server.waitUntilFinished())
            #expect(server.failures.isEmpty, "\(server.failures)")
        }
        // The server may still be reading the content after it sent its reply early, so its record is
        // complete only once it stopped.
        server.stop()
        // One connection: a failed session marks the server down for the rest of the flush.
        #expect(server.connections.count == 1, "\(server.connections.count) connections")
        if outcome == .sent {
            #expect(server.connections.first?.messages.count == 1)
        }
        let errorText = namedPhase.map { "\($0) error" } ?? "no error"
        print("""
            store fault matrix: \(phase) / \(fault) -> \(message.folder), \(recipient.state), \
            reply \(storedCode.map(String.init) ?? "none"), \(errorText), unknown outcomes \(message.unknownOutcomes), \
            \(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000) ms
            """)
        return server.port
    }
}
