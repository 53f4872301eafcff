import MailMessage
import Testing

struct IDNATests {
    @Test func convertsToALabels() throws {
        // Punycode results from RFC 3492 section 7.1 and the UTS #46 examples.
        #expect(try IDNA.toASCII("bücher.example") == "xn--bcher-kva.example")
        #expect(try IDNA.toASCII("BÜCHER.example") == "xn--bcher-kva.example")
        #expect(try IDNA.toASCII("faß.de") == "xn--fa-hia.de")
        #expect(try IDNA.toASCII("例え.テスト") == "xn--r8jz45g.xn--zckzah")
        #expect(try IDNA.toASCII("пример.испытание") == "xn--e1afmkfd.xn--80akhbyknj4f")
        #expect(try IDNA.toASCII("plain.example.org") == "plain.example.org")
        #expect(try IDNA.toASCII("[192.0.2.1]") == "[192.0.2.1]")
    }

    @Test func rejectsDisallowedNames() {
        for domain in ["☃.example", "a\u{200D}b.example", "😀.example"] {
            #expect(throws: IDNAError.self, "\(domain)") { try IDNA.toASCII(domain) }
        }
        do {
            _ = try IDNA.toASCII("☃.example")
        } catch {
            #expect(error.description.contains("☃.example"))
        }
    }

    @Test func roundTripsToUnicode() throws {
        #expect(try IDNA.toUnicode("xn--bcher-kva.example") == "bücher.example")
        #expect(try IDNA.toUnicode(IDNA.toASCII("例え.テスト")) == "例え.テスト")
    }

    @Test func envelopeAddressUsesALabels() throws {
        let address = try MailAddress(parsing: "Jörg <joerg@bücher.example>")
        #expect(try address.addrSpecWithASCIIDomain() == "joerg@xn--bcher-kva.example")
    }

    @Test func messageIDUsesALabels() throws {
        var builder = MessageBuilder()
        builder.from = [try MailAddress(parsing: "a@bücher.example")]
        let message = try builder.build()
        #expect(message.messageID.hasSuffix("@xn--bcher-kva.example>"))
    }
}
