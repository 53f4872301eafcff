import Foundation
import MailMessage
import OutboxTestSupport
import Testing
@testable import OutboxCLI

/// Runs a Python script with Debian's /usr/bin/python3 on `input`, which the script reads from the file
/// named by `sys.argv[1]`, and returns what it prints. Python's email package is the independent reader.
private func runPython(_ script: String, input: [UInt8]) throws -> [UInt8] {
    let directory = FileManager.default.temporaryDirectory
    let inputFile = directory.appendingPathComponent("compose-oracle-\(UUID().uuidString)")
    let outputFile = directory.appendingPathComponent("compose-oracle-out-\(UUID().uuidString)")
    try Data(input).write(to: inputFile)
    _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: inputFile)
        try? FileManager.default.removeItem(at: outputFile)
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = ["-c", script, inputFile.path]
    process.standardOutput = try FileHandle(forWritingTo: outputFile)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "python3 failed")
    return Array(try Data(contentsOf: outputFile))
}

/// Prints every part of a message as JSON: type, charset, transfer encoding, filename and decoded text
/// or payload size and SHA-256, plus the Subject, To, Cc and Bcc fields decoded.
private let describeScript = """
    import sys, email, email.policy, json, hashlib
    message = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
    parts = []
    for part in message.walk():
        entry = {'type': part.get_content_type(), 'charset': part.get_content_charset(),
                 'cte': part.get('Content-Transfer-Encoding'), 'filename': part.get_filename(),
                 'cid': part.get('Content-ID'), 'defects': len(part.defects)}
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            entry['sha256'] = hashlib.sha256(payload).hexdigest()
            if part.get_content_maintype() == 'text' and part.get_filename() is None:
                entry['text'] = part.get_content().replace('\\r\\n', '\\n')
        parts.append(entry)
    fields = {name: str(message[name]) for name in ['Subject', 'To', 'Cc', 'Bcc', 'From', 'X-Priority', 'Disposition-Notification-To'] if message[name] is not None}
    print(json.dumps({'fields': fields, 'parts': parts}))
    """

private struct MessageView {
    let fields: [String: String]
    let parts: [[String: Any]]

    init(_ bytes: [UInt8]) throws {
        let json = try JSONSerialization.jsonObject(with: Data(try runPython(describeScript, input: bytes))) as? [String: Any]
        fields = json?["fields"] as? [String: String] ?? [:]
        parts = json?["parts"] as? [[String: Any]] ?? []
    }

    var types: [String] { parts.map { $0["type"] as? String ?? "?" } }

    func value(_ index: Int, _ key: String) -> String? { parts[index][key] as? String }
}

private func sha256(_ data: Data) throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID().uuidString)")
    try data.write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let script = "import sys, hashlib; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest(), end='')"
    return String(decoding: try runPython(script, input: Array(data)), as: UTF8.self)
}

/// A directory of files to attach: a PDF-like binary, a text file with a Cyrillic name, an image with a
/// Japanese name, an HTML body and a logo for it.
private struct AttachmentFiles {
    let directory: URL
    let binary: URL
    let cyrillicText: URL
    let japaneseImage: URL
    let html: URL
    let logo: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("compose-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        binary = directory.appendingPathComponent("report 2026.pdf")
        try Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) }).write(to: binary)
        cyrillicText = directory.appendingPathComponent("отчёт.txt")
        try Data("Строка один\nLine two\n".utf8).write(to: cyrillicText)
        japaneseImage = directory.appendingPathComponent("写真.png")
        try Data([0x89, 0x50, 0x4E, 0x47] + (0..<5000).map { UInt8(truncatingIfNeeded: $0) }).write(to: japaneseImage)
        html = directory.appendingPathComponent("body.html")
        try Data("<p>Grüße <img src=\"cid:logo.png\"></p>\n".utf8).write(to: html)
        logo = directory.appendingPathComponent("logo.png")
        try Data([0x89, 0x50, 0x4E, 0x47, 1, 2, 3]).write(to: logo)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}

struct ComposeCommandTests {
    @Test func composesAttachmentsAndHTML() async throws {
        let files = try AttachmentFiles()
        defer { files.remove() }
        let result = try await runOutbox(
            ["compose", "-s", "Bericht für März 📊", "--from", "Jörg <joerg@example.test>", "-a", files.binary.path,
             "-a", files.cyrillicText.path, "-a", files.japaneseImage.path, "--html", files.html.path,
             "--inline", files.logo.path, "--cc", "cc1@example.test, cc2@example.test", "--bcc", "hidden@example.test",
             "--priority", "high", "--receipt", "to@example.test"],
            input: "Hallo,\nder Bericht ist angehängt.\n")
        #expect(result.status == 0, "\(result.error)")
        let bytes = Array(result.output.utf8)
        #expect(bytes.allSatisfy { $0 < 0x80 })
        let view = try MessageView(bytes)
        #expect(view.types == [
            "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png",
            "application/pdf", "text/plain", "image/png",
        ])
        #expect(view.fields["Subject"] == "Bericht für März 📊")
        #expect(view.fields["Bcc"] == "hidden@example.test")
        #expect(view.fields["Cc"] == "cc1@example.test, cc2@example.test")
        #expect(view.fields["X-Priority"] == "1 (Highest)")
        #expect(view.fields["Disposition-Notification-To"] == "Jörg <joerg@example.test>")
        #expect(view.value(2, "text") == "Hallo,\nder Bericht ist angehängt.\n")
        #expect(view.value(4, "text") == "<p>Grüße <img src=\"cid:logo.png\"></p>\n")
        #expect(view.value(5, "cid") == "<logo.png>")
        #expect(view.value(6, "filename") == "report 2026.pdf")
        #expect(view.value(6, "sha256") == (try sha256(Data(contentsOf: files.binary))))
        #expect(view.value(7, "filename") == "отчёт.txt")
        #expect(view.value(8, "filename") == "写真.png")
        #expect(view.value(8, "sha256") == (try sha256(Data(contentsOf: files.japaneseImage))))
        for index in view.parts.indices {
            #expect(view.parts[index]["defects"] as? Int == 0, "defects in part \(index)")
        }
    }

    @Test func noBccFieldOption() async throws {
        let result = try await runOutbox(
            ["compose", "--from", "a@example.test", "--bcc", "hidden@example.test", "--no-bcc-field", "to@example.test"],
            input: "text\n")
        #expect(result.status == 0, "\(result.error)")
        #expect(!result.output.contains("hidden@"))
    }

    @Test func uuencodeMode() async throws {
        let files = try AttachmentFiles()
        defer { files.remove() }
        let result = try await runOutbox(
            ["compose", "--from", "a@example.test", "--encoding", "uuencode", "-a", files.logo.path, "to@example.test"],
            input: "See below.\n")
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("\r\nbegin 644 logo.png\r\n"))
        #expect(result.output.contains("\r\n`\r\nend\r\n"))
        #expect(!result.output.contains("multipart"))
    }

    @Test func errorsNameValueAndFix() async throws {
        let cases: [([String], ExitCode, String)] = [
            (["compose", "to@example.test"], .usage, "--from"),
            (["compose", "--from", "a@example.test"], .usage, "No recipients"),
            (["compose", "--from", "not an address", "to@example.test"], .usage, "\"not an address\""),
            (["compose", "--from", "a@example.test", "--priority", "urgent", "to@example.test"], .usage, "high, normal or low"),
            (["compose", "--from", "a@example.test", "--encoding", "base32", "to@example.test"], .usage, "mime or uuencode"),
            (["compose", "--from", "a@example.test", "-a", "/nonexistent/x.pdf", "to@example.test"], .noInput, "/nonexistent/x.pdf"),
            (["compose", "--from", "a@example.test", "--charset", "NO-SUCH", "to@example.test"], .usage, "NO-SUCH"),
            (["compose", "--from", "a@example.test", "-s", "bad\nBcc: x@example.test", "to@example.test"], .dataError, "line break"),
        ]
        for (arguments, status, text) in cases {
            let result = try await runOutbox(arguments, input: "body\n", environment: [:])
            #expect(result.status == status.rawValue, "\(arguments): \(result.error)")
            #expect(result.error.contains(text), "\(arguments): \(result.error)")
            #expect(result.output.isEmpty)
        }
        let invalidUTF8 = try await runOutbox(["compose", "--from", "a@example.test", "to@example.test"], inputBytes: [0xFF, 0xFE])
        #expect(invalidUTF8.status == ExitCode.dataError.rawValue)
        #expect(invalidUTF8.error.contains("UTF-8"))
    }

    @Test func outputWritesThroughSymlink() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-compose-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = folder.appendingPathComponent("message.eml")
        let link = folder.appendingPathComponent("link.eml")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)

        // -o opens the path as the shell's '>' does: a symbolic link or a device such as
        // /dev/stdout is written to, not replaced by a new file.
        let result = try await runOutbox(["compose", "-o", link.path, "--from", "a@example.org", "b@example.org"], input: "hi\n")
        #expect(result.status == 0)
        let destination = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
        #expect(destination == target.path)
        let written = try String(contentsOf: target, encoding: .utf8)
        #expect(written.contains("To: b@example.org\r\n"))
    }

    @Test func helpIsListed() async throws {
        let help = try await runOutbox(["help", "compose"])
        #expect(help.status == 0)
        #expect(help.output.contains("outbox send -t"))
        let usage = try await runOutbox(["--help"])
        #expect(usage.output.contains("compose"))
    }
}

/// Whether /dev/full is the character device whose writes fail with ENOSPC.
private let hasFullDevice: Bool = {
    var status = stat()
    return stat("/dev/full", &status) == 0 && (status.st_mode & S_IFMT) == S_IFCHR
}()

@Suite(.enabled(if: hasFullDevice, "needs the /dev/full device"), .timeLimit(.minutes(1)))
struct OutputFailureTests {
    /// Runs `outbox ARGUMENTS` with standard output redirected by the shell to `redirect`.
    private func runOutbox(_ arguments: [String], stdoutTo redirect: String) async throws -> ChildProcess {
        let script = "exec \"$0\" \"$@\" > \(redirect)"
        let child = try ChildProcess(
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: ["-c", script, try ChildProcess.outboxURL.path] + arguments, input: "hi\n")
        try await child.wait(timeout: .seconds(30))
        return child
    }

    @Test func fullStandardOutputFailsCompose() async throws {
        let child = try await runOutbox(["compose", "--from", "a@example.org", "b@example.org"], stdoutTo: "/dev/full")
        #expect(!child.wasKilled)
        #expect(child.process.terminationStatus == ExitCode.ioError.rawValue)
        #expect(child.errorOutput.contains("Writing to standard output failed"))
    }

    @Test func fullStandardOutputFailsHelp() async throws {
        let child = try await runOutbox(["--help"], stdoutTo: "/dev/full")
        #expect(!child.wasKilled)
        #expect(child.process.terminationStatus == ExitCode.ioError.rawValue)
    }
}

/// Messages composed with `outbox compose`, sent with `outbox send -t` to a real Postfix smtpd, and read
/// back from its Maildir with Python's email parser.
@Suite(
    .enabled(if: PostfixInstance.isAvailable, Comment(rawValue: PostfixInstance.skipComment)),
    .timeLimit(.minutes(3)))
struct ComposeEndToEndTests {
    @Test func composedMessagesArriveIntact() async throws {
        let postfix = try await PostfixInstance.start()
        defer { try? postfix.stop() }
        let files = try AttachmentFiles()
        defer { files.remove() }
        let sendOptions = ["--host", "127.0.0.1", "--port", String(postfix.port), "--helo", "client.example.test", "--timeout", "20"]

        let composed = try await runOutbox(
            ["compose", "-s", "Grüße 👋🏽 and a long subject that needs folding across more than one header line",
             "--from", "\"Müller, Jörg\" <joerg@example.test>", "-a", files.binary.path, "-a", files.cyrillicText.path,
             "-a", files.japaneseImage.path, "--html", files.html.path, "--inline", files.logo.path,
             "--cc", "Ünï Cc <cc@example.test>", "--bcc", "hidden@example.test", "to@example.test"],
            input: "Hallo,\nanbei der Bericht.\n.\nFrom here on, dots and From lines.\n")
        #expect(composed.status == 0, "\(composed.error)")
        let sent = try await runOutbox(["send", "-t"] + sendOptions, input: composed.output)
        #expect(sent.status == 0, "\(sent.error)")

        let legacy = try await runOutbox(
            ["compose", "-s", "Привет", "--from", "a@example.test", "--charset", "KOI8-R", "legacy@example.test"],
            input: "Привет, мир!\n")
        #expect(legacy.status == 0, "\(legacy.error)")
        let sentLegacy = try await runOutbox(["send", "-t"] + sendOptions, input: legacy.output)
        #expect(sentLegacy.status == 0, "\(sentLegacy.error)")

        let delivered = try await postfix.waitForDeliveries(count: 4, timeout: .seconds(60)).map { try DeliveredMessage(contentsOf: $0) }
        #expect(Set(delivered.map(\.deliveredTo)) == ["to@example.test", "cc@example.test", "hidden@example.test", "legacy@example.test"])
        for copy in delivered where copy.deliveredTo != "legacy@example.test" {
            let text = String(decoding: copy.content, as: UTF8.self)
            #expect(!text.contains("hidden@"), "Bcc sent to \(copy.deliveredTo)")
            let view = try MessageView(Array(copy.content))
            #expect(view.types == [
                "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png",
                "application/pdf", "text/plain", "image/png",
            ])
            #expect(view.fields["Subject"] == "Grüße 👋🏽 and a long subject that needs folding across more than one header line")
            #expect(view.fields["From"] == "\"Müller, Jörg\" <joerg@example.test>")
            #expect(view.fields["Cc"] == "Ünï Cc <cc@example.test>")
            #expect(view.value(2, "charset") == "utf-8")
            #expect(view.value(2, "text") == "Hallo,\nanbei der Bericht.\n.\nFrom here on, dots and From lines.\n")
            #expect(view.value(4, "text") == "<p>Grüße <img src=\"cid:logo.png\"></p>\n")
            #expect(view.value(6, "filename") == "report 2026.pdf")
            #expect(view.value(6, "sha256") == (try sha256(Data(contentsOf: files.binary))))
            #expect(view.value(7, "filename") == "отчёт.txt")
            #expect(view.value(7, "sha256") == (try sha256(Data(contentsOf: files.cyrillicText).lfToCRLF())))
            #expect(view.value(8, "filename") == "写真.png")
            #expect(view.value(8, "sha256") == (try sha256(Data(contentsOf: files.japaneseImage))))
        }
        let legacyCopy = try #require(delivered.first { $0.deliveredTo == "legacy@example.test" })
        let legacyView = try MessageView(Array(legacyCopy.content))
        #expect(legacyView.fields["Subject"] == "Привет")
        #expect(legacyView.value(0, "charset") == "koi8-r")
        #expect(legacyView.value(0, "text") == "Привет, мир!\n")
    }
}

private extension Data {
    func lfToCRLF() -> Data {
        var result = Data()
        var previous: UInt8 = 0
        for byte in self {
            if byte == 10 && previous != 13 { result.append(13) }
            result.append(byte)
            previous = byte
        }
        return result
    }
}
