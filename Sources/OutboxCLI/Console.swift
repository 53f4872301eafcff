import Foundation

/// The input, output and environment of a command, so that tests can run commands in process.
public struct Console: Sendable {
    public var standardInput: FileHandle
    public var writeOutput: @Sendable (String) -> Void
    public var writeError: @Sendable (String) -> Void
    /// Whether standard error is a terminal, which decides whether progress is shown.
    public var errorIsTerminal: Bool
    /// The environment variables, such as the one `--password-env` names.
    public var environment: [String: String]

    public init(
        standardInput: FileHandle, writeOutput: @escaping @Sendable (String) -> Void,
        writeError: @escaping @Sendable (String) -> Void, errorIsTerminal: Bool = false,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.standardInput = standardInput
        self.writeOutput = writeOutput
        self.writeError = writeError
        self.errorIsTerminal = errorIsTerminal
        self.environment = environment
    }

    /// The process's standard input, output and error.
    public static var standard: Console {
        Console(
            standardInput: .standardInput,
            // FileHandle.write(_: Data) traps on an error such as EPIPE, which a reader that exits
            // early (`outbox queue list | head`) causes. Output that cannot be written is dropped,
            // so the exit status still tells what happened to the mail.
            writeOutput: { try? FileHandle.standardOutput.write(contentsOf: Data($0.utf8)) },
            writeError: { try? FileHandle.standardError.write(contentsOf: Data($0.utf8)) },
            errorIsTerminal: isatty(STDERR_FILENO) == 1)
    }

    func print(_ line: String) {
        writeOutput(line + "\n")
    }

    func printError(_ line: String) {
        writeError(line + "\n")
    }
}
