import Foundation
import Synchronization

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

    /// The errno of the first failed write to the process's standard output, or nil.
    static let standardOutputFailure = Mutex<Int32?>(nil)

    /// The process's standard input, output and error.
    ///
    /// A failed write to standard output, as on a full disk or a closed pipe, is reported once on
    /// standard error, and the command goes on: `outbox send -v | head -1` must still report what
    /// happened to the mail. `OutboxCommand` then exits with EX_IOERR (74) from the commands whose
    /// output is their product, such as `compose`. A failed write to standard error is ignored,
    /// because there is nowhere left to report it.
    public static var standard: Console {
        Console(
            standardInput: .standardInput,
            writeOutput: { text in
                guard let code = write(text, to: STDOUT_FILENO) else { return }
                if standardOutputFailure.withLock({ failure in
                    defer { failure = failure ?? code }
                    return failure == nil
                }) {
                    _ = write("outbox: Writing to standard output failed: \(String(cString: strerror(code))).\n", to: STDERR_FILENO)
                }
            },
            writeError: { _ = write($0, to: STDERR_FILENO) },
            errorIsTerminal: isatty(STDERR_FILENO) == 1)
    }

    /// Writes all of `text` to a file descriptor, and returns the errno of a failed write, or nil.
    private static func write(_ text: String, to descriptor: Int32) -> Int32? {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += written
        }
        return nil
    }

    func print(_ line: String) {
        writeOutput(line + "\n")
    }

    func printError(_ line: String) {
        writeError(line + "\n")
    }
}
