import MailMessage
import Testing

struct HeaderSectionTests {
    private func bytes(_ text: String) -> [UInt8] {
        Array(text.utf8)
    }

    private func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    @Test
    func readsFieldsInOrder() throws {
        let message = bytes("From: a@x.example\r\nTo: b@y.example\r\nSubject: Hi\r\n\r\nBody\r\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.map(\.name) == ["From", "To", "Subject"])
        #expect(section.fields.map { text($0.rawValue) } == [" a@x.example", " b@y.example", " Hi"])
        #expect(section.fields.map(\.range) == [0..<19, 19..<36, 36..<49])
        #expect(section.terminator == .emptyLine)
        #expect(section.endOffset == 49)
        #expect(section.bodyOffset == 51)
        #expect(section.mboxFromLine == nil)
    }

    @Test
    func foldedFieldKeepsLines() throws {
        let message = bytes("Subject: first\r\n second\r\n\tthird\r\nTo: b@y.example\r\n\r\n")
        let section = try HeaderSection(parsing: message)
        let subject = try #require(section.fields.first)
        #expect(section.fields.count == 2)
        #expect(text(subject.rawValue) == " first\r\n second\r\n\tthird")
        #expect(text(subject.unfoldedValue) == "first second\tthird")
        #expect(subject.range == 0..<33)
    }

    @Test
    func lineFeedOnlyInput() throws {
        let message = bytes("From: a@x.example\nSubject: one\n two\n\nBody\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.map(\.name) == ["From", "Subject"])
        #expect(text(section.fields[1].rawValue) == " one\n two")
        #expect(text(section.fields[1].unfoldedValue) == "one two")
        #expect(section.terminator == .emptyLine)
        #expect(section.bodyOffset == 37)
        #expect(text(Array(message[section.bodyOffset...])) == "Body\n")
    }

    @Test
    func mixedLineEnds() throws {
        let message = bytes("A: 1\r\nB: 2\nC: 3\r\n\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.map(\.range) == [0..<6, 6..<11, 11..<17])
        #expect(section.bodyOffset == 18)
    }

    @Test
    func lineWithOnlyWhiteSpaceContinues() throws {
        let message = bytes("To: Mary Smith\r\n  \r\n          <mary@example.net>\r\n\r\n")
        let section = try HeaderSection(parsing: message)
        let field = try #require(section.fields.first)
        #expect(section.fields.count == 1)
        let spaces = String(repeating: " ", count: 12)
        #expect(text(field.unfoldedValue) == "Mary Smith" + spaces + "<mary@example.net>")
    }

    @Test
    func mboxFromLineIsSeparate() throws {
        let message = bytes("From MAILER-DAEMON Fri Apr 06 16:46:09 2001\nFrom: a@x.example\n\nBody\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.mboxFromLine == 0..<44)
        #expect(section.fields.map(\.name) == ["From"])
        #expect(section.fields.first?.range == 44..<62)
    }

    @Test
    func fromFieldWithSpaceIsNotMboxLine() throws {
        let message = bytes("From  : John Doe <jdoe@machine.example>\r\n\r\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.mboxFromLine == nil)
        #expect(section.fields.first?.name == "From")
        #expect(text(section.fields.first?.unfoldedValue ?? []) == "John Doe <jdoe@machine.example>")
    }

    @Test
    func mboxLineOnlyAtStart() throws {
        let message = bytes("Subject: x\nFrom someone else\n\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.mboxFromLine == nil)
        #expect(section.fields.count == 1)
        #expect(section.terminator == .nonFieldLine)
        #expect(section.endOffset == 11)
    }

    @Test
    func missingEmptyLineEndsAtBodyLine() throws {
        let message = bytes("From: a@dom.ain\nSubject: Test\n"
            + "counter to RFC 2822, there's no separating newline here\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.map(\.name) == ["From", "Subject"])
        #expect(section.terminator == .nonFieldLine)
        #expect(section.endOffset == 30)
        #expect(section.bodyOffset == 30)
    }

    @Test
    func fieldWithoutColonEndsSection() throws {
        let message = bytes("no colon here\nSubject: not a field now\n\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.isEmpty)
        #expect(section.terminator == .nonFieldLine)
        #expect(section.bodyOffset == 0)
    }

    @Test
    func continuationWithoutFieldEndsSection() throws {
        let section = try HeaderSection(parsing: bytes(" indented\nSubject: x\n\n"))
        #expect(section.fields.isEmpty)
        #expect(section.terminator == .nonFieldLine)
    }

    @Test
    func spaceInNameIsNotField() throws {
        let section = try HeaderSection(parsing: bytes("Subject: x\nBad Name: y\n\n"))
        #expect(section.fields.map(\.name) == ["Subject"])
        #expect(section.terminator == .nonFieldLine)
        #expect(section.endOffset == 11)
    }

    @Test
    func whiteSpaceBeforeColon() throws {
        let section = try HeaderSection(parsing: bytes("Subject \t: x\n\n"))
        #expect(section.fields.first?.name == "Subject")
        #expect(text(section.fields.first?.rawValue ?? []) == " x")
    }

    @Test
    func emptyValue() throws {
        let section = try HeaderSection(parsing: bytes("Bcc:\r\nTo: a@b\r\n\r\n"))
        #expect(section.fields.first?.rawValue == [])
        #expect(section.fields.first?.range == 0..<6)
    }

    @Test
    func keepsEightBitBytes() throws {
        let message: [UInt8] = bytes("Subject: caf") + [0xC3, 0xA9, 0x20, 0xFF] + bytes("\r\n\r\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.first?.rawValue == bytes(" caf") + [0xC3, 0xA9, 0x20, 0xFF])
    }

    @Test
    func eightBitNameIsNotField() throws {
        let message: [UInt8] = bytes("Subject: x\n") + [0x53, 0xE9] + bytes(": y\n\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.count == 1)
        #expect(section.terminator == .nonFieldLine)
    }

    @Test
    func lonelyCarriageReturnStaysInValue() throws {
        let section = try HeaderSection(parsing: bytes("Subject: a\rb\r\n\r\n"))
        #expect(text(section.fields.first?.rawValue ?? []) == " a\rb")
        #expect(text(section.fields.first?.unfoldedValue ?? []) == "a\rb")
    }

    @Test
    func endsAtEndOfInput() throws {
        let message = bytes("Subject: no line end")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields.first?.range == 0..<20)
        #expect(text(section.fields.first?.rawValue ?? []) == " no line end")
        #expect(section.terminator == .endOfInput)
        #expect(section.bodyOffset == 20)
    }

    @Test
    func emptyInput() throws {
        let section = try HeaderSection(parsing: [UInt8]())
        #expect(section.fields.isEmpty)
        #expect(section.terminator == .endOfInput)
        #expect(section.bodyOffset == 0)
    }

    @Test
    func startsWithEmptyLine() throws {
        let section = try HeaderSection(parsing: bytes("\r\nBody"))
        #expect(section.fields.isEmpty)
        #expect(section.terminator == .emptyLine)
        #expect(section.bodyOffset == 2)
    }

    @Test
    func lookupIgnoresCase() throws {
        let message = bytes("Cc: c@zzz.org\nCC: d@zzz.org\ncc: e@zzz.org\nSubject: x\n\n")
        let section = try HeaderSection(parsing: message)
        #expect(section.fields(named: "cC").count == 3)
        #expect(section.firstField(named: "SUBJECT")?.name == "Subject")
        #expect(section.firstField(named: "Bcc") == nil)
    }

    @Test
    func lookupFoldsOnlyASCII() throws {
        let section = try HeaderSection(parsing: bytes("Keywords: x\n\n"))
        // U+212A KELVIN SIGN lowercases to "k" in Unicode, but field names compare as ASCII.
        #expect(section.firstField(named: "\u{212A}eywords") == nil)
    }

    @Test
    func rangesRebuildWithoutBcc() throws {
        let message = bytes("From: a@x.example\r\nBcc: secret@x.example,\r\n hidden@y.example\r\n"
            + "To: b@y.example\r\n\r\nBody with Bcc: in it\r\n")
        let section = try HeaderSection(parsing: message)
        let bcc = try #require(section.firstField(named: "bcc"))
        let rebuilt = Array(message[..<bcc.range.lowerBound]) + Array(message[bcc.range.upperBound...])
        let expected = bytes("From: a@x.example\r\nTo: b@y.example\r\n\r\nBody with Bcc: in it\r\n")
        #expect(rebuilt == expected)
        #expect(section.removingFields(named: "BCC", from: message) == expected)
    }

    @Test
    func rangesCoverHeaderExactly() throws {
        let message = bytes("From x Mon\nA: 1\r\nB: 2\n 3\nC: 4\n\nbody")
        let section = try HeaderSection(parsing: message)
        var pieces = [try #require(section.mboxFromLine)] + section.fields.map(\.range)
        pieces.append(section.endOffset..<message.count)
        #expect(pieces.map { text(Array(message[$0])) }.joined() == text(message))
        #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
    }

    @Test
    func removingKeepsOtherFields() throws {
        let message = bytes("Bcc: a@b\nSubject: x\nBcc: c@d\n\nbody")
        let section = try HeaderSection(parsing: message)
        #expect(text(section.removingFields(named: "Bcc", from: message)) == "Subject: x\n\nbody")
        #expect(section.removingFields(named: "X-None", from: message) == message)
    }

    @Test
    func sliceOffsetsStartAtZero() throws {
        let whole = bytes("ignored\nSubject: x\n\nbody")
        let slice = whole[8...]
        let section = try HeaderSection(parsing: slice)
        #expect(section.fields.first?.range == 0..<11)
        #expect(section.bodyOffset == 12)
    }

    @Test
    func rejectsLargeSection() {
        let message = bytes("Subject: " + String(repeating: "x", count: 100) + "\r\n\r\n")
        #expect(throws: HeaderSectionError.tooLarge(maximumSize: 64)) {
            try HeaderSection(parsing: message, maximumSize: 64)
        }
    }

    @Test
    func rejectsLongFieldName() {
        let message = bytes(String(repeating: "X", count: 100) + ": y\r\n\r\n")
        #expect(throws: HeaderSectionError.tooLarge(maximumSize: 64)) {
            try HeaderSection(parsing: message, maximumSize: 64)
        }
    }

    @Test
    func rejectsManyFolds() {
        let message = bytes("Subject: x" + String(repeating: "\r\n y", count: 40) + "\r\n\r\n")
        #expect(throws: HeaderSectionError.tooLarge(maximumSize: 64)) {
            try HeaderSection(parsing: message, maximumSize: 64)
        }
    }

    @Test
    func acceptsSectionAtLimit() throws {
        // Two fields of 32 bytes each fill the limit, and the empty line after them does not count.
        let field = "Subject: " + String(repeating: "x", count: 21) + "\r\n"
        let message = bytes(field + field + "\r\n" + String(repeating: "body ", count: 100))
        let section = try HeaderSection(parsing: message, maximumSize: 64)
        #expect(field.utf8.count == 32)
        #expect(section.fields.count == 2)
        #expect(section.bodyOffset == 66)
    }

    @Test
    func rejectsOneByteOverLimit() {
        let field = "Subject: " + String(repeating: "x", count: 21) + "\r\n"
        let message = bytes(field + field + "\r\n")
        #expect(throws: HeaderSectionError.tooLarge(maximumSize: 63)) {
            try HeaderSection(parsing: message, maximumSize: 63)
        }
    }

    @Test
    func largeBodyIsNotRead() throws {
        var message = bytes("Subject: x\r\n\r\n")
        message += [UInt8](repeating: 0x61, count: 4_000_000)
        let section = try HeaderSection(parsing: message, maximumSize: 1024)
        #expect(section.fields.count == 1)
        #expect(section.bodyOffset == 14)
    }

    @Test
    func errorNamesLimit() {
        let error = HeaderSectionError.tooLarge(maximumSize: 1_048_576)
        #expect(error.description.contains("maximum of 1048576 bytes"))
    }

    @Test
    func appendixObsoleteHeader() throws {
        // RFC 5322 Appendix A.6.3, with white space before the colons and comments in the values.
        let message = bytes("""
            From  : John Doe <jdoe@machine(comment).  example>\r
            To    : Mary Smith\r
              \r
                      <mary@example.net>\r
            Subject     : Saying Hello\r
            Date  : Fri, 21 Nov 1997 09(comment):   55  :  06 -0600\r
            Message-ID  : <1234   @   local(blah)  .machine .example>\r
            \r
            This is a message just to say hello.\r

            """)
        let section = try HeaderSection(parsing: message)
        let from = try #require(section.firstField(named: "from"))
        let to = try #require(section.firstField(named: "to"))
        #expect(section.fields.map(\.name) == ["From", "To", "Subject", "Date", "Message-ID"])
        #expect(try AddressList(parsingMailboxList: from.unfoldedValue).addresses.map(\.addrSpec)
            == ["jdoe@machine.example"])
        #expect(try AddressList(parsing: to.unfoldedValue).addresses
            == [MailAddress(parsing: "Mary Smith <mary@example.net>")])
    }

    @Test
    func fieldValueParsesAsAddresses() throws {
        let message = bytes("To: A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
            + "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)\r\n"
            + "Cc:(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;\r\n\r\n")
        let section = try HeaderSection(parsing: message)
        let to = try AddressList(parsing: try #require(section.firstField(named: "To")).rawValue)
        let cc = try AddressList(parsing: try #require(section.firstField(named: "Cc")).rawValue)
        #expect(to.addresses.map(\.addrSpec) == ["c@public.example", "joe@example.org", "jdoe@one.test"])
        #expect(cc.addresses.isEmpty)
        #expect(cc.entries.count == 1)
    }
}
