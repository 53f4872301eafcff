import Foundation
import OutboxTestSupport
import Testing
@testable import SMTPClient

@Suite("TLS values: fingerprints, server names, configuration errors")
struct TLSValueTests {
    private let digest: [UInt8] = (0..<32).map { UInt8($0 * 7 + 3) }

    @Test func fingerprintFormatsAsColonHex() {
        let text = CertificateFingerprint.format(digest)

        #expect(text.hasPrefix("03:0A:11:18:"))
        #expect(text.count == 32 * 3 - 1)
    }

    @Test(arguments: [
        "03:0A:11:18:1F:26:2D:34:3B:42:49:50:57:5E:65:6C:73:7A:81:88:8F:96:9D:A4:AB:B2:B9:C0:C7:CE:D5:DC",
        "030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dc",
        "  030A11181F262D343B424950575E656C737A81888F969DA4ABB2B9C0C7CED5DC\n",
    ])
    func fingerprintParsesWithOrWithoutColons(text: String) {
        #expect(CertificateFingerprint.parseSHA256(text) == digest)
    }

    @Test(arguments: [
        "",
        "03:0A",
        "030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5d",
        "030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dcff",
        "zz0a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dc",
        "030A:11:18:1F:26:2D:34:3B:42:49:50:57:5E:65:6C:73:7A:81:88:8F:96:9D:A4:AB:B2:B9:C0:C7:CE:D5:DC",
    ])
    func fingerprintRejectsMalformedText(text: String) {
        #expect(CertificateFingerprint.parseSHA256(text) == nil)
    }

    @Test func serverNameRecognisesIPLiterals() {
        #expect(ServerName("127.0.0.1").isIPAddress)
        #expect(ServerName("::1").isIPAddress)
        #expect(ServerName("[::1]").text == "::1")
        #expect(ServerName("fe80::1%eth0").text == "fe80::1")
        #expect(ServerName("fe80::1%eth0").isIPAddress)
        #expect(!ServerName("127.1").isIPAddress)
        #expect(!ServerName("mail.example.com.").isIPAddress)
        #expect(ServerName("mail.example.com.").text == "mail.example.com")
    }

    @Test func defaultConfigurationVerifies() {
        let configuration = TLSConfiguration()

        #expect(configuration.minimumVersion == .tls1_2)
        #expect(configuration.trust == .systemDefault)
        #expect(configuration.verifiesCertificate)
        #expect(!TLSConfiguration(trust: .insecureNoVerification).verifiesCertificate)
    }

    @Test func malformedPinIsInvalidConfiguration() {
        let error = tlsError { try TLSClientContext(configuration: TLSConfiguration(trust: .pinnedSHA256Fingerprint("AB:CD"))) }

        #expect(error?.kind == .invalidConfiguration)
        #expect(error?.description.contains("\"AB:CD\" is not a SHA-256 fingerprint") == true)
    }

    @Test func missingTrustFileIsInvalidConfiguration() {
        let error = tlsError {
            try TLSClientContext(configuration: TLSConfiguration(trust: .certificateFile("/nonexistent/ca.pem")))
        }

        #expect(error?.kind == .invalidConfiguration)
        #expect(error?.reason == "cannot read the trust file /nonexistent/ca.pem: No such file or directory")
    }

    @Test func trustFileWithoutCertificatesIsInvalidConfiguration() throws {
        let path = NSTemporaryDirectory() + "outbox-empty-trust-\(UUID().uuidString).pem"
        try "not a certificate\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.removeItem(atPath: path)
        }

        let error = tlsError { try TLSClientContext(configuration: TLSConfiguration(trust: .certificateFile(path))) }

        #expect(error?.kind == .invalidConfiguration)
        #expect(error?.reason.hasPrefix("could not load the trust file \(path)") == true)
    }

    @Test func emptyServerNameIsRejectedWhenVerifying() throws {
        let context = try TLSClientContext(configuration: TLSConfiguration())

        let error = tlsError { try TLSStream(client: context, descriptor: -1, serverName: "", peer: "test") }

        #expect(error?.kind == .invalidConfiguration)
    }

    @Test func errorDescriptionNamesPeerAndCertificate() {
        let certificate = CertificateInfo(
            subject: "CN=mail.example.test", issuer: "CN=Example CA",
            notBefore: Date(timeIntervalSince1970: 1_577_836_800), notAfter: Date(timeIntervalSince1970: 1_609_459_200),
            sha256Fingerprint: "AB:CD", subjectAlternativeNames: [.dnsName("mail.example.test")]
        )
        let error = TLSError(
            kind: .certificateExpired, reason: "certificate has expired", serverName: "mail.example.test",
            peer: "192.0.2.1:465", certificate: certificate, verifyResult: 10
        )

        #expect(error.description == "TLS certificate verification failed for mail.example.test (192.0.2.1:465): "
            + "the certificate has expired (certificate has expired). Server certificate: subject "
            + "\"CN=mail.example.test\", issuer \"CN=Example CA\", valid from 2020-01-01 00:00:00 UTC until "
            + "2021-01-01 00:00:00 UTC, alternative names DNS:mail.example.test, SHA-256 fingerprint AB:CD. "
            + "Ask the server's administrator to renew the certificate, or check this computer's clock. "
            + "To trust this certificate anyway, pin its SHA-256 fingerprint AB:CD.")
    }
}
