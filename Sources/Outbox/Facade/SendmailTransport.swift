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

    /// Runs `body` with SIGPIPE blocked on this thread, so that writing to a program that exited
    /// fails with EPIPE instead of ending the process. A SIGPIPE that the writes raised is consumed
    /// before the signal mask is restored. Ignoring SIGPIPE process-wide would instead be inherited
    /// by every program the process starts.
    private static func withSIGPIPEBlocked(_ body: () -> Void) {
        var pipeSignal = sigset_t()
        var previousMask = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previousMask)
        body()
        var pending = sigset_t()
        sigpending(&pending)
        if sigismember(&pending, SIGPIPE) == 1, sigismember(&previousMask, SIGPIPE) == 0 {
            var noWait = timespec(tv_sec: 0, tv_nsec: 0)
            _ = sigtimedwait(&pipeSignal, nil, &noWait)
        }
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
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
        // The program inherits this thread's signal mask, and dispatch threads block signals such
        // as SIGTERM, so the program would ignore `terminate()`. The mask is cleared for the start.
        var allSignals = sigset_t()
        var previousMask = sigset_t()
        sigemptyset(&allSignals)
        pthread_sigmask(SIG_SETMASK, &allSignals, &previousMask)
        do {
            try process.run()
            started = true
        } catch {
            pthread_sigmask(SIG_SETMASK, &previousMask, nil)
            lock.unlock()
            return .failedToStart("\(error)")
        }
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
        lock.unlock()

        // Standard error is read on another thread, so that a program that writes much of it
        // before reading its input cannot block both sides.
        let errorData = Mutex<Data>(Data())
        let reader = DispatchGroup()
        reader.enter()
        DispatchQueue.global().async {
            while true {
                let chunk = errors.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                errorData.withLock { $0.append(chunk) }
            }
            reader.leave()
        }

        Self.withSIGPIPEBlocked {
            do {
                var messageReader = try content.makeReader()
                while let chunk = try messageReader.read(maxLength: 64 * 1024) {
                    try input.fileHandleForWriting.write(contentsOf: chunk)
                }
            } catch {
                // The program exited early or the content is unreadable, and the exit status shows which.
            }
            try? input.fileHandleForWriting.close()
        }
        process.waitUntilExit()
        // A child of the program that outlives it keeps standard error open, so the rest of the
        // output is awaited for one second only. The reading thread ends when that child exits.
        _ = reader.wait(timeout: .now() + 1)
        let text = String(decoding: errorData.withLock { $0 }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return .exited(process.terminationStatus, errorOutput: String(text.prefix(1000)))
    }
}
