import Foundation
import Outbox
import OutboxTestSupport
import Synchronization
import Testing

@Suite struct OutboxServiceTests {
    @Test func enqueuedMessageIsSentByFlush() async throws {
        let folder = TemporaryFolder("outbox-service")
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        let outbox = try OutboxService(storeDirectory: folder.url, account: loopbackAccount(port: server.port))

        let id = try await outbox.enqueue(makeMessage(subject: "queued"))
        let queued = try #require(try outbox.message(id: id))
        #expect(queued.folder == .outbox)
        #expect(queued.subject == "queued")
        let report = try await outbox.flush()

        #expect(report.sent == [id])
        let sent = try #require(try outbox.message(id: id))
        #expect(sent.folder == .sent)
        #expect(sent.recipients.map(\.state) == [.delivered])
        #expect(server.connections.first?.messages.count == 1)
    }

    @Test func credentialsAskedAtSendTimeNotStored() async throws {
        let folder = TemporaryFolder("outbox-service")
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        let calls = Atomic<Int>(0)
        var account = loopbackAccount(port: server.port)
        account.credentialsProvider = {
            calls.add(1, ordering: .relaxed)
            return .oauth2(username: "sender@example.org", token: Secret("token-never-stored"))
        }
        let outbox = try OutboxService(storeDirectory: folder.url, account: account)

        let id = try await outbox.enqueue(makeMessage())
        #expect(calls.load(ordering: .relaxed) == 0)
        let stored = try #require(try outbox.message(id: id))
        #expect(!stored.account.contains("token"))
        _ = try await outbox.flush()

        // The scripted server offers no AUTH, so the login fails and the message is deferred,
        // after the provider was asked.
        #expect(calls.load(ordering: .relaxed) == 1)
        let index = try Data(contentsOf: folder.url.appendingPathComponent("index.sqlite"))
        #expect(index.range(of: Data("token-never-stored".utf8)) == nil)
    }

    @Test func unknownAccountIsRejected() async throws {
        let folder = TemporaryFolder("outbox-service")
        let outbox = try OutboxService(storeDirectory: folder.url, account: MailAccount(host: "127.0.0.1"))

        let error = try await #require(throws: MailError.self) {
            try await outbox.enqueue(makeMessage(), account: "other")
        }

        #expect(error.kind == .invalidEnvelope)
    }

    @Test func runReportsProgressUntilCancelled() async throws {
        let folder = TemporaryFolder("outbox-service")
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        let outbox = try OutboxService(storeDirectory: folder.url, account: loopbackAccount(port: server.port))
        let id = try await outbox.enqueue(makeMessage(subject: "run"))

        let updates = outbox.progressUpdates()
        let service = Task { await outbox.run(pollInterval: .seconds(1)) }
        var sawSent = false
        for await progress in updates where progress.sent == 1 {
            sawSent = true
            break
        }
        service.cancel()
        await service.value

        #expect(sawSent)
        #expect(try outbox.message(id: id)?.folder == .sent)
    }
}
