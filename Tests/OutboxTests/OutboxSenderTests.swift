import Foundation
import MailStore
import OutboxTestSupport
import SMTPClient
import Synchronization
import Testing
@testable import Outbox

/// A store in a new temporary folder, removed when the test ends.
final class SenderFixture {
    let folder: URL
    let store: MailStore

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-sender-\(UUID().uuidString)")
        store = try MailStore(url: folder)
    }

    deinit {
        try? FileManager.default.removeItem(at: folder)
    }

    /// Queues a message for the server on `port` and returns its id. `body` follows the marker line.
    @discardableResult
    func queue(
        _ recipients: [String] = ["rcpt@example.org"], port: UInt16, marker: String = UUID().uuidString, body: String = ""
    ) throws -> String {
        let content = "From: sender@example.org\r\nTo: \(recipients.joined(separator: ", "))\r\n"
            + "Message-ID: <\(marker)@example.org>\r\nSubject: test\r\n\r\nmarker \(marker)\r\n" + body
        return try store.add(
            NewMessage(
                sender: "sender@example.org", recipients: recipients.map { StoredRecipient(address: $0) },
                account: "\(port)", route: "127.0.0.1:\(port)", messageID: "<\(marker)@example.org>"),
            content: Array(content.utf8)
        ).id
    }

    /// Returns a sender whose accounts are the port numbers of loopback servers.
    func sender(
        connections: Int = 1, policy: RetryPolicy = RetryPolicy(), timeout: Duration = .seconds(5)
    ) -> OutboxSender {
        OutboxSender(
            store: store, configuration: .init(connectionsPerServer: connections, retryPolicy: policy)
        ) { account in
            var configuration = SMTPClientConfiguration(host: "127.0.0.1", port: UInt16(account)!)
            configuration.timeouts = .init(all: timeout)
            configuration.clientName = "client.test"
            return configuration
        }
    }

    func message(_ id: String) throws -> StoredMessage {
        try #require(try store.message(id: id))
    }
}


@Suite(.serialized) struct OutboxSenderTests {
    @Test func flushReusesOneConnection() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(esmtp: .init())
        let ids = try (0..<30).map { _ in try fixture.queue(port: server.port) }

        let report = try await fixture.sender().flush()

        #expect(Set(report.sent) == Set(ids))
        #expect(report.failed.isEmpty)
        #expect(report.deferred.isEmpty)
        for id in ids {
            let message = try fixture.message(id)
            #expect(message.folder == .sent)
            #expect(message.attempts == 1)
            #expect(message.recipients.first?.reply?.code == 250)
        }
        #expect(server.waitUntilFinished(connectionCount: 1))
        #expect(server.connections.count == 1)
        #expect(server.connections.first?.messages.count == 30)
    }

    @Test func parallelFlushSendsEachMessageOnce() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(esmtp: .init())
        let ids = try (0..<120).map { index in try fixture.queue(port: server.port, marker: "m\(index)") }

        let report = try await fixture.sender(connections: 4).flush()

        #expect(report.sent.count == ids.count)
        #expect(server.waitUntilFinished(connectionCount: server.connections.count))
        #expect((1...4).contains(server.connections.count))
        let bodies = server.connections.flatMap(\.messages).map { String(decoding: $0, as: UTF8.self) }
        for index in 0..<120 {
            #expect(bodies.filter { $0.contains("marker m\(index)\r\n") }.count == 1, "message \(index)")
        }
    }

    @Test func refusedRecipientsFailOrRetryAlone() async throws {
        let fixture = try SenderFixture()
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.recipientReplies = [
            "busy@example.org": "450 4.2.1 Mailbox busy",
            "gone@example.org": "550 5.1.1 No such user",
        ]
        // The first connection refuses two recipients; the second accepts every one.
        let server = try ScriptedServer(scripts: [[.playESMTP(behavior)], [.playESMTP(.init())]])
        let id = try fixture.queue(["ok@example.org", "busy@example.org", "gone@example.org"], port: server.port)

        _ = try await fixture.sender().flush()
        var message = try fixture.message(id)
        #expect(message.folder == .outbox)
        #expect(message.recipients.map(\.state) == [.delivered, .deferred, .failed])
        #expect(message.recipients[1].reply?.code == 450)
        #expect(message.recipients[2].reply == StoredReply(code: 550, text: "5.1.1 No such user"))
        #expect(try #require(message.nextAttempt) > Date())

        // The next attempt, made at once with expedite, sends to the deferred recipient only.
        _ = try await fixture.sender().flush(expedite: true)
        #expect(server.waitUntilFinished(connectionCount: 2))
        let rcptLines = server.connections[1].lines.filter { $0.hasPrefix("RCPT TO:") }
        #expect(rcptLines == ["RCPT TO:<busy@example.org>"])
        message = try fixture.message(id)
        #expect(message.recipients.map(\.state) == [.delivered, .delivered, .failed])
        #expect(message.folder == .failed)
        #expect(message.attempts == 2)
    }

    @Test func lostReplyToFinalDotIsUnconfirmed() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(script: [
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
        ])
        let id = try fixture.queue(port: server.port)

        let report = try await fixture.sender().flush()

        #expect(report.unknownOutcomes == [id])
        let message = try fixture.message(id)
        #expect(message.folder == .outbox)
        #expect(message.unknownOutcomes == 1)
        #expect(message.recipients.first?.state == .deferred)
        #expect(message.recipients.first?.error?.contains("may have been delivered") == true)
    }

    @Test func unreachableServerDefersWithBackoff() async throws {
        let fixture = try SenderFixture()
        let port = try ScriptedServer.closedPort()
        let ids = try (0..<3).map { _ in try fixture.queue(port: port) }
        let policy = RetryPolicy(initialDelay: 60, maximumDelay: 600, jitter: 0.1)
        let before = Date()

        let report = try await fixture.sender(connections: 2, policy: policy).flush()

        #expect(Set(report.deferred) == Set(ids))
        for id in ids {
            let message = try fixture.message(id)
            #expect(message.folder == .outbox)
            #expect(message.attempts == 1)
            #expect(message.lastError?.contains("connect") == true)
            let delay = try #require(message.nextAttempt).timeIntervalSince(before)
            #expect(delay >= 54)
            #expect(delay <= 67)
        }
        // Nothing is due now, so a second flush tries nothing.
        let second = try await fixture.sender().flush()
        #expect(second.sent.isEmpty)
        #expect(second.deferred.isEmpty)
    }

    @Test func unusableAccountDefersWithReason() async throws {
        struct PasswordUnavailable: Error, CustomStringConvertible {
            var description: String { "the password command failed" }
        }
        let fixture = try SenderFixture()
        let id = try fixture.queue(port: 25)
        let sender = OutboxSender(store: fixture.store) { _ in throw PasswordUnavailable() }

        let report = try await sender.flush()

        #expect(report.deferred == [id])
        let message = try fixture.message(id)
        #expect(message.folder == .outbox)
        #expect(message.attempts == 1)
        #expect(message.lastError?.contains("the password command failed") == true)
        #expect(try #require(message.nextAttempt) > Date())
    }

    @Test func wakeStartsFlushBeforePoll() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(esmtp: .init())
        let sender = fixture.sender()
        let task = Task { await sender.run(pollInterval: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(200))
        let id = try fixture.queue(port: server.port)
        let woken = ContinuousClock.now
        sender.wake()
        for _ in 0..<50 where try fixture.message(id).folder != .sent {
            try await Task.sleep(for: .milliseconds(50))
        }
        task.cancel()
        await task.value

        #expect(try fixture.message(id).folder == .sent)
        #expect(ContinuousClock.now - woken < .seconds(5))
    }

    @Test func unusableTLSConfigurationFails() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(script: [.stall(.seconds(2)), .close])
        let id = try fixture.queue(port: server.port)
        let sender = OutboxSender(store: fixture.store) { account in
            var configuration = SMTPClientConfiguration(host: "127.0.0.1", port: UInt16(account)!)
            configuration.tlsMode = .implicit
            configuration.tls = TLSConfiguration(trust: .pinnedSHA256Fingerprint(""))
            configuration.timeouts = .init(all: .seconds(5))
            return configuration
        }

        _ = try await sender.flush()

        // Trying again cannot help, so the message fails at once instead of waiting five days.
        let message = try fixture.message(id)
        #expect(message.folder == .failed)
        #expect(message.lastError?.contains("fingerprint") == true)
    }

    @Test func expiredMessageFails() async throws {
        let fixture = try SenderFixture()
        let id = try fixture.queue(port: try ScriptedServer.closedPort())
        let policy = RetryPolicy(maximumAge: 0)

        let report = try await fixture.sender(policy: policy).flush()

        #expect(report.failed == [id])
        let message = try fixture.message(id)
        #expect(message.folder == .failed)
        #expect(message.lastError?.hasPrefix("Gave up after") == true)
        #expect(message.recipients.first?.state == .failed)
    }

    @Test func rejectedSenderFails() async throws {
        let fixture = try SenderFixture()
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.mailReply = "553 5.1.8 Sender domain does not exist"
        let server = try ScriptedServer(esmtp: behavior)
        let id = try fixture.queue(port: server.port)

        _ = try await fixture.sender().flush()

        let message = try fixture.message(id)
        #expect(message.folder == .failed)
        #expect(message.recipients.first?.reply?.code == 553)
        #expect(message.lastError?.contains("MAIL") == true)
    }

    @Test func missingContentFileFailsOnlyItsMessage() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(esmtp: .init())
        let ids = try (0..<3).map { _ in try fixture.queue(port: server.port) }
        let path = fixture.store.contentURL(id: ids[1]).path
        try FileManager.default.removeItem(atPath: path)

        let report = try await fixture.sender().flush()

        #expect(Set(report.sent) == [ids[0], ids[2]])
        #expect(report.failed == [ids[1]])
        let failed = try fixture.message(ids[1])
        #expect(failed.folder == .failed)
        #expect(failed.lastError?.contains("the content file \(path) cannot be read: No such file or directory") == true,
                "\(failed.lastError ?? "no error")")
        #expect(server.waitUntilFinished(connectionCount: 1))
        #expect(server.connections.first?.messages.count == 2)
    }

    @Test func returningServerGetsDeferredMessages() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(esmtp: .init())
        // Deferred messages for this server, waiting out a long backoff.
        let deferred = try (0..<5).map { _ in try fixture.queue(port: server.port) }
        _ = try fixture.store.claim(owner: "test", limit: 10)
        for id in deferred {
            try fixture.store.record(id, owner: "test", DeliveryUpdate(
                recipients: [StoredRecipient(address: "rcpt@example.org", state: .deferred)], folder: .outbox,
                nextAttempt: Date().addingTimeInterval(3600), lastError: "421 down"))
        }
        let next = try fixture.queue(port: server.port)

        let (message, report) = try await fixture.sender().sendNow(next)

        #expect(message.folder == .sent)
        #expect(Set(report.sent) == Set(deferred + [next]))
        #expect(server.waitUntilFinished(connectionCount: 1))
        #expect(server.connections.count == 1)
    }

    @Test func lostConnectionSparesLaterMessages() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(script: ScriptedServer.Step.throughFirstPipelinedMessage + [.close])
        let ids = try (0..<3).map { _ in try fixture.queue(port: server.port) }

        let report = try await fixture.sender().flush()

        // Only the first message's content reached the server before the connection closed.
        #expect(report.unknownOutcomes == [ids[0]])
        #expect(try fixture.message(ids[0]).unknownOutcomes == 1)
        for id in ids.dropFirst() {
            let message = try fixture.message(id)
            #expect(message.folder == .outbox)
            #expect(message.unknownOutcomes == 0)
            #expect(message.lastError?.contains("may have been delivered") == false, "\(message.lastError ?? "")")
        }
    }

    @Test func cancelledFlushSparesUnsentMessages() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(
            script: ScriptedServer.Step.throughFirstPipelinedMessage + [.stall(.seconds(3)), .close])
        let ids = try (0..<3).map { _ in try fixture.queue(port: server.port) }
        let sender = fixture.sender(timeout: .seconds(10))

        let task = Task { try await sender.flush() }
        try await Task.sleep(for: .milliseconds(500))
        task.cancel()
        _ = try await task.value

        // The first message's content was sent, so its outcome is unknown. The others never left.
        #expect(try fixture.message(ids[0]).unknownOutcomes == 1)
        for id in ids.dropFirst() {
            let message = try fixture.message(id)
            #expect(message.folder == .outbox)
            #expect(message.attempts == 0)
            #expect(message.unknownOutcomes == 0)
            #expect(message.leaseOwner == nil)
        }
    }

    @Test func cancelledFlushLeavesMessageQueued() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(script: [
            .send("220 scripted.test ESMTP\r\n"),
            .expectLine(prefix: "EHLO"),
            .send("250 scripted.test\r\n"),
            .stall(.seconds(3)),
            .close,
        ])
        let id = try fixture.queue(port: server.port)
        let sender = fixture.sender(timeout: .seconds(10))

        let task = Task { try await sender.flush() }
        try await Task.sleep(for: .milliseconds(500))
        task.cancel()
        let report = try await task.value

        let message = try fixture.message(id)
        #expect(message.folder == .outbox)
        #expect(message.attempts == 0)
        #expect(message.leaseOwner == nil)
        #expect(report.errors.contains { $0.contains("cancelled") })
    }

    @Test func runSendsLaterMessagesUntilCancelled() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(esmtp: .init())
        let first = try fixture.queue(port: server.port)
        let flushes = Mutex(0)
        let sender = fixture.sender()
        let task = Task {
            await sender.run(pollInterval: .milliseconds(100)) { _ in flushes.withLock { $0 += 1 } }
        }
        try await Task.sleep(for: .milliseconds(300))
        let second = try fixture.queue(port: server.port)
        for _ in 0..<50 where try fixture.message(second).folder != .sent {
            try await Task.sleep(for: .milliseconds(100))
        }
        task.cancel()
        await task.value

        #expect(try fixture.message(first).folder == .sent)
        #expect(try fixture.message(second).folder == .sent)
        // Only the flushes that sent something are reported.
        #expect(flushes.withLock { $0 } == 2)
    }
}

@Suite(.serialized) struct FailureNoticeTests {
    private func failOne(_ fixture: SenderFixture, server: ScriptedServer, sender: OutboxSender) async throws -> String {
        let id = try fixture.queue(["gone@example.org"], port: server.port)
        _ = try await sender.flush()
        #expect(try fixture.message(id).folder == .failed)
        return id
    }

    @Test func failedMessageNotifiesSender() async throws {
        let fixture = try SenderFixture()
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.recipientReplies = ["gone@example.org": "550 5.1.1 No such user"]
        let server = try ScriptedServer(esmtp: behavior)
        let sender = OutboxSender(
            store: fixture.store,
            configuration: .init(failureNotices: FailureNotices(from: "MAILER-DAEMON@client.test"))
        ) { account in SMTPClientConfiguration(host: "127.0.0.1", port: UInt16(account)!) }

        let id = try await failOne(fixture, server: server, sender: sender)

        // The notice was queued for the same server, so the same flush sent it.
        let notices = try fixture.store.messages().filter { $0.sender.isEmpty }
        #expect(notices.count == 1)
        let notice = try #require(notices.first)
        #expect(notice.folder == .sent)
        #expect(notice.sender == "")
        #expect(notice.recipients.map(\.address) == ["sender@example.org"])
        let content = try String(contentsOf: fixture.store.contentURL(id: notice.id), encoding: .utf8)
        #expect(content.contains("Content-Type: multipart/report; report-type=delivery-status"))
        #expect(content.contains("Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"))
        #expect(content.contains("Diagnostic-Code: smtp; 550 5.1.1 No such user"))
        // The failed message's header is quoted, and its body is not.
        let original = try #require(try fixture.store.message(id: id))
        #expect(content.contains("Message-ID: \(original.messageID!)"))
        #expect(!content.contains("marker "))
    }

    @Test func unsendableMessageNoticeSentInSameFlush() async throws {
        let fixture = try SenderFixture()
        let server = try ScriptedServer(esmtp: .init())
        let sender = OutboxSender(
            store: fixture.store,
            configuration: .init(failureNotices: FailureNotices(from: "MAILER-DAEMON@client.test"))
        ) { account in SMTPClientConfiguration(host: "127.0.0.1", port: UInt16(account)!) }
        // A line over 998 octets fails the message before any connection opens. The notice goes
        // out in this flush only if the connection's next claim finds it.
        let id = try fixture.queue(port: server.port, body: String(repeating: "x", count: 1200) + "\r\n")

        let report = try await sender.flush()

        #expect(try fixture.message(id).folder == .failed)
        let notices = try fixture.store.messages().filter { $0.sender.isEmpty }
        #expect(notices.count == 1)
        #expect(notices.first?.folder == .sent, "the notice is in \(notices.first.map { "\($0.folder)" } ?? "no folder")")
        #expect(report.sent == notices.map(\.id))
    }

    @Test func longReplyFoldedInNotice() async throws {
        let fixture = try SenderFixture()
        // A reply line may have 4096 octets and a reply 1000 lines, but a line of the notice at most
        // 998 (RFC 5322), or a strict server such as 'outbox capture' rejects the notice.
        let words = String(repeating: "mailbox ", count: 150)
        let unbroken = String(repeating: "x", count: 1200)
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.recipientReplies = ["gone@example.org": "550 5.1.1 \(words)\(unbroken)"]
        let server = try ScriptedServer(esmtp: behavior)
        let sender = OutboxSender(
            store: fixture.store,
            configuration: .init(failureNotices: FailureNotices(from: "MAILER-DAEMON@client.test"))
        ) { account in SMTPClientConfiguration(host: "127.0.0.1", port: UInt16(account)!) }

        _ = try await failOne(fixture, server: server, sender: sender)

        let notice = try #require(try fixture.store.messages().first { $0.sender.isEmpty })
        let content = try Data(contentsOf: fixture.store.contentURL(id: notice.id))
        let lines = content.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        #expect(lines.allSatisfy { $0.count <= 1000 })
        // Unfolding the Diagnostic-Code field gives back the words of the reply.
        let text = String(decoding: content, as: UTF8.self).replacingOccurrences(of: "\r\n ", with: " ")
        #expect(text.contains("Diagnostic-Code: smtp; 550 5.1.1 \(words)x"))
    }

    @Test func noticesAreRateLimited() async throws {
        let fixture = try SenderFixture()
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.defaultRecipientReply = "550 5.1.1 No such user"
        let server = try ScriptedServer(esmtp: behavior)
        let sender = OutboxSender(
            store: fixture.store,
            configuration: .init(failureNotices: FailureNotices(from: "MAILER-DAEMON@client.test", maximumPerHour: 2))
        ) { account in SMTPClientConfiguration(host: "127.0.0.1", port: UInt16(account)!) }

        for _ in 0..<4 {
            try fixture.queue(["gone@example.org"], port: server.port)
        }
        let report = try await sender.flush()

        // Four messages and the two notices fail: the server refuses every recipient. The failed
        // notices have the null sender, so they cause no further notice.
        #expect(report.failed.count == 6)
        let notices = try fixture.store.messages().filter { $0.sender.isEmpty }
        #expect(notices.count == 2)
        #expect(notices.allSatisfy { $0.folder == .failed })
        #expect(report.errors.filter { $0.contains("No failure notice") }.count == 2)
    }
}
