import Foundation
import MailMessage
import OutboxTestSupport
import Testing
@testable import OutboxCLI

/// Messages sent with `outbox send` to a real Postfix smtpd, read back from its Maildir.
@Suite(
    .enabled(if: PostfixInstance.isAvailable, Comment(rawValue: PostfixInstance.skipComment)),
    .timeLimit(.minutes(3)))
struct PostfixEndToEndTests {
    static let corpus: [URL] = {
        let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("corpus")
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        return files.filter { $0.pathExtension == "txt" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }()

    private func sendOptions(_ postfix: PostfixInstance) -> [String] {
        ["--host", "127.0.0.1", "--port", String(postfix.port), "--helo", "client.example.test", "--timeout", "20"]
    }

    @Test func corpusHasEveryMessage() {
        #expect(Self.corpus.count == 48)
    }

    /// Every corpus message arrives with the same bytes, apart from CRLF line endings and the two
    /// changes Postfix's cleanup makes to input that is not a plain RFC 5322 header section: a leading
    /// mbox "From " line becomes an X-Mailbox-Line field, and an empty line is inserted where the header
    /// section ends without one.
    @Test func corpusArrivesIntact() async throws {
        let postfix = try await PostfixInstance.start()
        defer { try? postfix.stop() }
        for (index, file) in Self.corpus.enumerated() {
            let recipient = "corpus-\(index)@example.test"
            let result = try await runOutbox(
                ["send", "-f", "sender@example.test", "--file", file.path] + sendOptions(postfix) + [recipient])
            #expect(result.status == 0, "\(file.lastPathComponent): \(result.error)")
        }
        let delivered = try await postfix.waitForDeliveries(count: Self.corpus.count, timeout: .seconds(60))
        let byRecipient = Dictionary(
            try delivered.map { try DeliveredMessage(contentsOf: $0) }.map { ($0.deliveredTo, $0) },
            uniquingKeysWith: { first, _ in first })
        for (index, file) in Self.corpus.enumerated() {
            let name = file.lastPathComponent
            guard let copy = byRecipient["corpus-\(index)@example.test"] else {
                Issue.record("\(name) was not delivered")
                continue
            }
            #expect(copy.envelopeSender == "sender@example.test", "\(name)")
            let expected = try expectedDelivery(of: Array(Data(contentsOf: file)))
            let identical = Array(copy.content) == expected
            #expect(identical, "\(name) differs: \(firstDifference(Array(copy.content), expected))")
        }
    }

    @Test func oneRejectedRecipientAmongSeveral() async throws {
        let postfix = try await PostfixInstance.start()
        defer { try? postfix.stop() }
        let message = """
            From: sender@example.test
            To: first@example.test, reject-me@example.test
            Cc: second@example.org
            Bcc: third@example.test
            Subject: several recipients

            Hello.

            """
        let result = try await runOutbox(["send", "-t"] + sendOptions(postfix), input: message)
        #expect(result.status == ExitCode.noUser.rawValue)
        #expect(result.error.contains("<reject-me@example.test>: 550 5.1.1"))
        let delivered = try await postfix.waitForDeliveries(count: 3).map { try DeliveredMessage(contentsOf: $0) }
        #expect(Set(delivered.map(\.deliveredTo)) == ["first@example.test", "second@example.org", "third@example.test"])
        for copy in delivered {
            let text = String(decoding: copy.content, as: UTF8.self)
            #expect(!text.contains("Bcc"), "Bcc field sent to \(copy.deliveredTo)")
            #expect(!text.contains("third@"), "Bcc address sent to \(copy.deliveredTo)")
        }
    }

    @Test func dotsAndBareLineEndsArriveNormalized() async throws {
        let postfix = try await PostfixInstance.start()
        defer { try? postfix.stop() }
        let input = Array("From: sender@example.test\nSubject: dots\n\n.\n..\n.x\nbare LF\nbare CR\rmixed\r\nend".utf8)
        let result = try await runOutbox(["send", "-i"] + sendOptions(postfix) + ["rcpt@example.test"], inputBytes: input)
        #expect(result.status == 0, "\(result.error)")
        let delivered = try await postfix.waitForDeliveries(count: 1)
        let copy = try DeliveredMessage(contentsOf: delivered[0])
        let expected = "From: sender@example.test\r\nSubject: dots\r\n\r\n.\r\n..\r\n.x\r\nbare LF\r\nbare CR\r\nmixed\r\nend\r\n"
        #expect(String(decoding: copy.content, as: UTF8.self) == expected)
    }

    @Test func utf8AddressAndBody() async throws {
        let postfix = try await PostfixInstance.start()
        defer { try? postfix.stop() }
        let input = "From: Jösé <jösé@example.test>\nTo: grüße@example.test\nSubject: ünïcödé\n\nGrüße, 你好\n"
        let result = try await runOutbox(["send", "-t", "-i"] + sendOptions(postfix), input: input)
        #expect(result.status == 0, "\(result.error)")
        let delivered = try await postfix.waitForDeliveries(count: 1)
        let copy = try DeliveredMessage(contentsOf: delivered[0])
        #expect(copy.deliveredTo == "grüße@example.test")
        #expect(copy.envelopeSender == "jösé@example.test")
        #expect(String(decoding: copy.content, as: UTF8.self) == input.replacingOccurrences(of: "\n", with: "\r\n"))
    }
}

/// Returns what Postfix stores for a message sent by `outbox send`, with CRLF line endings restored.
private func expectedDelivery(of input: [UInt8]) throws -> [UInt8] {
    var normalized: [UInt8] = []
    var index = 0
    while index < input.count {
        switch input[index] {
        case 13:
            normalized += [13, 10]
            if index + 1 < input.count, input[index + 1] == 10 { index += 1 }
        case 10:
            normalized += [13, 10]
        default:
            normalized.append(input[index])
        }
        index += 1
    }
    if let last = normalized.last, last != 10 {
        normalized += [13, 10]
    }
    let header = try HeaderSection(parsing: normalized)
    if header.terminator == .nonFieldLine {
        normalized.insert(contentsOf: [13, 10], at: header.bodyOffset)
    }
    if header.mboxFromLine != nil {
        normalized.insert(contentsOf: Array("X-Mailbox-Line: ".utf8), at: 0)
    }
    return normalized
}

private func firstDifference(_ actual: [UInt8], _ expected: [UInt8]) -> String {
    let common = zip(actual, expected).prefix { $0 == $1 }.count
    let context = { (bytes: [UInt8]) in
        String(decoding: bytes[max(0, common - 40)..<min(bytes.count, common + 40)], as: UTF8.self)
    }
    return "at byte \(common) of \(actual.count)/\(expected.count): got \"\(context(actual))\", expected \"\(context(expected))\""
}
