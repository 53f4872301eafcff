import Testing
@testable import SMTPCore

struct CapabilitiesTests {
    private func capabilities(_ lines: [String]) -> Capabilities {
        Capabilities(ehloReply: SMTPReply(code: 250, lines: lines))
    }

    @Test func keywordsMatchInAnyCase() {
        let caps = capabilities(["mx.example.test Hello", "pipelining", "Size 1000", "8bitmime", "SmtpUtf8", "dsn"])
        #expect(caps.serverDomain == "mx.example.test")
        #expect(caps.supportsPipelining)
        #expect(caps.supports8BitMIME)
        #expect(caps.supportsSMTPUTF8)
        #expect(caps.supportsDSN)
        #expect(caps.maximumMessageSize == 1000)
        #expect(!caps.supportsStartTLS)
    }

    @Test func legacyAuthLineMerged() {
        let caps = capabilities(["mx", "AUTH=LOGIN PLAIN", "AUTH PLAIN CRAM-MD5"])
        #expect(caps.authenticationMechanisms == ["LOGIN", "PLAIN", "CRAM-MD5"])
    }

    @Test("size without limit", arguments: [["mx", "SIZE"], ["mx", "SIZE 0"], ["mx", "SIZE abc"]])
    func sizeWithoutLimit(lines: [String]) {
        let caps = capabilities(lines)
        #expect(caps.supportsSize)
        #expect(caps.maximumMessageSize == nil)
    }

    @Test func greetingOnlyHasNoExtensions() {
        let caps = capabilities(["mx.example.test"])
        #expect(caps.extensions.isEmpty)
    }
}
