import Foundation
import OutboxTestSupport
import Testing
@testable import OutboxCLI

private let message = "From: sender@example.test\nTo: rcpt@example.test\nSubject: sink\n\nbody\n"

/// `outbox send` against Postfix's smtp-sink set to fail at a chosen command.
@Suite(.enabled(if: SMTPSink.isAvailable, Comment(rawValue: SMTPSink.skipComment)), .timeLimit(.minutes(1)))
struct SMTPSinkTests {
    private func send(to sink: SMTPSink, _ extra: [String] = []) async throws -> CommandOutput {
        try await runOutbox(
            ["send", "-t", "--host", "127.0.0.1", "--port", String(sink.port), "--timeout", "10"] + extra,
            input: message)
    }

    @Test func acceptedBySink() async throws {
        let sink = try await SMTPSink.start()
        defer { sink.stop() }
        let result = try await send(to: sink)
        #expect(result.status == 0, "\(result.error)")
        try await sink.waitForMessages(count: 1)
    }

    @Test("421 in the middle of a session", arguments: ["MAIL", "RCPT", "DATA", "."])
    func serviceClosing(command: String) async throws {
        let sink = try await SMTPSink.start(options: ["-Q", command])
        defer { sink.stop() }
        let result = try await send(to: sink)
        #expect(result.status == ExitCode.temporaryFailure.rawValue, "\(result.error)")
        #expect(result.error.contains("421"))
        #expect(result.error.contains("temporary failure"))
    }

    @Test("connection closed without a reply", arguments: [
        ("RCPT", "RCPT"), ("DATA", "DATA"), (".", "end of data"),
    ])
    func closedWithoutReply(command: String, phase: String) async throws {
        let sink = try await SMTPSink.start(options: ["-q", command])
        defer { sink.stop() }
        let result = try await send(to: sink)
        #expect(result.status == ExitCode.temporaryFailure.rawValue, "\(result.error)")
        #expect(result.error.contains("\(phase) failed"))
        #expect(result.error.contains("closed the connection"))
    }

    @Test("rejections at each command", arguments: [
        ("-r", "MAIL", ExitCode.temporaryFailure), ("-f", "MAIL", ExitCode.unavailable),
        ("-r", "RCPT", ExitCode.temporaryFailure), ("-f", "RCPT", ExitCode.noUser),
        ("-f", ".", ExitCode.unavailable), ("-r", "EHLO", ExitCode.temporaryFailure),
    ])
    func rejections(flag: String, command: String, expected: ExitCode) async throws {
        let sink = try await SMTPSink.start(options: [flag, command])
        defer { sink.stop() }
        let result = try await send(to: sink)
        #expect(result.status == expected.rawValue, "\(result.error)")
    }

    @Test func withoutPipelining() async throws {
        let sink = try await SMTPSink.start(options: ["-p"])
        defer { sink.stop() }
        let result = try await send(to: sink, ["--debug"])
        #expect(result.status == 0, "\(result.error)")
        #expect(!result.error.contains("PIPELINING"))
        try await sink.waitForMessages(count: 1)
    }

    @Test func heloWhenEsmtpDisabled() async throws {
        let sink = try await SMTPSink.start(options: ["-e"])
        defer { sink.stop() }
        let result = try await send(to: sink, ["--debug"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("C: HELO "))
        try await sink.waitForMessages(count: 1)
    }
}
