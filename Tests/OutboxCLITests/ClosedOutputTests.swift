import Foundation
import Testing

/// A reader that exits early, as `outbox queue list | head -1` does, must not crash `outbox`: the
/// exit status has to say what happened to the mail, not that output could not be written.
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

    @Test func helpSurvivesClosedOutput() throws {
        let result = try runWithClosedPipes(["--help"])
        #expect(result.reason == .exit)
        #expect(result.status == 0)
    }

    @Test func errorSurvivesClosedOutput() throws {
        let result = try runWithClosedPipes(["queue", "frobnicate", "--store", "/nonexistent/outbox-closed-output"])
        #expect(result.reason == .exit)
        #expect(result.status != 0)
        #expect(result.status < 128)
    }
}
