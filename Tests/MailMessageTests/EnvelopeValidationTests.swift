import MailMessage
import Testing

struct EnvelopeValidationTests {
    let label63 = String(repeating: "d", count: 63)

    @Test(arguments: [
        "user@example.org",
        "a@b",
        String(repeating: "l", count: 64) + "@example.org",
        "\"john q\"@example.com",
        "user@[192.0.2.1]",
        "user@[IPv6:2001:db8::1]",
        "user@[ipv6:::]",
        "user@[IPv6:1:2:3:4:5:6:7:8]",
        "user@[IPv6:::ffff:192.0.2.1]",
        "user@[IPv6:1:2:3:4:5:6:192.0.2.1]",
        "zoë@bücher.example",
        "user@xn--bcher-kva.example",
        "user@a-b.c-d.example",
        "user@123.example",
    ])
    func acceptsValidAddress(_ input: String) throws {
        let address = try MailAddress(parsing: input)
        #expect(throws: Never.self) { try address.validateForEnvelope() }
    }

    @Test
    func maximumDomainStillHitsPathLimit() throws {
        let domain = [label63, label63, label63, label63].joined(separator: ".")
        let address = try MailAddress(parsing: "a@" + domain)
        #expect(domain.utf8.count == 255)
        #expect(throws: EnvelopeAddressError.pathTooLong(addrSpec: address.addrSpec, length: 259, maximum: 256)) {
            try address.validateForEnvelope()
        }
    }

    @Test
    func acceptsMaximumPath() throws {
        let local = String(repeating: "l", count: 64)
        let domain = [label63, label63, String(repeating: "d", count: 61)].joined(separator: ".")
        let address = try MailAddress(parsing: local + "@" + domain)
        #expect(address.addrSpec.utf8.count == 254)
        #expect(throws: Never.self) { try address.validateForEnvelope() }
    }

    @Test
    func rejectsLongLocalPart() throws {
        let address = try MailAddress(parsing: String(repeating: "l", count: 65) + "@example.org")
        #expect(throws: EnvelopeAddressError.localPartTooLong(addrSpec: address.addrSpec, length: 65, maximum: 64)) {
            try address.validateForEnvelope()
        }
    }

    @Test
    func localPartLengthCountsOctets() throws {
        // 33 two-octet characters: 33 Characters but 66 octets.
        let address = try MailAddress(parsing: String(repeating: "é", count: 33) + "@example.org")
        #expect(throws: EnvelopeAddressError.localPartTooLong(addrSpec: address.addrSpec, length: 66, maximum: 64)) {
            try address.validateForEnvelope()
        }
    }

    @Test
    func rejectsLongDomain() throws {
        let domain = [label63, label63, label63, label63].joined(separator: ".") + "d"
        let address = try MailAddress(parsing: "a@" + domain)
        #expect(throws: EnvelopeAddressError.domainTooLong(addrSpec: address.addrSpec, length: 256, maximum: 255)) {
            try address.validateForEnvelope()
        }
    }

    @Test
    func rejectsLongPath() throws {
        let local = String(repeating: "l", count: 64)
        let domain = [label63, label63, String(repeating: "d", count: 62)].joined(separator: ".")
        let address = try MailAddress(parsing: local + "@" + domain)
        #expect(throws: EnvelopeAddressError.pathTooLong(addrSpec: address.addrSpec, length: 257, maximum: 256)) {
            try address.validateForEnvelope()
        }
    }

    @Test
    func rejectsTabInLocalPart() throws {
        let address = try MailAddress(parsing: "\"a\tb\"@example.org")
        let reason = "it contains a tab or another control character"
        #expect(throws: EnvelopeAddressError.invalidLocalPart(addrSpec: address.addrSpec, reason: reason)) {
            try address.validateForEnvelope()
        }
    }

    @Test(arguments: [
        ("user@exa!mple.org", "label \"exa!mple\" may contain only letters, digits and hyphens"),
        ("user@-example.org", "label \"-example\" must start and end with a letter or digit"),
        ("user@example-.org", "label \"example-\" must start and end with a letter or digit"),
        ("user@[192.0.2.256]", "[192.0.2.256] is not a valid IPv4 address"),
        ("user@[192.0.2]", "[192.0.2] is not a valid IPv4 address"),
        ("user@[IPv6:1::2::3]", "[IPv6:1::2::3] is not a valid IPv6 address"),
        ("user@[IPv6:1:2:3:4:5:6:7]", "[IPv6:1:2:3:4:5:6:7] is not a valid IPv6 address"),
        ("user@[IPv6:1:2:3:4:5:6:7::8]", "[IPv6:1:2:3:4:5:6:7::8] is not a valid IPv6 address"),
        ("user@[IPv6:12345::1]", "[IPv6:12345::1] is not a valid IPv6 address"),
        ("user@[IPv6:1:2:3:4:5::192.0.2.1]", "[IPv6:1:2:3:4:5::192.0.2.1] is not a valid IPv6 address"),
        ("user@[x-tag:content]", "address literal [x-tag:content] must be an IPv4 address or start with \"IPv6:\""),
        ("user@[192.0.2.1 x]", "address literal [192.0.2.1 x] must be an IPv4 address or start with \"IPv6:\""),
    ])
    func rejectsInvalidDomain(_ input: String, _ reason: String) throws {
        let address = try MailAddress(parsing: input)
        #expect(throws: EnvelopeAddressError.invalidDomain(addrSpec: address.addrSpec, reason: reason)) {
            try address.validateForEnvelope()
        }
    }

    @Test
    func errorDescriptionNamesLimit() {
        let error = EnvelopeAddressError.localPartTooLong(addrSpec: "x@example.org", length: 65, maximum: 64)
        let expected = "local part of <x@example.org> is 65 octets long, more than the SMTP maximum of 64"
        #expect(error.description == expected)
    }
}
