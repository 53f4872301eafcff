import MailMessage
import Testing

/// An input that parsing must reject, with the position and reason of the error.
struct RejectionCase: Sendable, CustomTestStringConvertible {
    let input: String
    let offset: Int
    let reason: AddressParseError.Reason

    var testDescription: String {
        input.debugDescription
    }
}

struct AddressParseErrorTests {
    static let listRejections: [RejectionCase] = [
        RejectionCase(input: "alice@example.org)<bob@example.com>", offset: 17,
                      reason: .unexpected(expected: "\",\" or end of input", found: "\")\"")),
        RejectionCase(input: "a@b@c", offset: 3,
                      reason: .unexpected(expected: "\",\" or end of input", found: "\"@\"")),
        RejectionCase(input: "<a@b", offset: 4, reason: .unexpected(expected: "\">\"", found: "end of input")),
        RejectionCase(input: "a@", offset: 2, reason: .unexpected(expected: "a domain", found: "end of input")),
        RejectionCase(input: "@b", offset: 0,
                      reason: .unexpected(expected: "a local part before \"@\"", found: "\"@\"")),
        RejectionCase(input: "", offset: 0, reason: .unexpected(expected: "an address", found: "end of input")),
        RejectionCase(input: " , ,", offset: 4, reason: .unexpected(expected: "an address", found: "end of input")),
        RejectionCase(input: "john", offset: 4,
                      reason: .unexpected(expected: "\"@\", \"<\" or \":\"", found: "end of input")),
        RejectionCase(input: "john doe@example.com", offset: 5,
                      reason: .unexpected(expected: "\".\" or \"@\"", found: "\"doe\"")),
        RejectionCase(input: ".a@example.com", offset: 0,
                      reason: .unexpected(expected: "a local part", found: "\".\"")),
        RejectionCase(input: "a..b@example.com", offset: 2,
                      reason: .unexpected(expected: "a word after \".\"", found: "\".\"")),
        RejectionCase(input: "a.@example.com", offset: 2,
                      reason: .unexpected(expected: "a word after \".\"", found: "\"@\"")),
        RejectionCase(input: "a@.b", offset: 2, reason: .unexpected(expected: "a domain", found: "\".\"")),
        RejectionCase(input: "a@b..c", offset: 4,
                      reason: .unexpected(expected: "a domain label after \".\"", found: "\".\"")),
        RejectionCase(input: "a@b.", offset: 4,
                      reason: .unexpected(expected: "a domain label after \".\"", found: "end of input")),
        RejectionCase(input: "<>", offset: 1,
                      reason: .unexpected(expected: "an address after \"<\"", found: "\">\"")),
        RejectionCase(input: "<a>", offset: 2, reason: .unexpected(expected: "\"@\"", found: "\">\"")),
        RejectionCase(input: "Name <a@b> c@d", offset: 11,
                      reason: .unexpected(expected: "\",\" or end of input", found: "\"c\"")),
        RejectionCase(input: ". Joe <a@b>", offset: 0,
                      reason: .unexpected(expected: "a display name", found: "\".\"")),
        RejectionCase(input: "<@route.example user@example.org>", offset: 16,
                      reason: .unexpected(expected: "\":\" to end the route", found: "\"user\"")),
        RejectionCase(input: "<,user@example.org>", offset: 2,
                      reason: .unexpected(expected: "\"@\" and the domain of a route", found: "\"user\"")),
        // Unbalanced comments, quotes and brackets.
        RejectionCase(input: "a@b (comment", offset: 12,
                      reason: .unexpected(expected: "\")\" to close the comment that starts at character 4",
                                          found: "end of input")),
        RejectionCase(input: "a@b (x (y)", offset: 10,
                      reason: .unexpected(expected: "\")\" to close the comment that starts at character 4",
                                          found: "end of input")),
        RejectionCase(input: "a@b)", offset: 3,
                      reason: .unexpected(expected: "\",\" or end of input", found: "\")\"")),
        RejectionCase(input: "\"abc@example.com", offset: 16,
                      reason: .unexpected(expected: "'\"' to close the quoted string that starts at character 0",
                                          found: "end of input")),
        RejectionCase(input: "a@[192.0.2.1", offset: 12,
                      reason: .unexpected(expected: "\"]\" to close the domain literal that starts at character 2",
                                          found: "end of input")),
        RejectionCase(input: "a@[a\\]b]", offset: 4,
                      reason: .unexpected(expected: "domain-literal text or \"]\"", found: "\"\\\"")),
        // Groups: unterminated, nested, or without a name.
        RejectionCase(input: "team: a@b", offset: 9,
                      reason: .unexpected(expected: "\";\" to end the group that starts at character 4",
                                          found: "end of input")),
        RejectionCase(input: "team: a@b c@d;", offset: 10,
                      reason: .unexpected(expected: "\",\" or \";\"", found: "\"c\"")),
        RejectionCase(input: "team: sub: a@b;;", offset: 9,
                      reason: .unexpected(expected: "\"@\" or \"<\" (a group is not allowed here)", found: "\":\"")),
        RejectionCase(input: ": a@b;", offset: 0, reason: .unexpected(expected: "an address", found: "\":\"")),
        RejectionCase(input: "a@b;", offset: 3,
                      reason: .unexpected(expected: "\",\" or end of input", found: "\";\"")),
        // Empty parts.
        RejectionCase(input: "\"\"@example.com", offset: 0, reason: .emptyLocalPart),
        RejectionCase(input: "Name <\"\"@example.com>", offset: 6, reason: .emptyLocalPart),
        RejectionCase(input: "a@[]", offset: 2, reason: .emptyDomain),
        RejectionCase(input: "a@[  ]", offset: 2, reason: .emptyDomain),
        // Control characters, and line breaks that are not folding.
        RejectionCase(input: "a@b.example\r\nRCPT TO:<x@y>", offset: 11, reason: .forbiddenControlCharacter(0x0D)),
        RejectionCase(input: "a@b.example\nRCPT TO:<x@y>", offset: 11, reason: .forbiddenControlCharacter(0x0A)),
        RejectionCase(input: "a@b.example\r RCPT", offset: 11, reason: .forbiddenControlCharacter(0x0D)),
        RejectionCase(input: "a@b.example\r\n", offset: 11, reason: .forbiddenControlCharacter(0x0D)),
        RejectionCase(input: "a@b\0.example", offset: 3, reason: .forbiddenControlCharacter(0)),
        RejectionCase(input: "\"a\0b\"@example.com", offset: 2, reason: .forbiddenControlCharacter(0)),
        RejectionCase(input: "Name\n <a@b>", offset: 4, reason: .forbiddenControlCharacter(0x0A)),
        RejectionCase(input: "\"a\\\r\n b\"@x.example", offset: 3,
                      reason: .unexpected(expected: "a visible character, space or tab after \"\\\"",
                                          found: "control character 0xd")),
        RejectionCase(input: "a\u{1}b@x.example", offset: 1,
                      reason: .unexpected(expected: "\"@\", \"<\" or \":\"", found: "control character 0x1")),
        RejectionCase(input: "\"a\u{7F}\"@x.example", offset: 2,
                      reason: .unexpected(expected: "quoted-string text or '\"'", found: "control character 0x7f")),
        RejectionCase(input: "a@b (\u{1})", offset: 5,
                      reason: .unexpected(expected: "comment text or \")\"", found: "control character 0x1")),
    ]

    @Test(arguments: listRejections)
    func addressListRejects(_ rejection: RejectionCase) {
        let error = #expect(throws: AddressParseError.self) {
            try AddressList(parsing: rejection.input)
        }
        #expect(error?.reason == rejection.reason)
        #expect(error?.offset == rejection.offset)
    }

    static let singleRejections: [RejectionCase] = [
        RejectionCase(input: "a@b, c@d", offset: 3,
                      reason: .unexpected(expected: "end of input after the address", found: "\",\"")),
        RejectionCase(input: "a@b,", offset: 3,
                      reason: .unexpected(expected: "end of input after the address", found: "\",\"")),
        RejectionCase(input: "team: a@b;", offset: 4,
                      reason: .unexpected(expected: "\"@\" or \"<\" (a group is not allowed here)", found: "\":\"")),
        RejectionCase(input: "", offset: 0, reason: .unexpected(expected: "an address", found: "end of input")),
        RejectionCase(input: "Name", offset: 4,
                      reason: .unexpected(expected: "\"@\" or \"<\"", found: "end of input")),
        RejectionCase(input: "alice@example.org)<bob@example.com>", offset: 17,
                      reason: .unexpected(expected: "end of input after the address", found: "\")\"")),
        RejectionCase(input: "<a@b> <c@d>", offset: 6,
                      reason: .unexpected(expected: "end of input after the address", found: "\"<\"")),
    ]

    @Test(arguments: singleRejections)
    func singleAddressRejects(_ rejection: RejectionCase) {
        let error = #expect(throws: AddressParseError.self) {
            try MailAddress(parsing: rejection.input)
        }
        #expect(error?.reason == rejection.reason)
        #expect(error?.offset == rejection.offset)
    }

    @Test
    func descriptionMarksPosition() {
        let error = #expect(throws: AddressParseError.self) {
            try AddressList(parsing: "alice@example.org)<bob@example.com>")
        }
        #expect(error?.description == """
            expected "," or end of input, found ")" at character 17
            alice@example.org)<bob@example.com>
                             ^
            """)
    }

    @Test
    func descriptionEscapesControlCharacters() {
        let error = #expect(throws: AddressParseError.self) {
            try MailAddress(parsing: "a@b.example\r\nRCPT TO:<x@y>")
        }
        #expect(error?.description == """
            CR at character 11 is not allowed, because an address may contain a line break only as folding \
            (CR LF followed by a space or tab)
            a@b.example\\r\\nRCPT TO:<x@y>
                       ^
            """)
    }

    @Test
    func nulMessageNamesCharacter() {
        let error = #expect(throws: AddressParseError.self) {
            try MailAddress(parsing: "a@b\0.example")
        }
        #expect(error?.message == "NUL at character 3 is not allowed in an address")
    }

    @Test
    func descriptionShortensLongInput() throws {
        let input = String(repeating: "a", count: 100) + "@" + String(repeating: "b", count: 100) + "@c"
        let error = try #require(#expect(throws: AddressParseError.self) { try MailAddress(parsing: input) })
        let lines = error.description.split(separator: "\n")
        #expect(error.offset == 201)
        #expect(lines.count == 3)
        #expect(lines[1] == "…" + String(repeating: "b", count: 40) + "@c")
        #expect(lines[2] == String(repeating: " ", count: 41) + "^")
    }

    @Test
    func offsetsCountCharacters() {
        let error = #expect(throws: AddressParseError.self) {
            try MailAddress(parsing: "jörg@bücher.example@x")
        }
        #expect(error?.offset == 19)
        #expect(error?.byteOffset == 21)
    }

    @Test
    func offsetCountsFoldAsOneCharacter() {
        let error = #expect(throws: AddressParseError.self) {
            try MailAddress(parsing: "a@b\r\n c")
        }
        #expect(error?.offset == 5)
        #expect(error?.byteOffset == 6)
    }

    @Test
    func rejectsInvalidUTF8() {
        let error = #expect(throws: AddressParseError.self) {
            try MailAddress(parsing: [0x61, 0xFF, 0x40, 0x62] as [UInt8])
        }
        #expect(error?.reason == .invalidUTF8)
        #expect(error?.byteOffset == 1)
    }

    @Test
    func rejectsOverlongUTF8() {
        // 0xC0 0xAF is an overlong encoding of "/".
        let error = #expect(throws: AddressParseError.self) {
            try MailAddress(parsing: [0x61, 0xC0, 0xAF, 0x40, 0x62] as [UInt8])
        }
        #expect(error?.reason == .invalidUTF8)
        #expect(error?.byteOffset == 1)
    }

    @Test
    func rejectsDeepComments() {
        let depth = 65
        let comment = String(repeating: "(", count: depth) + String(repeating: ")", count: depth)
        let error = #expect(throws: AddressParseError.self) {
            try MailAddress(parsing: "a@b " + comment)
        }
        #expect(error?.reason == .commentTooDeep(maximumDepth: 64))
        #expect(error?.offset == 68)
    }

    @Test
    func rejectsTooLongInput() {
        let input = String(repeating: "a", count: 1_048_577)
        let error = #expect(throws: AddressParseError.self) {
            try AddressList(parsing: input)
        }
        #expect(error?.reason == .inputTooLong(length: 1_048_577, maximumLength: 1_048_576))
        #expect(error?.input.utf8.count == 1_048_576)
    }
}
