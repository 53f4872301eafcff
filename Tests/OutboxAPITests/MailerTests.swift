import Foundation
import Outbox
import OutboxTestSupport
import Testing

@Suite struct MailerTests {
    @Test func sendReportsEachRecipient() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.recipientReplies = ["gone@example.org": "550 5.1.1 No such user"]
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        let mailer = Mailer(account: loopbackAccount(port: server.port))

        let result = try await mailer.send(makeMessage(to: ["a@example.org", "gone@example.org"]))
        await mailer.shutdown()

        #expect(result.accepted.map(\.address) == ["a@example.org"])
        let rejected = try #require(result.rejected.first)
        #expect(rejected.address == "gone@example.org")
        #expect(rejected.status == .permanentFailure)
        #expect(rejected.reply?.code == 550)
        #expect(rejected.reply?.enhancedCode == EnhancedStatusCode(statusClass: 5, subject: 1, detail: 1))
        #expect(result.reply?.code == 250)
        #expect(result.messageID?.hasPrefix("<") == true)
        #expect(server.connections.first?.messages.count == 1)
    }

    @Test func allRecipientsRejectedThrows() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.defaultRecipientReply = "550 5.1.1 No such user"
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        let mailer = Mailer(account: loopbackAccount(port: server.port))

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage(to: ["x@example.org", "y@example.org"]))
        }
        await mailer.shutdown()

        #expect(error.kind == .rejected)
        #expect(error.phase == .rcpt)
        #expect(!error.isRetryable)
        #expect(error.recipients.map(\.address) == ["x@example.org", "y@example.org"])
        #expect(error.recipients.allSatisfy { $0.status == .permanentFailure })
        #expect(error.recipients.allSatisfy { $0.reply?.code == 550 })
    }

    @Test func temporaryRejectionIsRetryable() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.messageReply = "451 4.3.0 Try again later"
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        let mailer = Mailer(account: loopbackAccount(port: server.port))

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }
        await mailer.shutdown()

        #expect(error.kind == .rejected)
        #expect(error.phase == .endOfData)
        #expect(error.isRetryable)
        #expect(!error.isOutcomeUnknown)
        #expect(error.reply?.code == 451)
        #expect(error.reply?.enhancedCode == EnhancedStatusCode(statusClass: 4, subject: 3, detail: 0))
        #expect(error.reply?.text == "Try again later")
        #expect(error.recipients.map(\.status) == [.temporaryFailure])
    }

    @Test func unreachableServerIsRetryable() async throws {
        let port = try ScriptedServer.closedPort()
        let mailer = Mailer(account: loopbackAccount(port: port))

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }

        #expect(error.kind == .connectionFailed)
        #expect(error.phase == .connect)
        #expect(error.isRetryable)
    }

    @Test func messageWithoutFromIsInvalid() async throws {
        var message = try makeMessage()
        message.from = []
        let mailer = Mailer(transport: InMemoryTransport())

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(message)
        }

        #expect(error.kind == .invalidMessage)
        #expect(!error.isRetryable)
    }

    @Test func credentialsProviderFailureIsReported() async throws {
        struct TokenEndpointDown: Error {}
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        var account = loopbackAccount(port: server.port)
        account.credentialsProvider = { throw TokenEndpointDown() }
        let mailer = Mailer(account: account)

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }

        #expect(error.kind == .credentialsUnavailable)
        #expect(error.isRetryable)
        #expect(error.detail.contains("TokenEndpointDown"))
    }
}
