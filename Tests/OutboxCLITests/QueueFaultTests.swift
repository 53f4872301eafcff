import Foundation
import MailStore
import OutboxTestSupport
import Testing
@testable import OutboxCLI

/// Where a queued message ends after the server fails at each phase of the session, sent with
/// `outbox send --queue` or with `outbox queue flush`.
///
/// smtp-sink fails from EHLO on (`-r` replies 4xx, `-f` replies 5xx, `-q` closes the connection
/// without a reply). It cannot fail its greeting, so a scripted server does that.
@Suite(.enabled(if: SMTPSink.isAvailable, Comment(rawValue: SMTPSink.skipComment)), .timeLimit(.minutes(2)))
struct QueueFaultTests {
    enum Server: Sendable {
        case sink([String])
        case scripted([ScriptedServer.Step])
    }

    enum Expected: Sendable {
        /// Stays in the Outbox for another attempt. `hasReply` is whether the server replied.
        case deferred(hasReply: Bool)
        /// Moves to Failed with the server's 5xx reply.
        case failed
        /// Stays in the Outbox, with the connection lost after the final ".".
        case outcomeUnknown
    }

    struct Fault: Sendable, CustomTestStringConvertible {
        let name: String
        let server: Server
        /// The phase that `SMTPError` names in the stored error.
        let phase: String
        let expected: Expected

        var testDescription: String { name }
    }

    static let faults: [Fault] = [
        Fault(name: "greeting 421", server: .scripted([.send("421 4.3.2 Service not available\r\n"), .close]),
              phase: "greeting", expected: .deferred(hasReply: true)),
        Fault(name: "greeting 554", server: .scripted([.send("554 5.3.2 No SMTP service here\r\n"), .close]),
              phase: "greeting", expected: .failed),
        Fault(name: "greeting dropped", server: .scripted([.close]), phase: "greeting", expected: .deferred(hasReply: false)),
        Fault(name: "EHLO 4xx", server: .sink(["-r", "EHLO"]), phase: "EHLO", expected: .deferred(hasReply: true)),
        Fault(name: "EHLO dropped", server: .sink(["-q", "EHLO"]), phase: "EHLO", expected: .deferred(hasReply: false)),
        Fault(name: "MAIL 4xx", server: .sink(["-r", "MAIL"]), phase: "MAIL", expected: .deferred(hasReply: true)),
        Fault(name: "MAIL 5xx", server: .sink(["-f", "MAIL"]), phase: "MAIL", expected: .failed),
        Fault(name: "MAIL dropped", server: .sink(["-q", "MAIL"]), phase: "MAIL", expected: .deferred(hasReply: false)),
        Fault(name: "RCPT 4xx", server: .sink(["-r", "RCPT"]), phase: "RCPT", expected: .deferred(hasReply: true)),
        Fault(name: "RCPT 5xx", server: .sink(["-f", "RCPT"]), phase: "RCPT", expected: .failed),
        Fault(name: "RCPT dropped", server: .sink(["-q", "RCPT"]), phase: "RCPT", expected: .deferred(hasReply: false)),
        Fault(name: "DATA 4xx", server: .sink(["-r", "DATA"]), phase: "DATA", expected: .deferred(hasReply: true)),
        Fault(name: "DATA 5xx", server: .sink(["-f", "DATA"]), phase: "DATA", expected: .failed),
        Fault(name: "DATA dropped", server: .sink(["-q", "DATA"]), phase: "DATA", expected: .deferred(hasReply: false)),
        Fault(name: "end of data 4xx", server: .sink(["-r", "."]), phase: "end of data", expected: .deferred(hasReply: true)),
        Fault(name: "end of data 5xx", server: .sink(["-f", "."]), phase: "end of data", expected: .failed),
        Fault(name: "end of data dropped", server: .sink(["-q", "."]), phase: "end of data", expected: .outcomeUnknown),
    ]

    @Test("fault at each phase", arguments: faults, ["send --queue", "queue flush"])
    func faultAtPhase(fault: Fault, command: String) async throws {
        var sink: SMTPSink?
        var scripted: ScriptedServer?
        switch fault.server {
        case .sink(let options):
            sink = try await SMTPSink.start(options: options)
        case .scripted(let script):
            scripted = try ScriptedServer(script: script)
        }
        defer {
            sink?.stop()
            scripted?.stop()
        }
        let port = try #require(sink?.port ?? scripted?.port)
        let fixture = try QueueFixture(port: port)
        defer { fixture.remove() }
        let message = QueueFixture.message(marker: "fault-\(UUID().uuidString.prefix(8))")

        let result: CommandOutput
        if command == "send --queue" {
            result = try await runOutbox(fixture.send("--queue"), input: message)
        } else {
            let queued = try await runOutbox(fixture.send("--queue-only"), input: message)
            try #require(queued.status == 0, "\(queued.error)")
            result = try await runOutbox(fixture.queue("flush"))
        }
        let checked = Date()

        let store = try MailStore(url: fixture.storeURL)
        let stored = try #require(try store.messages().first)
        let recipient = try #require(stored.recipients.first)
        let lastError = stored.lastError ?? ""
        #expect(stored.attempts == 1)
        #expect(lastError.contains("\(fault.phase) failed"), "last error: \(lastError)")

        // `outbox send --queue` exits with 0 when the message stays queued, and a flush with EX_TEMPFAIL.
        let deferredStatus = command == "send --queue" ? ExitCode.success : ExitCode.temporaryFailure
        switch fault.expected {
        case .deferred(let hasReply):
            #expect(result.status == deferredStatus.rawValue, "\(result.error)")
            #expect(stored.folder == .outbox)
            #expect(recipient.state == .deferred)
            #expect(stored.nextAttempt.map { $0 > checked } == true, "next attempt: \(String(describing: stored.nextAttempt))")
            #expect(stored.unknownOutcomes == 0)
            if hasReply {
                #expect((400..<500).contains(recipient.reply?.code ?? 0), "reply: \(String(describing: recipient.reply))")
            } else {
                #expect(lastError.contains("closed the connection"), "last error: \(lastError)")
            }
        case .failed:
            #expect(result.status != ExitCode.success.rawValue, "\(result.error)")
            #expect(result.status != ExitCode.temporaryFailure.rawValue, "\(result.error)")
            #expect(stored.folder == .failed)
            #expect(recipient.state == .failed)
            let reply = try #require(recipient.reply, "no reply recorded for \(recipient)")
            #expect((500..<600).contains(reply.code), "reply: \(reply)")
            #expect(lastError.contains(String(reply.code)), "last error: \(lastError)")
            #expect(stored.nextAttempt == nil)
        case .outcomeUnknown:
            #expect(result.status == deferredStatus.rawValue, "\(result.error)")
            #expect(stored.folder == .outbox)
            #expect(recipient.state == .deferred)
            #expect(stored.unknownOutcomes == 1)
            #expect(stored.nextAttempt.map { $0 > checked } == true, "next attempt: \(String(describing: stored.nextAttempt))")
        }
    }

    /// A recipient that the server defers while it accepts the other one: the next attempt sends the
    /// message to the deferred recipient only.
    @Test func partialRecipientRejection() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.recipientReplies = ["later@example.org": "450 4.2.1 Mailbox busy, try again later"]
        let scripted = try ScriptedServer(esmtp: behavior)
        defer { scripted.stop() }
        let fixture = try QueueFixture(port: scripted.port)
        defer { fixture.remove() }
        let marker = "partial-\(UUID().uuidString.prefix(8))"
        let message = QueueFixture.message(marker: marker, recipients: ["now@example.org", "later@example.org"])

        let first = try await runOutbox(fixture.send("--queue"), input: message)
        #expect(first.status == 0, "\(first.error)")
        let store = try MailStore(url: fixture.storeURL)
        let deferred = try #require(try store.messages().first)
        #expect(deferred.folder == .outbox)
        #expect(deferred.recipients.map(\.state) == [.delivered, .deferred])
        #expect(deferred.recipients.last?.reply?.code == 450)
        #expect(deferred.attempts == 1)

        // smtp-sink takes over the port, so that the stored account reaches it.
        scripted.stop()
        let sink = try await SMTPSink.start(dumpsMessages: true, port: fixture.port)
        defer { sink.stop() }
        let second = try await runOutbox(fixture.queue("flush", ["--now"]))
        #expect(second.status == 0, "\(second.error)")

        let sent = try #require(try store.message(id: deferred.id))
        #expect(sent.folder == .sent)
        #expect(sent.recipients.map(\.state) == [.delivered, .delivered])
        #expect(sent.attempts == 2)
        try await sink.waitForMessages(count: 1)
        let transactions = try sink.recipientArguments()
        #expect(transactions.count == 1)
        let recipients = try #require(transactions.first)
        #expect(recipients.count == 1, "\(recipients)")
        #expect(recipients.first?.contains("<later@example.org>") == true, "\(recipients)")
    }
}
