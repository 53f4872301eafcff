import MailMessage
import Testing

/// An address as the tests expect it: the display name and the envelope form.
struct ExpectedAddress: Sendable, Equatable, CustomStringConvertible {
    let displayName: String?
    let addrSpec: String

    init(_ displayName: String?, _ addrSpec: String) {
        self.displayName = displayName
        self.addrSpec = addrSpec
    }

    init(_ address: MailAddress) {
        self.init(address.displayName, address.addrSpec)
    }

    var description: String {
        "\(displayName.map { "\"\($0)\" " } ?? "")<\(addrSpec)>"
    }
}

/// An address list and the addresses it contains, with groups flattened.
struct AddressListCase: Sendable, CustomTestStringConvertible {
    let input: String
    let expected: [ExpectedAddress]

    var testDescription: String {
        input.debugDescription
    }
}

struct AddressListTests {
    /// The address fields of the messages in RFC 5322 Appendix A.1 and A.2.
    static let simpleExamples: [AddressListCase] = [
        // A.1.1
        AddressListCase(input: "John Doe <jdoe@machine.example>",
                        expected: [ExpectedAddress("John Doe", "jdoe@machine.example")]),
        AddressListCase(input: "Mary Smith <mary@example.net>",
                        expected: [ExpectedAddress("Mary Smith", "mary@example.net")]),
        // A.1.2
        AddressListCase(input: "\"Joe Q. Public\" <john.q.public@example.com>",
                        expected: [ExpectedAddress("Joe Q. Public", "john.q.public@example.com")]),
        AddressListCase(input: "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
                        expected: [
                            ExpectedAddress("Mary Smith", "mary@x.test"),
                            ExpectedAddress(nil, "jdoe@example.org"),
                            ExpectedAddress("Who?", "one@y.test"),
                        ]),
        AddressListCase(input: "<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>",
                        expected: [
                            ExpectedAddress(nil, "boss@nil.test"),
                            ExpectedAddress("Giant; \"Big\" Box", "sysservices@example.net"),
                        ]),
        // A.1.3
        AddressListCase(input: "Pete <pete@silly.example>",
                        expected: [ExpectedAddress("Pete", "pete@silly.example")]),
        AddressListCase(input: "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
                        expected: [
                            ExpectedAddress("Ed Jones", "c@a.test"),
                            ExpectedAddress(nil, "joe@where.test"),
                            ExpectedAddress("John", "jdoe@one.test"),
                        ]),
        AddressListCase(input: "Undisclosed recipients:;", expected: []),
        // A.2
        AddressListCase(input: "\"Mary Smith: Personal Account\" <smith@home.example>",
                        expected: [ExpectedAddress("Mary Smith: Personal Account", "smith@home.example")]),
    ]

    @Test(arguments: simpleExamples)
    func appendixSimpleExamples(_ example: AddressListCase) throws {
        let list = try AddressList(parsing: example.input)
        #expect(list.addresses.map(ExpectedAddress.init) == example.expected)
    }

    /// RFC 5322 Appendix A.5: white space, comments and other oddities.
    static let oddityExamples: [AddressListCase] = [
        AddressListCase(input: "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
                        expected: [ExpectedAddress("Pete", "pete@silly.test")]),
        AddressListCase(input: "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
                            + "         joe@example.org,\r\n"
                            + "  John <jdoe@one.test> (my dear friend); (the end of the group)",
                        expected: [
                            ExpectedAddress("Chris Jones", "c@public.example"),
                            ExpectedAddress(nil, "joe@example.org"),
                            ExpectedAddress("John", "jdoe@one.test"),
                        ]),
        AddressListCase(input: "(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;", expected: []),
    ]

    @Test(arguments: oddityExamples)
    func appendixOddityExamples(_ example: AddressListCase) throws {
        let list = try AddressList(parsing: example.input)
        #expect(list.addresses.map(ExpectedAddress.init) == example.expected)
    }

    /// RFC 5322 Appendix A.6: obsolete syntax, which is read but never written.
    static let obsoleteExamples: [AddressListCase] = [
        // A.6.1: obs-phrase with a dot, a source route, an empty list element, CFWS around a domain dot.
        AddressListCase(input: "Joe Q. Public <john.q.public@example.com>",
                        expected: [ExpectedAddress("Joe Q. Public", "john.q.public@example.com")]),
        AddressListCase(input: "Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example",
                        expected: [
                            ExpectedAddress("Mary Smith", "mary@example.net"),
                            ExpectedAddress(nil, "jdoe@test.example"),
                        ]),
        // A.6.3: comments and folding white space inside addresses.
        AddressListCase(input: "John Doe <jdoe@machine(comment).  example>",
                        expected: [ExpectedAddress("John Doe", "jdoe@machine.example")]),
        AddressListCase(input: "Mary Smith\r\n  \r\n          <mary@example.net>",
                        expected: [ExpectedAddress("Mary Smith", "mary@example.net")]),
        // A route of several domains, with the empty elements that obs-domain-list allows.
        AddressListCase(input: "<@a.example,@b.example:user@c.example>",
                        expected: [ExpectedAddress(nil, "user@c.example")]),
        AddressListCase(input: "<,@a.example,,@b.example:user@c.example>",
                        expected: [ExpectedAddress(nil, "user@c.example")]),
        // obs-local-part: CFWS around the dots, and quoted words mixed with atoms.
        AddressListCase(input: "john (middle) . doe@example.com",
                        expected: [ExpectedAddress(nil, "john.doe@example.com")]),
        AddressListCase(input: "\"john\".doe@example.com", expected: [ExpectedAddress(nil, "john.doe@example.com")]),
        AddressListCase(input: "\"john q\".doe@example.com",
                        expected: [ExpectedAddress(nil, "\"john q.doe\"@example.com")]),
        // obs-addr-list: empty elements before, between and after addresses.
        AddressListCase(input: ", a@x.example,,, b@y.example ,", expected: [
            ExpectedAddress(nil, "a@x.example"),
            ExpectedAddress(nil, "b@y.example"),
        ]),
        AddressListCase(input: "a@b, ,", expected: [ExpectedAddress(nil, "a@b")]),
    ]

    @Test(arguments: obsoleteExamples)
    func obsoleteSyntax(_ example: AddressListCase) throws {
        let list = try AddressList(parsing: example.input)
        #expect(list.addresses.map(ExpectedAddress.init) == example.expected)
    }

    @Test
    func groupKeepsStructure() throws {
        let list = try AddressList(parsing: "team: a@x.example, Bee <b@y.example>;, c@z.example")
        let members = [
            try MailAddress(parsing: "a@x.example"),
            try MailAddress(parsing: "Bee <b@y.example>"),
        ]
        #expect(list.entries.count == 2)
        #expect(list.entries.first?.groupValue?.displayName == "team")
        #expect(list.entries.first?.groupValue?.members == members)
        #expect(list.entries.last == .mailbox(try MailAddress(parsing: "c@z.example")))
    }

    @Test
    func emptyGroupHasNoMembers() throws {
        let list = try AddressList(parsing: "undisclosed-recipients:;")
        #expect(list.entries.count == 1)
        #expect(list.entries.first?.groupValue?.displayName == "undisclosed-recipients")
        #expect(list.entries.first?.groupValue?.members == [])
        #expect(list.addresses.isEmpty)
    }

    @Test
    func groupWithOnlyCommas() throws {
        let list = try AddressList(parsing: "nobody: , ,;")
        #expect(list.entries.first?.groupValue?.members == [])
    }

    @Test
    func mailboxListRejectsGroup() {
        let error = #expect(throws: AddressParseError.self) {
            try AddressList(parsingMailboxList: "a@x.example, team: b@y.example;")
        }
        #expect(error?.offset == 17)
        #expect(error?.reason == .unexpected(expected: "\"@\" or \"<\" (a group is not allowed here)", found: "\":\""))
    }

    @Test
    func mailboxListReadsAddresses() throws {
        let list = try AddressList(parsingMailboxList: "Alice <alice@example.org>, bob@example.com")
        #expect(list.addresses.map(ExpectedAddress.init) == [
            ExpectedAddress("Alice", "alice@example.org"),
            ExpectedAddress(nil, "bob@example.com"),
        ])
    }

    @Test
    func bytesParseLikeText() throws {
        let text = "Jörg <jörg@bücher.example>, \"Zoë\" <zoe@example.org>"
        #expect(try AddressList(parsing: Array(text.utf8)) == AddressList(parsing: text))
    }

    @Test(arguments: [
        "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
        "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
        "Undisclosed recipients:;",
        "\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>, \"john q\"@example.com",
        "\"\":;, Zoë <zoë@bücher.example>, a@[192.0.2.1]",
    ])
    func descriptionParsesBack(_ input: String) throws {
        let list = try AddressList(parsing: input)
        #expect(try AddressList(parsing: list.description) == list)
    }

    @Test
    func descriptionUsesStrictForms() throws {
        let list = try AddressList(parsing: "Joe Q. Public <@route.example:john (c) . q@example (c) . com>, , g:;")
        #expect(list.description == "\"Joe Q. Public\" <john.q@example.com>, g:;")
    }
}

extension AddressList.Entry {
    /// The group of a `.group` entry, or nil for a mailbox.
    var groupValue: AddressGroup? {
        if case .group(let group) = self {
            return group
        }
        return nil
    }
}
