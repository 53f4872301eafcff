import Testing
@testable import SMTPCore

/// Parses every reply in `input`, feeding it in pieces of `chunkSize` bytes.
private func parseAll(_ input: String, chunkSize: Int? = nil, limits: ReplyParser.Limits = .init()) throws -> [SMTPReply] {
    var parser = ReplyParser(limits: limits)
    var replies: [SMTPReply] = []
    let bytes = Array(input.utf8)
    let size = chunkSize ?? max(bytes.count, 1)
    for start in stride(from: 0, to: bytes.count, by: size) {
        parser.append(bytes[start..<min(start + size, bytes.count)])
        while let reply = try parser.nextReply() {
            replies.append(reply)
        }
    }
    return replies
}

struct ReplyParserTests {
    static let transcripts: [String] = [
        "220 mail.example.test ESMTP ready\r\n",
        "250-mail.example.test Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
        "250\r\n",
        "250 \r\n",
        "250-first\r\n250\r\n",
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
        "554-5.7.1 Rejected\r\n554-5.7.1 because\r\n554 5.7.1 of policy\r\n",
        "220 bare line feed\n250 next\n",
    ]

    @Test("same replies byte by byte and whole", arguments: transcripts)
    func byteAtATimeEqualsWhole(transcript: String) throws {
        let whole = try parseAll(transcript)
        let byteByByte = try parseAll(transcript, chunkSize: 1)
        let pairs = try parseAll(transcript, chunkSize: 2)
        #expect(!whole.isEmpty)
        #expect(whole == byteByByte)
        #expect(whole == pairs)
    }

    @Test func singleLine() throws {
        let replies = try parseAll("220 mail.example.test ESMTP\r\n")
        #expect(replies.count == 1)
        #expect(replies[0].code == 220)
        #expect(replies[0].text == "mail.example.test ESMTP")
    }

    @Test func multiLineJoinsText() throws {
        let replies = try parseAll("554-5.7.1 Rejected\r\n554-because\r\n554 of policy\r\n")
        #expect(replies.count == 1)
        #expect(replies[0].lines == ["5.7.1 Rejected", "because", "of policy"])
        #expect(replies[0].text == "5.7.1 Rejected because of policy")
    }

    @Test("bare code ends a reply", arguments: ["250\r\n", "250 \r\n", "250-a\r\n250\r\n"])
    func bareCodeEndsReply(input: String) throws {
        let replies = try parseAll(input)
        #expect(replies.count == 1)
        #expect(replies[0].code == 250)
    }

    @Test func incompleteReplyWaits() throws {
        var parser = ReplyParser()
        parser.append(Array("250-first\r\n250 sec".utf8))
        #expect(try parser.nextReply() == nil)
        #expect(parser.hasBufferedBytes)
        parser.append(Array("ond\r\n".utf8))
        let reply = try parser.nextReply()
        #expect(reply?.lines == ["first", "second"])
        #expect(!parser.hasBufferedBytes)
    }

    @Test func codeMismatchRejected() {
        #expect(throws: ReplyParser.Error.codeMismatch(expected: 250, found: 251, line: "251 b")) {
            _ = try parseAll("250-a\r\n251 b\r\n")
        }
    }

    @Test("malformed lines rejected", arguments: [
        "hello\r\n", "25\r\n", "2500 x\r\n", "250x\r\n", "650 x\r\n", "199 x\r\n", "260 x\r\n", "\r\n",
    ])
    func malformedLineRejected(input: String) {
        #expect(throws: ReplyParser.Error.self) {
            _ = try parseAll(input)
        }
    }

    @Test func lineTooLongStopsBeforeEnd() {
        let limits = ReplyParser.Limits(maxLineLength: 100, maxLinesPerReply: 10)
        var parser = ReplyParser(limits: limits)
        parser.append(Array(repeating: UInt8(ascii: "5"), count: 200))
        #expect(throws: ReplyParser.Error.lineTooLong(limit: 100)) {
            _ = try parser.nextReply()
        }
    }

    @Test func lineAtLimitAccepted() throws {
        let limits = ReplyParser.Limits(maxLineLength: 10, maxLinesPerReply: 10)
        let replies = try parseAll("250 567890\r\n", limits: limits)
        #expect(replies.count == 1)
    }

    @Test func tooManyLinesRejected() {
        let limits = ReplyParser.Limits(maxLineLength: 100, maxLinesPerReply: 3)
        let endless = String(repeating: "250-more\r\n", count: 10)
        #expect(throws: ReplyParser.Error.tooManyLines(limit: 3)) {
            _ = try parseAll(endless, chunkSize: 1, limits: limits)
        }
    }

    @Test func controlCharactersReplaced() throws {
        let replies = try parseAll("550 bad\u{1B}[31m red\r\n")
        #expect(replies[0].text == "bad\u{FFFD}[31m red")
    }

    @Test func enhancedCodeRead() throws {
        let reply = try parseAll("550-5.1.1 No such user\r\n550 5.1.1 here\r\n")[0].readingEnhancedStatusCode()
        #expect(reply.enhancedCode == EnhancedStatusCode(statusClass: 5, subject: 1, detail: 1))
        #expect(reply.lines == ["No such user", "here"])
        #expect(reply.description == "550 5.1.1 No such user here")
    }

    @Test("enhanced code ignored when it does not fit", arguments: [
        "550 2.1.1 class differs\r\n", "250 1.2.3 bad class\r\n", "250 2.1.1000 long detail\r\n",
        "250 2.1.0x no space\r\n", "250 version 2.0\r\n",
    ])
    func enhancedCodeIgnored(input: String) throws {
        let reply = try parseAll(input)[0].readingEnhancedStatusCode()
        #expect(reply.enhancedCode == nil)
    }

    @Test func enhancedCodeAloneOnLine() throws {
        let reply = try parseAll("250 2.0.0\r\n")[0].readingEnhancedStatusCode()
        #expect(reply.enhancedCode?.description == "2.0.0")
        #expect(reply.text == "")
    }
}
