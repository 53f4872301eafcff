import Foundation
import OutboxTestSupport
import Testing

/// A reader that exits early, as `outbox queue list | head -1` does, must not crash `outbox`.
/// Commands whose output is their product exit with EX_IOERR (74); `outbox send` keeps the status
/// that reports what happened to the mail.
@Suite struct ClosedOutputTests {
    /// Runs `outbox` with its standard output and standard error on pipes whose read ends are
    /// already closed, and returns how it ended.
    private func runWithClosedPipes(_ arguments: [String]) throws -> (status: Int32, reason: Process.TerminationReason) {
        let process = Process()
        process.executableURL = try ChildProcess.outboxURL
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try output.fileHandleForReading.close()
        try error.fileHandleForReading.close()
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason)
    }

    @Test func helpReportsClosedOutput() throws {
        // The help text is the command's product, so losing it is an I/O error, not a crash.
        let result = try runWithClosedPipes(["--help"])
        #expect(result.reason == .exit)
        #expect(result.status == 74)
    }

    @Test func errorSurvivesClosedOutput() throws {
        let result = try runWithClosedPipes(["queue", "frobnicate", "--store", "/nonexistent/outbox-closed-output"])
        #expect(result.reason == .exit)
        #expect(result.status != 0)
        #expect(result.status < 128)
    }
}

extension ClosedOutputTests {
    @Test func sendKeepsStatusWithClosedOutput() async throws {
        let sink = try ScriptedServer(esmtp: .init())
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-closed-\(UUID().uuidString)")
        try Data("From: a@example.test\nTo: b@example.test\nSubject: s\n\nbody\n".utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        // -v prints each recipient's reply to the closed standard output after the message was sent.
        let result = try runWithClosedPipes(
            ["send", "-t", "-v", "--host", "127.0.0.1", "--port", String(sink.port), "--file", input.path])
        #expect(result.reason == .exit)
        #expect(result.status == 0)
        #expect(sink.waitUntilFinished())
        #expect(sink.connections.first?.messages.count == 1)
    }
}
