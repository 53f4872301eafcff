import Foundation
import Synchronization
@testable import OutboxCLI

/// The result of running an `outbox` command in process.
struct CommandOutput {
    let status: Int32
    let output: String
    let error: String
}

/// Runs `outbox` with the arguments, feeding `input` on standard input.
func runOutbox(_ arguments: [String], input: String = "", environment: [String: String] = [:]) async throws -> CommandOutput {
    try await runOutbox(arguments, inputBytes: Array(input.utf8), environment: environment)
}

func runOutbox(_ arguments: [String], inputBytes: [UInt8], environment: [String: String] = [:]) async throws -> CommandOutput {
    let inputFile = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-test-\(UUID().uuidString)")
    try Data(inputBytes).write(to: inputFile)
    defer { try? FileManager.default.removeItem(at: inputFile) }
    let handle = try FileHandle(forReadingFrom: inputFile)
    defer { try? handle.close() }

    let output = Mutex("")
    let error = Mutex("")
    let console = Console(
        standardInput: handle,
        writeOutput: { text in output.withLock { $0 += text } },
        writeError: { text in error.withLock { $0 += text } },
        environment: environment)
    let status = await OutboxCommand.run(arguments, console: console)
    return CommandOutput(status: status, output: output.withLock { $0 }, error: error.withLock { $0 })
}
