import Foundation
import OutboxTestSupport
import Testing
@testable import OutboxCLI

private func serverOptions(_ server: ScriptedServer) -> [String] {
    ["--host", "127.0.0.1", "--port", String(server.port), "--helo", "client.example.test", "--timeout", "5"]
}

private let simpleMessage = """
    From: Alice <alice@example.test>
    To: Bob <bob@example.test>, carol@example.test
    Cc: "Dan, the man" <dan@example.test>
    Bcc: hidden@example.test
    Subject: Hello

    .leading dot
    Body.

    """

@Suite(.timeLimit(.minutes(1)))
struct SendCommandTests {
    @Test func recipientsFromHeadersWithT() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(["send", "-t"] + serverOptions(server), input: simpleMessage)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let record = try #require(server.connections.first)
        #expect(record.lines.contains { $0.hasPrefix("MAIL FROM:<alice@example.test>") })
        let recipients = record.lines.filter { $0.hasPrefix("RCPT TO:") }
        #expect(recipients == [
            "RCPT TO:<bob@example.test>", "RCPT TO:<carol@example.test>", "RCPT TO:<dan@example.test>",
            "RCPT TO:<hidden@example.test>",
        ])
    }

    @Test func bccNeverSent() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(["send", "-t"] + serverOptions(server), input: simpleMessage)
        #expect(result.status == 0)
        #expect(server.waitUntilFinished())
        let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
        #expect(!data.contains("Bcc"))
        #expect(!data.contains("hidden@example.test"))
        #expect(data.hasPrefix("From: Alice <alice@example.test>\r\nTo: Bob"))
        #expect(data.contains("\r\nSubject: Hello\r\n\r\n..leading dot\r\nBody.\r\n"))
    }

    @Test func internationalDomainSentAsALabels() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(
            ["send", "-f", "alice@bücher.example"] + serverOptions(server) + ["bob@bücher.example"],
            input: simpleMessage)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        #expect(lines.contains { $0.hasPrefix("MAIL FROM:<alice@xn--bcher-kva.example>") })
        #expect(lines.contains("RCPT TO:<bob@xn--bcher-kva.example>"))
    }

    @Test func invalidInternationalDomainRejected() async throws {
        let result = try await runOutbox(["send", "--host", "127.0.0.1", "bob@\u{0301}abc.example"], input: simpleMessage)
        #expect(result.status == ExitCode.dataError.rawValue, "\(result.error)")
        #expect(result.error.contains("not a valid internationalized domain name"))
    }

    @Test func argumentsAndEnvelopeSender() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(
            ["send", "-f", "bounce@example.test"] + serverOptions(server) + ["x@example.test, Y <y@example.test>"],
            input: simpleMessage)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        #expect(lines.contains { $0.hasPrefix("MAIL FROM:<bounce@example.test>") })
        #expect(lines.filter { $0.hasPrefix("RCPT") } == ["RCPT TO:<x@example.test>", "RCPT TO:<y@example.test>"])
    }

    @Test func nullSender() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(["send", "-f", "<>"] + serverOptions(server) + ["x@example.test"], input: simpleMessage)
        #expect(result.status == 0)
        #expect(server.waitUntilFinished())
        #expect(try #require(server.connections.first).lines.contains { $0.hasPrefix("MAIL FROM:<> ") })
    }

    @Test func loneDotEndsInputUnlessI() async throws {
        let input = "From: a@example.test\n\nfirst\n.\nafter the dot\n"
        for (flags, expectAfter) in [([String](), false), (["-i"], true), (["-oi"], true)] {
            let server = try ScriptedServer(script: [.playESMTP(.init())])
            defer { server.stop() }
            let result = try await runOutbox(["send"] + flags + serverOptions(server) + ["b@example.test"], input: input)
            #expect(result.status == 0)
            #expect(server.waitUntilFinished())
            let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
            #expect(data.contains("after the dot") == expectAfter, "flags \(flags)")
        }
    }

    @Test func partialRejectionExitsNoUser() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.recipientReplies = ["carol@example.test": "550 5.1.1 <carol@example.test>: unknown"]
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        defer { server.stop() }
        let result = try await runOutbox(["send", "-t"] + serverOptions(server), input: simpleMessage)
        #expect(result.status == ExitCode.noUser.rawValue)
        #expect(result.error.contains("<carol@example.test>: 550 5.1.1"))
        #expect(result.error.components(separatedBy: "<carol@example.test>: 550").count == 2, "listed once")
        #expect(server.waitUntilFinished())
        #expect(server.connections.first?.messages.count == 1)
    }

    @Test("exit status by failure", arguments: [
        ("421 4.3.2 busy", "greeting", ExitCode.temporaryFailure),
        ("554 5.7.1 go away", "greeting", ExitCode.unavailable),
        ("550 5.7.1 sender denied", "mail", ExitCode.unavailable),
        ("451 4.3.0 try later", "mail", ExitCode.temporaryFailure),
        ("550 5.1.1 no such user", "rcpt", ExitCode.noUser),
        ("452 4.2.2 mailbox full", "rcpt", ExitCode.temporaryFailure),
        ("554 5.6.0 content rejected", "message", ExitCode.unavailable),
        ("452 4.3.1 out of space", "message", ExitCode.temporaryFailure),
    ])
    func exitStatusByFailure(reply: String, phase: String, expected: ExitCode) async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        switch phase {
        case "greeting": behavior.greeting = reply
        case "mail": behavior.mailReply = reply
        case "rcpt": behavior.defaultRecipientReply = reply
        default: behavior.messageReply = reply
        }
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        defer { server.stop() }
        let result = try await runOutbox(["send"] + serverOptions(server) + ["b@example.test"], input: simpleMessage)
        #expect(result.status == expected.rawValue, "\(result.error)")
        #expect(result.error.contains(String(reply.prefix(3))))
    }

    @Test func overlongLineFailsBeforeConnecting() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let input = "From: a@example.test\n\nshort\n" + String(repeating: "x", count: 1000) + "\n"
        let result = try await runOutbox(["send"] + serverOptions(server) + ["b@example.test"], input: input)
        #expect(result.status == ExitCode.dataError.rawValue)
        #expect(result.error.contains("Line 4"))
        #expect(server.connections.isEmpty)
    }

    @Test func eightBitWithout8BitMIMEExplains() async throws {
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.capabilities = ["PIPELINING"]
        let server = try ScriptedServer(script: [.playESMTP(behavior)])
        defer { server.stop() }
        let result = try await runOutbox(
            ["send"] + serverOptions(server) + ["b@example.test"], input: "From: a@example.test\n\ncafé\n")
        #expect(result.status == ExitCode.unavailable.rawValue)
        #expect(result.error.contains("8BITMIME"))
        #expect(server.waitUntilFinished())
        #expect(!(server.connections.first?.lines.contains { $0.hasPrefix("MAIL") } ?? true))
    }

    @Test func debugPrintsTranscript() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(["send", "--debug"] + serverOptions(server) + ["b@example.test"], input: simpleMessage)
        #expect(result.status == 0)
        #expect(result.error.contains("C: EHLO client.example.test"))
        #expect(result.error.contains("S: 250 2.0.0 Message accepted"))
        #expect(result.error.contains("C: QUIT"))
    }

    @Test func injectedRecipientRejected() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(
            ["send"] + serverOptions(server) + ["b@example.test\r\nRCPT TO:<evil@example.test>"], input: simpleMessage)
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(server.connections.isEmpty)
    }

    @Test func injectedHeaderAddressRejected() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let input = "From: a@example.test\nTo: b@example.test\r\n RCPT TO:<evil@example.test>\n\nbody\n"
        let result = try await runOutbox(["send", "-t"] + serverOptions(server), input: input)
        #expect(result.status == ExitCode.dataError.rawValue, "\(result.error)")
        #expect(server.connections.isEmpty || !(server.connections.first?.lines.contains { $0.contains("evil") } ?? false))
    }

    @Test("usage errors", arguments: [
        (["send", "--port", "0"], "port"),
        (["send", "--port", "70000"], "port"),
        (["send", "--timeout", "-1"], "--timeout"),
        (["send", "--bogus"], "--bogus"),
    ])
    func usageErrors(arguments: [String], mention: String) async throws {
        let result = try await runOutbox(arguments + ["b@example.test"], input: simpleMessage)
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(result.error.contains(mention))
    }

    @Test func noRecipientsIsUsageError() async throws {
        let result = try await runOutbox(["send", "--port", "1"], input: simpleMessage)
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(result.error.contains("No recipients"))
    }

    @Test func noSenderIsUsageError() async throws {
        let result = try await runOutbox(["send", "--port", "1", "b@example.test"], input: "Subject: x\n\nbody\n")
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(result.error.contains("-f"))
    }

    @Test func messageFileSentAndKept() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-file-\(UUID().uuidString).eml")
        try Data(simpleMessage.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await runOutbox(["send", "--file", file.path] + serverOptions(server) + ["b@example.test"])
        #expect(result.status == 0, "\(result.error)")
        #expect(FileManager.default.fileExists(atPath: file.path))
        #expect(server.waitUntilFinished())
        let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
        #expect(data.contains("Subject: Hello\r\n"))
    }

    @Test func missingFileIsNoInput() async throws {
        let result = try await runOutbox(["send", "--file", "/nonexistent/message.eml", "b@example.test"])
        #expect(result.status == ExitCode.noInput.rawValue)
        #expect(result.error.contains("/nonexistent/message.eml"))
    }

    @Test func helpListsOptions() async throws {
        let result = try await runOutbox(["send", "--help"])
        #expect(result.status == 0)
        for option in ["-t", "-i, -oi", "-f ADDRESS", "--host", "--port", "--helo", "--debug", "Default: 25"] {
            #expect(result.output.contains(option), "help lacks \(option)")
        }
    }
}

struct DotLineDetectorTests {
    @Test("dot line across chunk boundaries", arguments: [1, 2, 3, 100])
    func dotLineAcrossChunks(chunkSize: Int) {
        let input = Array("a\n.x\n..\n.\r\nafter".utf8)
        var detector = DotLineDetector(enabled: true)
        var kept: [UInt8] = []
        var ended = false
        for start in stride(from: 0, to: input.count, by: chunkSize) where !ended {
            let result = detector.consume(Array(input[start..<min(start + chunkSize, input.count)]))
            kept += result.kept
            ended = result.ended
        }
        kept += detector.finish()
        #expect(ended)
        #expect(String(decoding: kept, as: UTF8.self) == "a\n.x\n..\n")
    }

    @Test func dotAtEndWithoutNewlineKept() {
        var detector = DotLineDetector(enabled: true)
        let result = detector.consume(Array("a\n.".utf8))
        #expect(!result.ended)
        #expect(result.kept + detector.finish() == Array("a\n.".utf8))
    }

    @Test func disabledKeepsEverything() {
        var detector = DotLineDetector(enabled: false)
        let result = detector.consume(Array("a\n.\nb".utf8))
        #expect(!result.ended)
        #expect(result.kept == Array("a\n.\nb".utf8))
    }
}

/// Inputs found by adversarial testing; each must fail cleanly with nothing sent.
@Suite(.timeLimit(.minutes(1)))
struct HostileInputTests {
    private func serverOptions(_ server: ScriptedServer) -> [String] {
        ["--host", "127.0.0.1", "--port", String(server.port), "--timeout", "5"]
    }

    @Test func bareCRInHeaderRejected() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let input = "From: a@example.test\nTo: b@example.test\nSubject: hi\rBcc: hidden@example.test\n\nbody\n"
        let result = try await runOutbox(["send", "-t"] + serverOptions(server), input: input)
        #expect(result.status == ExitCode.dataError.rawValue)
        #expect(result.error.contains("CR without LF"))
        #expect(server.connections.isEmpty)
    }

    @Test func nulInBodyRejected() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let input = Array("From: a@example.test\n\nhello\n".utf8) + [0] + Array(".\nMAIL FROM:<x@example.test>\n".utf8)
        let result = try await runOutbox(["send", "-i"] + serverOptions(server) + ["b@example.test"], inputBytes: input)
        #expect(result.status == ExitCode.dataError.rawValue)
        #expect(result.error.contains("NUL"))
        #expect(server.connections.isEmpty)
    }

    @Test func emptyBccAccepted() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let input = "From: a@example.test\nTo: b@example.test\nBcc:\nCc:  \n\nbody\n"
        let result = try await runOutbox(["send", "-t"] + serverOptions(server), input: input)
        #expect(result.status == 0, "\(result.error)")
    }

    @Test("rejected before connecting", arguments: [
        (["--timeout", "1e300"], "seconds"),
        (["--deadline", "9.3e15"], "seconds"),
        (["--host="], "host"),
        (["--helo", "bad name"], "--helo"),
        (["--helo", "a\r\nMAIL FROM:<x@example.test>"], "--helo"),
        (["--auth", "FOO", "--user", "u", "--password-env", "X"], "FOO"),
        (["--tls-trust-file", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
        (["--user", "u\r\nRSET", "--password-env", "X"], "control character"),
    ])
    func rejectedBeforeConnecting(arguments: [String], mention: String) async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(
            ["send", "--port", String(server.port)] + arguments + ["b@example.test"],
            input: "From: a@example.test\n\nbody\n", environment: ["X": "secret"])
        #expect(result.status == ExitCode.usage.rawValue, "\(result.error)")
        #expect(result.error.contains(mention), "\(result.error)")
        #expect(!result.error.contains("\r"))
        #expect(server.connections.isEmpty)
    }

    @Test func tlsOptionTurnsTLSOnForLoopback() async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let result = try await runOutbox(
            ["send", "--tls-certcheck", "off"] + serverOptions(server) + ["b@example.test"],
            input: "From: a@example.test\n\nbody\n")
        #expect(result.status == ExitCode.temporaryFailure.rawValue)
        #expect(result.error.contains("did not offer STARTTLS"))
        #expect(server.waitUntilFinished())
        #expect(!(server.connections.first?.lines.contains { $0.hasPrefix("MAIL") } ?? true))
    }

    @Test func directoryAsFileIsNoInput() async throws {
        let result = try await runOutbox(["send", "--file", FileManager.default.temporaryDirectory.path, "b@example.test"])
        #expect(result.status == ExitCode.noInput.rawValue)
        #expect(result.error.contains("is a directory"))
    }

    @Test func emptyPasswordFileRejected() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-empty-\(UUID().uuidString)")
        let created = FileManager.default.createFile(atPath: file.path, contents: Data(), attributes: [.posixPermissions: 0o600])
        try #require(created)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await runOutbox(
            ["send", "--port", "1", "--user", "u", "--password-file", file.path, "b@example.test"],
            input: "From: a@example.test\n\nbody\n")
        #expect(result.status == ExitCode.configuration.rawValue)
        #expect(result.error.contains("is empty"))
    }

    @Test func helpForUnknownCommand() async throws {
        let result = try await runOutbox(["help", "nope"])
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(result.error.contains("unknown command"))
    }
}
