import MailMessage
import Testing

/// An input for `MailAddress(parsing:)` and the parts it must produce.
struct AddressPartsCase: Sendable, CustomTestStringConvertible {
    let input: String
    let localPart: String
    let domain: String
    let displayName: String?

    var testDescription: String {
        input.debugDescription
    }
}

struct MailAddressTests {
    static let validAddresses: [AddressPartsCase] = [
        AddressPartsCase(input: "user@example.org", localPart: "user", domain: "example.org", displayName: nil),
        AddressPartsCase(input: "  user@example.org  ", localPart: "user", domain: "example.org", displayName: nil),
        AddressPartsCase(input: "Alice Example <alice@example.org>", localPart: "alice", domain: "example.org",
                         displayName: "Alice Example"),
        AddressPartsCase(input: "<alice@example.org>", localPart: "alice", domain: "example.org", displayName: nil),
        AddressPartsCase(input: "\"\" <alice@example.org>", localPart: "alice", domain: "example.org",
                         displayName: nil),
        AddressPartsCase(input: "first.last+tag@sub.example.org", localPart: "first.last+tag",
                         domain: "sub.example.org", displayName: nil),
        AddressPartsCase(input: "a@b", localPart: "a", domain: "b", displayName: nil),
        // Quoted local parts keep quotes only when the content is not a dot-string.
        AddressPartsCase(input: "\"john q\"@example.com", localPart: "\"john q\"", domain: "example.com",
                         displayName: nil),
        AddressPartsCase(input: "\"a\\\"b\"@x.example", localPart: "\"a\\\"b\"", domain: "x.example",
                         displayName: nil),
        AddressPartsCase(input: "\"a\\\\b\"@x.example", localPart: "\"a\\\\b\"", domain: "x.example",
                         displayName: nil),
        AddressPartsCase(input: "\"\\j\\o\\e\"@x.example", localPart: "joe", domain: "x.example", displayName: nil),
        AddressPartsCase(input: "\"john\"@example.com", localPart: "john", domain: "example.com", displayName: nil),
        AddressPartsCase(input: "\"a..b\"@example.com", localPart: "\"a..b\"", domain: "example.com",
                         displayName: nil),
        AddressPartsCase(input: "\"a@b\"@example.com", localPart: "\"a@b\"", domain: "example.com",
                         displayName: nil),
        // Folding inside a quoted string removes the CR LF and keeps the space.
        AddressPartsCase(input: "\"john\r\n q\"@example.com", localPart: "\"john q\"", domain: "example.com",
                         displayName: nil),
        // Domain literals keep their content as written.
        AddressPartsCase(input: "user@[192.0.2.1]", localPart: "user", domain: "[192.0.2.1]", displayName: nil),
        AddressPartsCase(input: "user@[IPv6:2001:db8::1]", localPart: "user", domain: "[IPv6:2001:db8::1]",
                         displayName: nil),
        AddressPartsCase(input: "user@[ 192.0.2.1 ]", localPart: "user", domain: "[192.0.2.1]", displayName: nil),
        AddressPartsCase(input: "Box <user@(c)[192.0.2.1](c)>", localPart: "user", domain: "[192.0.2.1]",
                         displayName: "Box"),
        // UTF-8 (RFC 6532) in display names, quoted strings, local parts and domains.
        AddressPartsCase(input: "Jörg Müller <jörg@bücher.example>", localPart: "jörg", domain: "bücher.example",
                         displayName: "Jörg Müller"),
        AddressPartsCase(input: "\"山田 太郎\" <太郎@例え.jp>", localPart: "太郎", domain: "例え.jp",
                         displayName: "山田 太郎"),
        AddressPartsCase(input: "\"zoë smith\"@example.org", localPart: "\"zoë smith\"", domain: "example.org",
                         displayName: nil),
        // Display names: comments dropped, CFWS between words read as one space, quoted pairs unescaped.
        AddressPartsCase(input: "Joe   (the) \"Q.\"   Public <joe@example.com>", localPart: "joe",
                         domain: "example.com", displayName: "Joe Q. Public"),
        AddressPartsCase(input: "\"Joe\"\"Public\" <joe@example.com>", localPart: "joe", domain: "example.com",
                         displayName: "JoePublic"),
        AddressPartsCase(input: "\" padded \" <joe@example.com>", localPart: "joe", domain: "example.com",
                         displayName: " padded "),
        AddressPartsCase(input: "=?utf-8?q?J=C3=B6rg?= <joerg@example.com>", localPart: "joerg",
                         domain: "example.com", displayName: "=?utf-8?q?J=C3=B6rg?="),
        AddressPartsCase(input: "Name <a@b> (trailing comment)", localPart: "a", domain: "b", displayName: "Name"),
        AddressPartsCase(input: "a@b (Real Name)", localPart: "a", domain: "b", displayName: nil),
        // A combining mark after an escaped quote must not hide the quote from the writer.
        AddressPartsCase(input: "\"a\\\"\u{301}b\" <\"c\\\"\u{301}d\"@x.example>", localPart: "\"c\\\"\u{301}d\"",
                         domain: "x.example", displayName: "a\"\u{301}b"),
    ]

    @Test(arguments: validAddresses)
    func parsesParts(_ example: AddressPartsCase) throws {
        let address = try MailAddress(parsing: example.input)
        #expect(address.localPart == example.localPart)
        #expect(address.domain == example.domain)
        #expect(address.displayName == example.displayName)
    }

    @Test
    func addrSpecJoinsParts() throws {
        let address = try MailAddress(parsing: "\"john q\"@example.com")
        #expect(address.addrSpec == "\"john q\"@example.com")
    }

    @Test
    func bytesParseLikeText() throws {
        let text = "Zoë <zoë@example.org>"
        #expect(try MailAddress(parsing: Array(text.utf8)) == MailAddress(parsing: text))
        #expect(try MailAddress(parsing: text.utf8[...]) == MailAddress(parsing: text))
    }

    @Test
    func asciiAddressNeedsNoSMTPUTF8() throws {
        let address = try MailAddress(parsing: "Alice <alice@example.org>")
        #expect(address.isASCII)
        #expect(!address.requiresSMTPUTF8)
    }

    @Test
    func utf8DisplayNameOnly() throws {
        let address = try MailAddress(parsing: "Zoë <zoe@example.org>")
        #expect(!address.isASCII)
        #expect(!address.requiresSMTPUTF8)
    }

    @Test(arguments: ["zoë@example.org", "zoe@bücher.example", "\"zoë smith\"@example.org"])
    func utf8EnvelopeNeedsSMTPUTF8(_ input: String) throws {
        let address = try MailAddress(parsing: input)
        #expect(address.requiresSMTPUTF8)
    }

    @Test(arguments: [
        ("Alice Example <alice@example.org>", "Alice Example <alice@example.org>"),
        ("\"Joe Q. Public\" <john.q.public@example.com>", "\"Joe Q. Public\" <john.q.public@example.com>"),
        ("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", "Pete <pete@silly.test>"),
        ("\"a\\\"b\" <\"a\\\"b\"@x.example>", "\"a\\\"b\" <\"a\\\"b\"@x.example>"),
        ("<@route.example:user@example.org>", "user@example.org"),
        ("Zoë <zoë@example.org>", "Zoë <zoë@example.org>"),
        ("\"tab\there\" <t@example.org>", "\"tab\there\" <t@example.org>"),
    ])
    func descriptionIsStrictForm(_ input: String, _ expected: String) throws {
        let address = try MailAddress(parsing: input)
        #expect(address.description == expected)
    }

    @Test(arguments: validAddresses)
    func descriptionParsesBack(_ example: AddressPartsCase) throws {
        let address = try MailAddress(parsing: example.input)
        #expect(try MailAddress(parsing: address.description) == address)
    }

    @Test(arguments: validAddresses)
    func partsHaveNoLineBreaks(_ example: AddressPartsCase) throws {
        let address = try MailAddress(parsing: example.input)
        let text = address.localPart + address.domain + (address.displayName ?? "")
        #expect(!text.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 })
    }

    @Test
    func equalityIsExact() throws {
        #expect(try MailAddress(parsing: "User@Example.org") != MailAddress(parsing: "user@example.org"))
        #expect(try MailAddress(parsing: "\"user\"@example.org") == MailAddress(parsing: "user@example.org"))
    }

    @Test
    func deepButAllowedComments() throws {
        let depth = 64
        let comment = String(repeating: "(", count: depth) + String(repeating: ")", count: depth)
        let address = try MailAddress(parsing: "a@example.org " + comment)
        #expect(address.addrSpec == "a@example.org")
    }
}
