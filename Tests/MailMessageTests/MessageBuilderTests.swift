import Foundation
import MailMessage
import Testing

/// Describes a message as Python's email package reads it: every part's content type, charset,
/// transfer encoding, disposition, filename, Content-ID and decoded content, plus the top-level fields.
let describeMessageScript = """
    import sys, email, email.policy, json, base64
    message = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
    parts = []
    for part in message.walk():
        entry = {'type': part.get_content_type(), 'charset': part.get_content_charset(),
                 'cte': part.get('Content-Transfer-Encoding'), 'disposition': part.get_content_disposition(),
                 'filename': part.get_filename(), 'cid': part.get('Content-ID'), 'defects': [str(d) for d in part.defects]}
        if part.get_content_type() == 'message/rfc822':
            entry['payload'] = base64.b64encode(part.get_payload(0).as_bytes()).decode()
        elif not part.is_multipart():
            entry['payload'] = base64.b64encode(part.get_payload(decode=True)).decode()
            if part.get_content_maintype() == 'text':
                entry['text'] = part.get_content().replace('\\r\\n', '\\n')
        parts.append(entry)
    fields = {name: str(message[name]) for name in set(message.keys())}
    print(json.dumps({'fields': fields, 'parts': parts, 'defects': [str(d) for d in message.defects]}))
    """

struct PythonView {
    let fields: [String: String]
    let parts: [[String: Any]]
    let defects: [String]

    init(_ message: [UInt8]) throws {
        let output = try PythonOracle.run(describeMessageScript, input: message)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output)) as? [String: Any])
        fields = json["fields"] as? [String: String] ?? [:]
        parts = json["parts"] as? [[String: Any]] ?? []
        defects = json["defects"] as? [String] ?? []
    }

    func types() -> [String] { parts.map { $0["type"] as? String ?? "?" } }

    func payload(_ index: Int) -> [UInt8] {
        Array(Data(base64Encoded: parts[index]["payload"] as? String ?? "") ?? Data())
    }

    func text(_ index: Int) -> String? { parts[index]["text"] as? String }

    func string(_ index: Int, _ key: String) -> String? { parts[index][key] as? String }
}

/// Checks that the written header section parses into exactly the fields that were composed.
func checkHeadersParseBack(_ message: ComposedMessage, _ bytes: [UInt8], includingBcc: Bool = false) throws {
    let section = try HeaderSection(parsing: bytes)
    var expected = message.fields.map(\.name)
    if includingBcc, message.bccField != nil {
        let index = expected.firstIndex(of: "Subject") ?? expected.count
        expected.insert("Bcc", at: index)
    }
    let names = section.fields.map(\.name).filter { !$0.hasPrefix("Content-") }
    #expect(names == expected)
    #expect(section.terminator == .emptyLine)
    for line in bytes.split(separator: 10, omittingEmptySubsequences: false) {
        #expect(line.count <= 999, "a line longer than 998 octets")
    }
    var previous: UInt8 = 0
    for byte in bytes {
        if byte == 10 { #expect(previous == 13, "a bare LF") }
        if previous == 13 { #expect(byte == 10, "a bare CR") }
        previous = byte
    }
}

@Suite(.enabled(if: PythonOracle.isAvailable, "needs /usr/bin/python3"))
struct MessageBuilderTests {
    private func address(_ text: String) throws -> MailAddress { try MailAddress(parsing: text) }

    private func temporaryFile(_ name: String, _ bytes: [UInt8]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("builder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    @Test func plainTextMessage() throws {
        var builder = MessageBuilder()
        builder.from = [try address("Jörg Müller <joerg@example.test>")]
        builder.to = [try address("to@example.test")]
        builder.subject = "Grüße"
        builder.text = "Hallo Welt,\nschöne Grüße.\n.\nFrom the team\n"
        builder.signature = "Jörg"
        let message = try builder.build()
        let bytes = try message.serialized()
        try checkHeadersParseBack(message, bytes)
        let view = try PythonView(bytes)
        #expect(view.types() == ["text/plain"])
        #expect(view.fields["Subject"] == "Grüße")
        #expect(view.fields["From"] == "Jörg Müller <joerg@example.test>")
        #expect(view.fields["MIME-Version"] == "1.0")
        #expect(view.string(0, "cte") == "quoted-printable")
        #expect(view.string(0, "charset") == "utf-8")
        #expect(view.text(0) == "Hallo Welt,\nschöne Grüße.\n.\nFrom the team\n-- \nJörg")
        #expect(view.defects.isEmpty)
        #expect(bytes.allSatisfy { $0 < 0x80 })
        #expect(message.messageID.hasSuffix("@example.test>"))
        #expect(view.fields["Message-ID"] == message.messageID)
    }

    @Test func dateHasLocalOffset() throws {
        var builder = MessageBuilder()
        builder.from = [try address("a@example.test")]
        builder.date = Date(timeIntervalSince1970: 0)
        let bytes = try builder.build().serialized()
        let script = "import sys, email, email.utils; m = email.message_from_bytes(open(sys.argv[1],'rb').read()); print(int(email.utils.parsedate_to_datetime(m['Date']).timestamp()))"
        let output = String(decoding: try PythonOracle.run(script, input: bytes), as: UTF8.self)
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        let date = String(decoding: try HeaderSection(parsing: bytes).firstField(named: "Date")!.unfoldedValue, as: UTF8.self)
        #expect(date.range(of: #"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$"#, options: .regularExpression) != nil, "\(date)")
    }

    @Test func fullStructureWithAttachments() throws {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 13, 10, 0x1A, 10] + SeededBytes(seed: 9).bytesArray(3000)
        let pdfPath = try temporaryFile("Bericht März.pdf", SeededBytes(seed: 10).bytesArray(100_000))
        let textPath = try temporaryFile("notes.txt", Array("line one\nline two\n--=_not a boundary\n".utf8))
        var builder = MessageBuilder()
        builder.from = [try address("sender@example.test")]
        builder.to = [try address("\"Doe, Jane\" <jane@example.test>"), try address("bob@example.test")]
        builder.cc = [try address("carol@example.test")]
        builder.bcc = [try address("secret@example.test")]
        builder.replyTo = [try address("replies@example.test")]
        builder.subject = "Report"
        builder.text = "See the attachments."
        builder.html = "<p>See <img src=\"cid:logo@example.test\"></p>"
        var logo = Attachment(data: png, fileName: "logo.png")
        logo.contentID = "logo@example.test"
        builder.inlineImages = [logo]
        builder.attachments = [
            Attachment(path: pdfPath), Attachment(path: textPath),
            Attachment(data: [0, 1, 2, 255], fileName: "данные.bin"),
            Attachment(data: Array("From: x@example.test\r\nSubject: inner\r\n\r\nInner body\r\n".utf8), fileName: "inner.eml"),
            .vCard("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Jane Doe\r\nEND:VCARD\r\n"),
        ]
        builder.inReplyTo = ["<parent@example.test>"]
        builder.references = ["<root@example.test>", "parent@example.test"]
        builder.priority = .high
        builder.requestsReadReceipt = true
        builder.customFields = [("X-Mailer", "Outbox tests")]
        let message = try builder.build()
        #expect(message.envelopeRecipients.map(\.addrSpec) == ["jane@example.test", "bob@example.test", "carol@example.test", "secret@example.test"])
        #expect(message.envelopeSender.addrSpec == "sender@example.test")

        let bytes = try message.serialized()
        try checkHeadersParseBack(message, bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.contains("secret@"), "Bcc written without being asked")
        let view = try PythonView(bytes)
        #expect(view.defects.isEmpty, "\(view.defects)")
        #expect(view.types() == [
            "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png",
            "application/pdf", "text/plain", "application/octet-stream", "message/rfc822", "text/plain", "text/vcard",
        ])
        #expect(view.text(2) == "See the attachments.\n")
        #expect(view.text(4) == "<p>See <img src=\"cid:logo@example.test\"></p>\n")
        #expect(view.payload(5) == png)
        #expect(view.string(5, "disposition") == "inline")
        #expect(view.string(5, "cid") == "<logo@example.test>")
        #expect(view.string(6, "filename") == "Bericht März.pdf")
        #expect(view.string(6, "disposition") == "attachment")
        #expect(view.payload(6) == Array(try Data(contentsOf: URL(fileURLWithPath: pdfPath))))
        #expect(view.string(7, "filename") == "notes.txt")
        #expect(view.text(7) == "line one\nline two\n--=_not a boundary\n")
        #expect(view.string(8, "filename") == "данные.bin")
        #expect(view.payload(8) == [0, 1, 2, 255])
        #expect(String(decoding: view.payload(9), as: UTF8.self).contains("Inner body"))
        #expect(view.text(10) == "Inner body\n")
        #expect(view.string(11, "filename") == "contact.vcf")
        #expect(view.text(11) == "BEGIN:VCARD\nVERSION:4.0\nFN:Jane Doe\nEND:VCARD\n")
        #expect(view.fields["X-Priority"] == "1 (Highest)")
        #expect(view.fields["Importance"] == "high")
        #expect(view.fields["Disposition-Notification-To"] == "sender@example.test")
        #expect(view.fields["In-Reply-To"] == "<parent@example.test>")
        #expect(view.fields["References"] == "<root@example.test> <parent@example.test>")
        #expect(view.fields["Reply-To"] == "replies@example.test")
        #expect(view.fields["X-Mailer"] == "Outbox tests")
        #expect(view.fields["Bcc"] == nil)

        let withBcc = try message.serialized(includingBcc: true)
        try checkHeadersParseBack(message, withBcc, includingBcc: true)
        #expect(try PythonView(withBcc).fields["Bcc"] == "secret@example.test")
    }

    @Test func eightBitAllowedAndDowngraded() throws {
        var builder = MessageBuilder()
        builder.from = [try address("a@example.test")]
        builder.text = "Schöne Grüße aus der Stadt\n"
        builder.html = "<p>Schöne Grüße aus der Stadt</p>"
        builder.allows8bit = true
        let message = try builder.build()
        #expect(message.requires8BITMIME)
        let eightBit = try message.serialized()
        #expect(try PythonView(eightBit).string(1, "cte") == "8bit")
        #expect(eightBit.contains { $0 >= 0x80 })
        let downgraded = message.downgradedTo7bit()
        #expect(!downgraded.requires8BITMIME)
        let bytes = try downgraded.serialized()
        #expect(bytes.allSatisfy { $0 < 0x80 })
        let view = try PythonView(bytes)
        #expect(view.string(1, "cte") == "quoted-printable")
        #expect(view.text(1) == "Schöne Grüße aus der Stadt\n")
        #expect(view.text(2) == "<p>Schöne Grüße aus der Stadt</p>")
    }

    @Test func legacyCharsetAndFallback() throws {
        var builder = MessageBuilder()
        builder.from = [try address("a@example.test")]
        builder.text = "Привет, мир\n"
        builder.charset = "KOI8-R"
        let message = try builder.build()
        #expect(message.warnings.isEmpty)
        let view = try PythonView(try message.serialized())
        #expect(view.string(0, "charset") == "koi8-r")
        #expect(view.text(0) == "Привет, мир\n")

        builder.text = "Привет 😀\n"
        let fallback = try builder.build()
        #expect(fallback.warnings.count == 1)
        let fallbackView = try PythonView(try fallback.serialized())
        #expect(fallbackView.string(0, "charset") == "utf-8")
        #expect(fallbackView.text(0) == "Привет 😀\n")

        builder.charset = "NO-SUCH-CHARSET"
        #expect(throws: MessageBuildError.self) { try builder.build() }
    }

    @Test func uuencodeMode() throws {
        let data = SeededBytes(seed: 11).bytesArray(500)
        var builder = MessageBuilder()
        builder.from = [try address("a@example.test")]
        builder.text = "Files below.\n"
        builder.attachments = [Attachment(data: data, fileName: "blob.bin")]
        builder.attachmentMode = .uuencode
        let bytes = try builder.build().serialized()
        let view = try PythonView(bytes)
        #expect(view.types() == ["text/plain"])
        let body = try #require(view.text(0))
        #expect(body.hasPrefix("Files below.\n"))
        let script = """
            import sys, email, binascii
            body = email.message_from_bytes(open(sys.argv[1], 'rb').read()).get_payload(decode=True)
            lines = body.split(b'\\r\\n')
            start = lines.index(b'begin 644 blob.bin')
            end = lines.index(b'end')
            sys.stdout.buffer.write(b''.join(binascii.a2b_uu(line) for line in lines[start + 1:end]))
            """
        #expect(try PythonOracle.run(script, input: bytes) == data)
    }

    @Test func rejectsLineBreaksInEveryField() throws {
        let injected = "x\r\nBcc: victim@example.test"
        var base = MessageBuilder()
        base.from = [try address("a@example.test")]
        var cases: [MessageBuilder] = []
        var builder = base
        builder.subject = injected
        cases.append(builder)
        builder = base
        builder.messageID = injected
        cases.append(builder)
        builder = base
        builder.inReplyTo = [injected]
        cases.append(builder)
        builder = base
        builder.references = [injected]
        cases.append(builder)
        builder = base
        builder.customFields = [("X-Test", injected)]
        cases.append(builder)
        builder = base
        builder.customFields = [(injected, "value")]
        cases.append(builder)
        builder = base
        builder.attachments = [Attachment(data: [1], fileName: injected)]
        cases.append(builder)
        builder = base
        builder.attachments = [Attachment(data: [1], fileName: "a.bin", mediaType: "application/x\r\nBcc: v@example.test")]
        cases.append(builder)
        builder = base
        var image = Attachment(data: [1], fileName: "a.png")
        image.contentID = injected
        builder.inlineImages = [image]
        cases.append(builder)
        for name in ["Bcc", "bcc", "Content-Type", "MIME-Version", "From"] {
            builder = base
            builder.customFields = [(name, "value")]
            cases.append(builder)
        }
        for id in ["two words@example.test", "<a@b> <c@d>", "no-at-sign", "@example.test", "ünï@example.test", ""] {
            builder = base
            builder.messageID = id
            cases.append(builder)
            builder = base
            builder.references = [id]
            cases.append(builder)
        }
        for (index, builder) in cases.enumerated() {
            #expect(throws: MessageBuildError.self, "case \(index)") { try builder.build() }
        }
    }

    @Test func missingFileAndMissingFrom() throws {
        var builder = MessageBuilder()
        #expect(throws: MessageBuildError.self) { try builder.build() }
        builder.from = [try address("a@example.test")]
        builder.attachments = [Attachment(path: "/nonexistent/file.pdf")]
        do {
            _ = try builder.build()
            Issue.record("a missing file was accepted")
        } catch {
            #expect(error.description.contains("/nonexistent/file.pdf"))
        }
    }

    @Test func copyToSelfAndDuplicates() throws {
        var builder = MessageBuilder()
        builder.from = [try address("me@example.test")]
        builder.to = [try address("you@example.test"), try address("You@Example.test")]
        builder.copyToSelf = .bcc
        let message = try builder.build()
        #expect(message.envelopeRecipients.map(\.addrSpec) == ["you@example.test", "me@example.test"])
        #expect(!String(decoding: try message.serialized(), as: UTF8.self).contains("Bcc"))
    }

    @Test func binaryTextAttachmentKeepsBytes() throws {
        // Files named like text but holding a NUL or a bare CR, such as a binary log: once with mostly
        // ASCII (quoted-printable) and once with random bytes (base64).
        let mostlyASCII = Array("a\u{0}b\r\nc\rd\n".utf8)
        let random = SeededBytes(seed: 7).bytesArray(4096) + [0, 13, 65, 10]
        for (name, content) in [("log.txt", mostlyASCII), ("data.csv", random)] {
            var builder = MessageBuilder()
            builder.from = [try address("a@example.test")]
            builder.text = "See the file."
            builder.attachments = [Attachment(data: content, fileName: name)]
            let parsed = MIMEMessage(parsing: try builder.build().serialized())
            let part = try #require(parsed.root.walk().first { $0.fileName == name })
            let decoded = parsed.decodedBody(of: part)
            #expect(decoded.elementsEqual(content), "\(name): \(decoded.count) octets decoded from \(content.count)")
        }
    }

    @Test func boundariesAreUniqueAndAbsentFromContent() throws {
        var builder = MessageBuilder()
        builder.from = [try address("a@example.test")]
        builder.text = "text"
        builder.html = "<p>html</p>"
        builder.attachments = [Attachment(data: Array("plain ascii =_ and --=_".utf8), fileName: "a.txt")]
        let message = try builder.build()
        guard case .multipart(let children) = message.root.body else {
            Issue.record("root is not multipart")
            return
        }
        let outer = message.root.boundary
        let inner = children[0].boundary
        #expect(outer.hasPrefix("=_"))
        #expect(outer.count >= 30)
        #expect(outer != inner)
        let bytes = try message.serialized()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.components(separatedBy: "--" + outer).count == 4)
    }
}

extension SeededBytes {
    func bytesArray(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(count)
    }
}

struct MessageWriterStreamingTests {
    @Test func largeFileArrivesInBoundedChunks() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("big.bin")
        let content = SeededBytes(seed: 12).bytesArray(3 * 1024 * 1024 + 17)
        try Data(content).write(to: file)

        var builder = MessageBuilder()
        builder.from = [try MailAddress(parsing: "a@example.test")]
        builder.text = "big file"
        builder.attachments = [Attachment(path: file.path)]
        let message = try builder.build()
        let chunkSize = 64 * 1024
        var chunks: [[UInt8]] = []
        try message.write(chunkSize: chunkSize) { chunks.append($0) }

        #expect(chunks.count > 40)
        // One chunk contains at most the buffer before the last append plus one encoded 57 KiB read.
        let largest = chunks.map(\.count).max() ?? 0
        #expect(largest < chunkSize + 80 * 1024, "chunk of \(largest) bytes")
        let bytes = chunks.flatMap { $0 }
        let parsed = MIMEMessage(parsing: bytes)
        let entities = parsed.root.walk()
        #expect(entities.map(\.mediaType) == ["multipart/mixed", "text/plain", "application/octet-stream"])
        #expect(parsed.decodedBody(of: entities[2]) == content)
    }
}
