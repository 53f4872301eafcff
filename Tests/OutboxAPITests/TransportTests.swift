import Foundation
import Outbox
import Testing

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

    @Test func missingProgramIsReported() async throws {
        let mailer = Mailer(transport: SendmailTransport(executable: URL(fileURLWithPath: "/nonexistent/sendmail")))

        let error = try await #require(throws: MailError.self) {
            try await mailer.send(makeMessage())
        }

        #expect(error.kind == .transportFailed)
        #expect(error.detail.contains("/nonexistent/sendmail"))
    }
}
