import Foundation
import MailMessage
import Testing

/// The corpus of real messages from CPython's email tests, which the OutboxCLITests fixtures contain.
let corpusFiles: [URL] = {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("OutboxCLITests/Fixtures/corpus")
    let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
    return files.filter { $0.pathExtension == "txt" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
}()

/// Lists every entity of a message as Python's compat32 parser walks it: content type, file name and
/// SHA-256 of the decoded payload (empty for multipart and message parts). Python keeps white space at
/// the end of quoted-printable lines, which RFC 2045 section 6.7 rule 3 requires decoders to delete, so it is deleted
/// here before hashing.
private let walkScript = """
    import sys, email, hashlib, json, re
    message = email.message_from_bytes(open(sys.argv[1], 'rb').read())
    def walk(part):
        yield part
        kind = part.get_content_type()
        if (kind.startswith('multipart/') or kind == 'message/rfc822') and part.is_multipart():
            for child in part.get_payload():
                yield from walk(child)
    parts = []
    for part in walk(message):
        digest = ''
        if not part.is_multipart() and not part.get_content_type().startswith('message/'):
            payload = part.get_payload(decode=True)
            if (part.get('Content-Transfer-Encoding') or '').strip().lower() == 'quoted-printable':
                payload = re.sub(rb'[ \\t]+(\\r?\\n|$)', rb'\\1', payload)
            digest = hashlib.sha256(payload or b'').hexdigest()
        name = part.get_filename()
        parts.append([part.get_content_type(), name if isinstance(name, str) else None, digest])
    print(json.dumps(parts))
    """

private func sha256Hex(_ bytes: [UInt8]) throws -> String {
    let script = "import sys, hashlib; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest(), end='')"
    return String(decoding: try PythonOracle.run(script, input: bytes), as: UTF8.self)
}

@Suite(.enabled(if: PythonOracle.isAvailable, "needs /usr/bin/python3"))
struct MIMEParserTests {
    @Test func corpusIsPresent() {
        #expect(corpusFiles.count == 48)
    }

    @Test func corpusSerializesByteForByte() throws {
        for file in corpusFiles {
            let bytes = Array(try Data(contentsOf: file))
            let message = MIMEMessage(parsing: bytes)
            #expect(message.serialized() == bytes, "\(file.lastPathComponent)")
        }
    }

    @Test func corpusTreeMatchesPython() throws {
        for file in corpusFiles {
            let bytes = Array(try Data(contentsOf: file))
            let message = MIMEMessage(parsing: bytes)
            let output = try PythonOracle.run(walkScript, input: bytes)
            let expected = try #require(try JSONSerialization.jsonObject(with: Data(output)) as? [[Any]])
            let entities = message.root.walk()
            let name = file.lastPathComponent
            #expect(entities.map(\.mediaType) == expected.map { $0[0] as? String ?? "" }, "\(name) types")
            guard entities.count == expected.count else { continue }
            for (entity, python) in zip(entities, expected) {
                if let pythonName = python[1] as? String {
                    #expect(entity.fileName == pythonName, "\(name) file name")
                }
                guard let digest = python[2] as? String, !digest.isEmpty, !entity.isMultipart, entity.children.isEmpty else { continue }
                #expect(try sha256Hex(message.decodedBody(of: entity)) == digest, "\(name) payload of \(entity.mediaType)")
            }
        }
    }

    @Test func reencodedCorpusKeepsStructureAndText() throws {
        for file in corpusFiles {
            let bytes = Array(try Data(contentsOf: file))
            let message = MIMEMessage(parsing: bytes)
            let reencoded = try message.reencoded()
            let name = file.lastPathComponent
            #expect(reencoded.allSatisfy { $0 < 0x80 } || !bytes.allSatisfy { $0 < 0x80 }, "\(name) 8-bit output")
            let again = MIMEMessage(parsing: reencoded)
            let before = message.root.walk()
            let after = again.root.walk()
            #expect(before.map(\.mediaType) == after.map(\.mediaType), "\(name) structure")
            #expect(before.map(\.fileName) == after.map(\.fileName), "\(name) file names")
            guard before.count == after.count else { continue }
            for (old, new) in zip(before, after) where old.children.isEmpty && !old.isMultipart && new.children.isEmpty {
                if old.mediaType.hasPrefix("text/") {
                    let oldText = message.text(of: old)?.replacingOccurrences(of: "\r\n", with: "\n")
                    let newText = again.text(of: new)?.replacingOccurrences(of: "\r\n", with: "\n")
                    #expect(oldText?.trimmingCharacters(in: .newlines) == newText?.trimmingCharacters(in: .newlines), "\(name) text")
                } else {
                    #expect(message.decodedBody(of: old) == again.decodedBody(of: new), "\(name) payload")
                }
            }
            // Every body line of the re-encoded message fits the 998-octet limit.
            #expect(!reencoded.split(separator: 10).contains { $0.count > 999 }, "\(name) long line")
        }
    }

    @Test func parametersFollowRFC2231() {
        let value = ParameterizedValue(parsing: Array(
            "attachment; filename*0*=UTF-8''%E6%97%A5%E6%9C%AC; filename*1*=%E8%AA%9E.txt; size=10 (comment)".utf8))
        #expect(value.value == "attachment")
        #expect(value.parameter("filename") == "日本語.txt")
        #expect(value.parameter("size") == "10")
        let rfcExample = ParameterizedValue(parsing: Array(
            "message/external-body; access-type=URL; URL*0=\"ftp://\"; URL*1=\"cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar\"".utf8))
        #expect(rfcExample.parameter("url") == "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar")
        let latin = ParameterizedValue(parsing: Array("application/x-stuff; title*=iso-8859-1'en'This%20is%20%2A%2A%2Afun%E9%2A%2A%2A".utf8))
        #expect(latin.parameter("title") == "This is ***funé***")
        let quoted = ParameterizedValue(parsing: Array("text/plain; charset=\"utf-8\"; name=\"a \\\"b\\\".txt\"".utf8))
        #expect(quoted.parameter("charset") == "utf-8")
        #expect(quoted.parameter("name") == "a \"b\".txt")
    }

    @Test func composedMessageParsesBack() throws {
        var builder = MessageBuilder()
        builder.from = [try MailAddress(parsing: "a@example.test")]
        builder.text = "Grüße\n"
        builder.html = "<p>x</p>"
        builder.attachments = [Attachment(data: [1, 2, 3], fileName: "日本語のファイル名がとても長い場合のテストです.bin")]
        let bytes = try builder.build().serialized()
        let message = MIMEMessage(parsing: bytes)
        #expect(message.serialized() == bytes)
        let entities = message.root.walk()
        #expect(entities.map(\.mediaType) == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/octet-stream"])
        #expect(message.text(of: entities[2]) == "Grüße\r\n")
        #expect(entities[4].fileName == "日本語のファイル名がとても長い場合のテストです.bin")
        #expect(message.decodedBody(of: entities[4]) == [1, 2, 3])
        #expect(entities.allSatisfy { !$0.isMissingClosingDelimiter })
    }

    @Test func deepNestingStaysBounded() {
        var text = ""
        for level in 0..<200 {
            text += "Content-Type: multipart/mixed; boundary=b\(level)\r\n\r\n--b\(level)\r\n"
        }
        text += "\r\nleaf\r\n"
        let message = MIMEMessage(parsing: Array(text.utf8))
        #expect(message.root.walk().count <= MIMEEntity.maximumDepth + 1)
        #expect(message.serialized() == Array(text.utf8))
    }

    @Test func reencodingDeepMessagesStaysBounded() throws {
        // A message/rfc822 body parsed again from depth 0 would let the recursion follow the
        // input's nesting, and 10,000 levels overflow the stack.
        let levels = 10_000
        var text = ""
        for _ in 0..<levels {
            text += "Content-Type: message/rfc822\r\n\r\n"
        }
        text += "Subject: leaf\r\n\r\nleaf\r\n"
        let reencoded = try MIMEMessage(parsing: Array(text.utf8)).reencoded()
        let again = MIMEMessage(parsing: reencoded)
        #expect(again.root.mediaType == "message/rfc822")
        #expect(again.root.walk().count <= MIMEEntity.maximumDepth + 1)
        #expect(reencoded.allSatisfy { $0 < 0x80 })
    }
}
