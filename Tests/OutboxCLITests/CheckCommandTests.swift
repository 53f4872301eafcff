import Foundation
import OutboxTestSupport
import Testing
@testable import OutboxCLI

@Suite(.timeLimit(.minutes(1)))
struct CheckCommandTests {
    @Test func reportsExtensionsWithoutSending() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.capabilities = ["PIPELINING", "SIZE 1000", "8BITMIME"]
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        defer { server.stop() }
        let result = try await runOutbox(["check", "--host", "127.0.0.1", "--port", String(server.port)])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("Greeting: 220 scripted.test ESMTP ready"))
        #expect(result.output.contains("Extensions: 8BITMIME, PIPELINING, SIZE 1000"))
        #expect(result.output.contains("TLS: none"))
        #expect(result.output.contains("Login: not tried"))
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        #expect(!lines.contains { $0.hasPrefix("MAIL") })
        #expect(lines.last == "QUIT")
    }

    @Test func requiredTLSWithoutOfferFails() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(["check", "--host", "127.0.0.1", "--port", String(server.port), "--tls", "starttls"])
        #expect(result.status == ExitCode.temporaryFailure.rawValue)
        #expect(result.error.contains("did not offer STARTTLS"))
        #expect(result.error.contains("--tls implicit"))
    }

    @Test("option errors", arguments: [
        (["--tls", "sometimes"], "not one of"),
        (["--tls-fingerprint", "12:34"], "64 hex digits"),
        (["--tls-cert-file", "/tmp/c.pem"], "go together"),
        (["--tls-trust-file", "/tmp/a.pem", "--tls-certcheck", "off"], "Choose one"),
        (["--password-env", "X"], "needs --user"),
        (["--user", "alice"], "password source"),
        (["--user", "alice", "--password-env", "X", "--password-file", "/tmp/p"], "one password source"),
        (["extra"], "takes no arguments"),
    ])
    func optionErrors(arguments: [String], mention: String) async throws {
        let result = try await runOutbox(["check", "--port", "1"] + arguments)
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(result.error.contains(mention), "\(result.error)")
    }
}

@Suite(.enabled(if: AIOSMTPDServer.isAvailable, Comment(rawValue: AIOSMTPDServer.skipComment)), .timeLimit(.minutes(1)))
struct PasswordSourceTests {
    private let password = "pa55-wörd"

    private func startServer() async throws -> AIOSMTPDServer {
        try await AIOSMTPDServer.start(options: .init(authentication: TestServerCredentials(user: "alice", password: password)))
    }

    private func check(_ server: AIOSMTPDServer, _ source: [String], environment: [String: String] = [:]) async throws -> CommandOutput {
        try await runOutbox(
            ["check", "--host", "127.0.0.1", "--port", String(server.port), "--user", "alice"] + source,
            environment: environment)
    }

    @Test func passwordFromCommand() async throws {
        let server = try await startServer()
        defer { server.stop() }
        let result = try await check(server, ["--password-command", "printf '%s\\n' '\(password)'"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("Login: succeeded as alice"))
    }

    @Test func passwordFromEnvironment() async throws {
        let server = try await startServer()
        defer { server.stop() }
        let result = try await check(server, ["--password-env", "MAIL_PASSWORD"], environment: ["MAIL_PASSWORD": password])
        #expect(result.status == 0, "\(result.error)")
    }

    @Test func passwordFileReadableByOthersWarns() async throws {
        let server = try await startServer()
        defer { server.stop() }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-pw-\(UUID().uuidString)")
        let created = FileManager.default.createFile(
            atPath: file.path, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o644])
        try #require(created)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await check(server, ["--password-file", file.path])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("can be read by other users"))
        #expect(result.error.contains("chmod 600"))
        #expect(!result.error.contains(password))
    }

    @Test func failingCommandIsConfigurationError() async throws {
        let server = try await startServer()
        defer { server.stop() }
        let result = try await check(server, ["--password-command", "exit 3"])
        #expect(result.status == ExitCode.configuration.rawValue)
        #expect(result.error.contains("exit status 3"))
    }

    @Test func missingVariableIsConfigurationError() async throws {
        let server = try await startServer()
        defer { server.stop() }
        let result = try await check(server, ["--password-env", "OUTBOX_UNSET_VARIABLE"])
        #expect(result.status == ExitCode.configuration.rawValue)
        #expect(result.error.contains("OUTBOX_UNSET_VARIABLE"))
    }
}
