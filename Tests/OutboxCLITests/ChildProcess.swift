import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The built `outbox` executable, or a shell, run as a child process for tests that kill it or run
/// several at once.
///
/// The child is killed with SIGKILL and reaped when the test stops it, when `wait` times out, and in
/// deinit, so that no child outlives its test on any path. Standard output and standard error go to
/// files that `output` and `errorOutput` read.
final class ChildProcess {
    enum Failure: Error, CustomStringConvertible {
        case executableNotFound(String)
        case timedOut(command: String, after: Duration, errorOutput: String)

        var description: String {
            switch self {
            case .executableNotFound(let path):
                "\(path) does not exist; build it first with 'swift build --build-tests'."
            case .timedOut(let command, let after, let errorOutput):
                "\(command) did not exit within \(after) and was killed. Its standard error:\n\(errorOutput)"
            }
        }
    }

    /// The `outbox` executable next to the test bundle, in the same build folder (.build/debug).
    static var outboxURL: URL {
        get throws {
            let testExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            let url = testExecutable.deletingLastPathComponent().appendingPathComponent("outbox")
            guard FileManager.default.isExecutableFile(atPath: url.path) else {
                throw Failure.executableNotFound(url.path)
            }
            return url
        }
    }

    let process = Process()
    let command: String
    private let directory: URL

    /// Starts `outbox` with `arguments`, with `input` as its standard input.
    convenience init(outbox arguments: [String], input: String? = nil) throws {
        try self.init(executable: Self.outboxURL, arguments: arguments, input: input)
    }

    /// Starts `executable`, with `input` as its standard input, or /dev/null when nil.
    init(executable: URL, arguments: [String], input: String? = nil) throws {
        command = ([executable.lastPathComponent] + arguments).joined(separator: " ")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-child-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let outputURL = directory.appendingPathComponent("stdout")
        let errorURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = try FileHandle(forWritingTo: errorURL)
        if let input {
            let inputURL = directory.appendingPathComponent("stdin")
            try Data(input.utf8).write(to: inputURL)
            process.standardInput = try FileHandle(forReadingFrom: inputURL)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    var pid: Int32 { process.processIdentifier }

    /// Sends SIGKILL unless the child has exited, and waits until it is reaped, so that its pid no
    /// longer counts as alive for the store's leases.
    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    /// Waits for the child to exit and returns its exit status.
    ///
    /// - Throws: `Failure.timedOut` after killing the child, when it runs longer than `timeout`.
    @discardableResult
    func wait(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                kill()
                throw Failure.timedOut(command: command, after: timeout, errorOutput: errorOutput)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Whether the child ended by a signal, such as the SIGKILL of `kill()`.
    var wasKilled: Bool {
        !process.isRunning && process.terminationReason == .uncaughtSignal
    }

    var output: String { read("stdout") }
    var errorOutput: String { read("stderr") }

    private func read(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
    }
}
