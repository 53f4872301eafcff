import Dispatch
import Foundation
import SMTPClient
import Synchronization

/// A transport that pipes each message into a sendmail-compatible program, such as
/// `/usr/sbin/sendmail`, msmtp or `outbox sendmail`.
///
/// The program runs without a shell, as `PROGRAM -i -f SENDER -- RECIPIENT...`, with the message on
/// its standard input. Before it runs, every envelope address is checked: one that starts with "-"
/// (which the program could read as an option) or contains CR, LF or NUL is rejected with
/// `MailError.Kind.invalidEnvelope`. Exit status 0 means every recipient accepted the message.
/// Status 75 (`EX_TEMPFAIL`) is a temporary failure, and any other status a permanent one. When the
/// calling task is cancelled, the program is sent SIGTERM.
///
/// The first send sets SIGPIPE to be ignored in the whole process, so that a program that exits
/// before reading all of its input makes the write fail instead of killing the process.
public struct SendmailTransport: MailTransport {
    /// The program to run.
    public let executable: URL
    /// Arguments placed before `-i -f SENDER -- RECIPIENT...`, such as `["-C", "/etc/msmtprc"]`.
    public let leadingArguments: [String]

    /// Creates a transport that runs `executable`. Default: `/usr/sbin/sendmail`.
    public init(executable: URL = URL(fileURLWithPath: "/usr/sbin/sendmail"), leadingArguments: [String] = []) {
        self.executable = executable
        self.leadingArguments = leadingArguments
    }

    public func send(_ message: OutgoingMessage, envelope: Envelope) async throws(MailError) -> SendResult {
        try Self.validate(envelope)
        if Task.isCancelled { throw MailError.cancelled }
        _ = Self.ignoreBrokenPipes
        var arguments = leadingArguments + ["-i"]
        if !envelope.sender.isEmpty {
            arguments += ["-f", envelope.sender]
        }
        arguments += ["--"] + envelope.recipients.map(\.address)

        let run = ProgramRun(executable: executable, arguments: arguments, content: message.content)
        let outcome = await withTaskCancellationHandler {
            await run.start()
        } onCancel: {
            run.terminate()
        }
        switch outcome {
        case .failedToStart(let reason):
            throw MailError.wholeMessage(
                .transportFailed, "starting \(executable.path) failed: \(reason)", envelope: envelope,
                isRetryable: true)
        case .exited(0, _):
            return .allAccepted(envelope)
        case .exited(let status, let errorOutput):
            if Task.isCancelled { throw MailError.cancelled }
            let temporary = status == 75
            var detail = "\(executable.lastPathComponent) exited with status \(status)"
            if !errorOutput.isEmpty {
                detail += ": \(errorOutput)"
            }
            throw MailError.wholeMessage(.transportFailed, detail, envelope: envelope, isRetryable: temporary)
        }
    }

    /// Sets SIGPIPE to be ignored, once.
    private static let ignoreBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// Rejects envelope addresses that the program could take for an option or that could end a
    /// line of its input or an argument.
    static func validate(_ envelope: Envelope) throws(MailError) {
        guard !envelope.recipients.isEmpty else {
            throw MailError(kind: .invalidEnvelope, detail: "the message has no recipients", isRetryable: false)
        }
        let addresses = [envelope.sender] + envelope.recipients.map(\.address)
        for address in addresses {
            if address.hasPrefix("-") {
                throw MailError.wholeMessage(
                    .invalidEnvelope, "the envelope address \"\(address)\" starts with \"-\"",
                    envelope: envelope, isRetryable: false)
            }
            if address.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) {
                throw MailError.wholeMessage(
                    .invalidEnvelope,
                    "the envelope address \(address.debugDescription) contains CR, LF or NUL",
                    envelope: envelope, isRetryable: false)
            }
        }
    }
}

/// One run of the program: the message written to its standard input and its standard error
/// collected, on threads of their own, because `Process` and the pipes block.
private final class ProgramRun: @unchecked Sendable {
    enum Outcome: Sendable {
        case failedToStart(String)
        case exited(Int32, errorOutput: String)
    }

    private let process = Process()
    private let content: any MessageContent
    // `process` is started at most once; `lock` orders `terminate()` against the start.
    private let lock = NSLock()
    private var started = false
    private var terminated = false

    init(executable: URL, arguments: [String], content: any MessageContent) {
        process.executableURL = executable
        process.arguments = arguments
        self.content = content
    }

    func start() async -> Outcome {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: self.runBlocking())
            }
        }
    }

    func terminate() {
        lock.lock()
        defer { lock.unlock() }
        terminated = true
        if started, process.isRunning {
            process.terminate()
        }
    }

    private func runBlocking() -> Outcome {
        let input = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        lock.lock()
        if terminated {
            lock.unlock()
            return .exited(-1, errorOutput: "cancelled before it started")
        }
        do {
            try process.run()
            started = true
        } catch {
            lock.unlock()
            return .failedToStart("\(error)")
        }
        lock.unlock()

        // Standard error is read on another thread, so that a program that writes much of it
        // before reading its input cannot block both sides.
        let errorData = Mutex<Data>(Data())
        let reader = DispatchGroup()
        reader.enter()
        DispatchQueue.global().async {
            let data = errors.fileHandleForReading.readDataToEndOfFile()
            errorData.withLock { $0 = data }
            reader.leave()
        }

        do {
            var messageReader = try content.makeReader()
            while let chunk = try messageReader.read(maxLength: 64 * 1024) {
                try input.fileHandleForWriting.write(contentsOf: chunk)
            }
        } catch {
            // The program exited early or the content is unreadable, and the exit status shows which.
        }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        reader.wait()
        let text = String(decoding: errorData.withLock { $0 }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return .exited(process.terminationStatus, errorOutput: String(text.prefix(1000)))
    }
}
