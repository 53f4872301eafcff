import Foundation
import Outbox
import Synchronization
import Testing

/// A transport that notes the file behind the message content, and its permissions, while it sends.
private final class ContentInspectingTransport: MailTransport {
    let fileURL = Mutex<URL?>(nil)
    let filePermissions = Mutex<Int?>(nil)

    func send(_ message: OutgoingMessage, envelope: Envelope) async throws(MailError) -> SendResult {
        if let file = message.content as? FileMessageContent {
            fileURL.withLock { $0 = file.url }
            let attributes = try? FileManager.default.attributesOfItem(atPath: file.url.path)
            filePermissions.withLock { $0 = attributes?[.posixPermissions] as? Int }
        }
        return SendResult(recipients: envelope.recipients.map { RecipientOutcome(address: $0.address, status: .accepted) })
    }
}

@Suite struct InMemoryTransportTests {
    @Test func recordsEnvelopeAndContent() async throws {
        let transport = InMemoryTransport()
        let mailer = Mailer(transport: transport)
        var message = try makeMessage(to: ["a@example.org"], subject: "recorded")
        message.bcc = [try MailAddress(parsing: "hidden@example.org")]

        let result = try await mailer.send(message)

        #expect(result.accepted.map(\.address) == ["a@example.org", "hidden@example.org"])
        let sent = try #require(transport.sentMessages.first)
        #expect(sent.envelope.sender == "sender@example.org")
        #expect(sent.envelope.recipients.map(\.address) == ["a@example.org", "hidden@example.org"])
        #expect(sent.text.contains("Subject: recorded\r\n"))
        #expect(!sent.text.contains("hidden@example.org"))
    }

    @Test func largeAttachmentSpoolsToFile() async throws {
        let folder = TemporaryFolder("outbox-large-attachment")
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
        let attachment = folder.url.appendingPathComponent("large.bin")
        let fileSize = 3 << 20
        try Data((0..<fileSize).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: attachment)
        let transport = InMemoryTransport()
        var message = try makeMessage(subject: "large")
        message.attachments = [Attachment(path: attachment.path)]
        let spoolNames = {
            try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)
                .filter { $0.hasPrefix("outbox-message-") }
        }
        let before = try spoolNames()

        _ = try await Mailer(transport: transport).send(message)
        let inspector = ContentInspectingTransport()
        _ = try await Mailer(transport: inspector).send(message)

        let spoolFile = try #require(inspector.fileURL.withLock { $0 })
        #expect(spoolFile.lastPathComponent.hasPrefix("outbox-message-"))
        #expect(inspector.filePermissions.withLock { $0 } == 0o600)
        #expect(!FileManager.default.fileExists(atPath: spoolFile.path))
        let sent = try #require(transport.sentMessages.first)
        // Base64 makes the file 4/3 as large, before line ends.
        #expect(sent.bytes.count > fileSize * 4 / 3)
        #expect(sent.text.contains("filename=large.bin"))
        #expect(try spoolNames() == before)
    }

    @Test func partialRejectionReturnsResult() async throws {
        let transport = InMemoryTransport()
        transport.reject("later@example.org", as: .temporaryFailure)
        let mailer = Mailer(transport: transport)

        let result = try await mailer.send(makeMessage(to: ["a@example.org", "later@example.org"]))

        #expect(result.accepted.map(\.address) == ["a@example.org"])
        #expect(result.rejected.map(\.status) == [.temporaryFailure])
        #expect(transport.sentMessages.count == 1)
    }

    @Test func configuredFailureIsThrown() async throws {
        let transport = InMemoryTransport()
        transport.failEverySend(with: MailError(kind: .connectionFailed, detail: "down", isRetryable: true))
        let mailer = Mailer(transport: transport)

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }

        #expect(error.kind == .connectionFailed)
        #expect(transport.sentMessages.isEmpty)
    }
}

@Suite struct FileTransportTests {
    @Test func writesPrivateCompleteFile() async throws {
        let folder = TemporaryFolder("outbox-file-transport")
        let transport = try FileTransport(directory: folder.url)
        let mailer = Mailer(transport: transport)

        let result = try await mailer.send(makeMessage(subject: "to a file"))

        let url = try #require(result.fileURL)
        #expect(url.pathExtension == "eml")
        let namePattern = /\d{8}T\d{6}Z\.\d{6}-[0-9A-F-]{36}\.eml/
        #expect(url.lastPathComponent.wholeMatch(of: namePattern) != nil, "file name: \(url.lastPathComponent)")
        #expect(url.deletingLastPathComponent().path == folder.url.path)
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text.contains("Subject: to a file\r\n"))
        #expect(text.contains("Body of to a file."))
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.url.path)
        #expect(names == [url.lastPathComponent])
        #expect(result.accepted.map(\.address) == ["rcpt@example.org"])
    }

    @Test func eachMessageGetsOwnFile() async throws {
        let folder = TemporaryFolder("outbox-file-transport")
        let mailer = Mailer(transport: try FileTransport(directory: folder.url))

        for index in 0..<5 {
            _ = try await mailer.send(makeMessage(subject: "message \(index)"))
        }

        let names = try FileManager.default.contentsOfDirectory(atPath: folder.url.path)
        #expect(names.count == 5)
        #expect(names.allSatisfy { $0.hasSuffix(".eml") })
    }
}

@Suite struct SendmailTransportTests {
    /// Writes a program that records its arguments and input in `folder` and exits with `status`.
    private func recordingProgram(in folder: URL, status: Int32 = 0, errorText: String = "") throws -> URL {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let program = folder.appendingPathComponent("fake-sendmail")
        let script = """
            #!/bin/sh
            for argument in "$@"; do printf '%s\\n' "$argument"; done > '\(folder.path)/arguments'
            cat > '\(folder.path)/input'
            printf '%s' '\(errorText)' >&2
            exit \(status)

            """
        try script.write(to: program, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: program.path)
        return program
    }

    @Test func passesEnvelopeAsArguments() async throws {
        let folder = TemporaryFolder("outbox-sendmail")
        let program = try recordingProgram(in: folder.url)
        let mailer = Mailer(transport: SendmailTransport(executable: program, leadingArguments: ["-C", "a file"]))

        let result = try await mailer.send(makeMessage(to: ["a@example.org", "b@example.org"], subject: "piped"))

        #expect(result.accepted.count == 2)
        let arguments = try String(contentsOf: folder.url.appendingPathComponent("arguments"), encoding: .utf8)
        #expect(arguments == "-C\na file\n-i\n-f\nsender@example.org\n--\na@example.org\nb@example.org\n")
        let input = try String(contentsOf: folder.url.appendingPathComponent("input"), encoding: .utf8)
        #expect(input.contains("Subject: piped\r\n"))
    }

    @Test func rejectsOptionLikeAddress() async throws {
        let folder = TemporaryFolder("outbox-sendmail")
        let program = try recordingProgram(in: folder.url)
        let transport = SendmailTransport(executable: program)
        let message = try OutgoingMessage(bytes: Array("Subject: x\r\n\r\nbody\r\n".utf8))

        for address in ["-oQ/tmp/x@example.org", "a@example.org\r\nRCPT TO:<b@example.org>", "a\0@example.org"] {
            let error = try await #require(throws: MailError.self) {
                try await transport.send(message, envelope: Envelope(sender: "s@example.org", recipients: [address]))
            }
            #expect(error.kind == .invalidEnvelope)
            #expect(!error.isRetryable)
        }
        let senderError = try await #require(throws: MailError.self) {
            try await transport.send(message, envelope: Envelope(sender: "-bs", recipients: ["a@example.org"]))
        }
        #expect(senderError.kind == .invalidEnvelope)
        #expect(!FileManager.default.fileExists(atPath: folder.url.appendingPathComponent("arguments").path))
    }

    @Test func temporaryExitStatusIsRetryable() async throws {
        let folder = TemporaryFolder("outbox-sendmail")
        let program = try recordingProgram(in: folder.url, status: 75, errorText: "queue full")
        let mailer = Mailer(transport: SendmailTransport(executable: program))

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }

        #expect(error.kind == .transportFailed)
        #expect(error.isRetryable)
        #expect(error.detail.contains("status 75"))
        #expect(error.detail.contains("queue full"))
    }

    @Test func otherExitStatusIsPermanent() async throws {
        let folder = TemporaryFolder("outbox-sendmail")
        let program = try recordingProgram(in: folder.url, status: 67)
        let mailer = Mailer(transport: SendmailTransport(executable: program))

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }

        #expect(error.kind == .transportFailed)
        #expect(!error.isRetryable)
        #expect(error.recipients.map(\.status) == [.permanentFailure])
    }

    @Test func cancellationStopsProgram() async throws {
        let folder = TemporaryFolder("outbox-sendmail")
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
        let program = folder.url.appendingPathComponent("slow-sendmail")
        try "#!/bin/sh\nexec sleep 20\n".write(to: program, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: program.path)
        let mailer = Mailer(transport: SendmailTransport(executable: program))
        let message = try makeMessage()

        let started = ContinuousClock.now
        let task = Task { () async -> MailError? in
            do {
                _ = try await mailer.send(message)
                return nil
            } catch {
                return error as? MailError
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let error = await task.value
        let elapsed = ContinuousClock.now - started

        #expect(error?.kind == .cancelled)
        #expect(elapsed < .seconds(5))
    }

    @Test func programStartsWithSignalsUnblocked() async throws {
        let folder = TemporaryFolder("outbox-sendmail")
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
        let program = folder.url.appendingPathComponent("status-sendmail")
        let script = "#!/bin/sh\ngrep -E '^Sig(Blk|Ign)' /proc/self/status > '\(folder.url.path)/status'\ncat > /dev/null\n"
        try script.write(to: program, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: program.path)
        let mailer = Mailer(transport: SendmailTransport(executable: program))

        _ = try await mailer.send(makeMessage())

        let status = try String(contentsOf: folder.url.appendingPathComponent("status"), encoding: .utf8)
        let fields = Dictionary(uniqueKeysWithValues: status.split(separator: "\n").map { line in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts[0]), UInt64(parts[1].trimmingCharacters(in: .whitespaces), radix: 16) ?? 0)
        })
        #expect(fields["SigBlk"] == 0)
        // SIGPIPE is signal 13, bit 12 of the mask.
        #expect((fields["SigIgn"] ?? 0) & (1 << 12) == 0)
    }

    @Test func earlyExitDoesNotKillProcess() async throws {
        // The program exits without reading a message larger than a pipe's buffer (64 KiB on
        // Linux), so the write fails with EPIPE, which must not end the test process.
        let folder = TemporaryFolder("outbox-sendmail")
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
        let program = folder.url.appendingPathComponent("exiting-sendmail")
        try "#!/bin/sh\nexit 75\n".write(to: program, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: program.path)
        let transport = SendmailTransport(executable: program)
        let line = Array(String(repeating: "a", count: 76).utf8) + [13, 10]
        let body = Array(repeating: line, count: 4096).flatMap { $0 }
        let large = try OutgoingMessage(bytes: Array("Subject: large\r\n\r\n".utf8) + body)

        let error = try await #require(throws: MailError.self) {
            try await transport.send(large, envelope: Envelope(sender: "s@example.org", recipients: ["a@example.org"]))
        }

        #expect(error.kind == .transportFailed)
        #expect(error.isRetryable)
    }

    @Test func missingProgramIsReported() async throws {
        let mailer = Mailer(transport: SendmailTransport(executable: URL(fileURLWithPath: "/nonexistent/sendmail")))

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }

        #expect(error.kind == .transportFailed)
        #expect(error.detail.contains("/nonexistent/sendmail"))
    }
}
