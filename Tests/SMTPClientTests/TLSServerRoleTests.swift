import Foundation
import Glibc
import OutboxTestSupport
import Testing
@testable import SMTPClient

@Suite("TLS server role, client certificates and self-signed certificates")
struct TLSServerRoleTests {
    let certificates: TestCertificates

    init() throws {
        certificates = try TestCertificates.shared()
    }

    // MARK: - Client certificates

    @Test func clientCertificateReachesServer() throws {
        let context = try TLSServerContext(
            certificatePath: certificates.server.certificatePath, keyPath: certificates.server.keyPath,
            clientCertificateTrustFile: certificates.caCertificatePath
        )
        let server = try TLSLoopbackServer(context: context) { connection in
            try connection.write(Array("220 ready\r\n".utf8), timeout: .seconds(5), deadline: nil)
        }
        var configuration = TLSConfiguration.trustingTestCA(certificates)
        configuration.clientCertificate = .init(
            certificatePath: certificates.client.certificatePath, keyPath: certificates.client.keyPath
        )

        let connection = try connectTLS(port: server.port, configuration: configuration)
        _ = try connection.read(timeout: .seconds(5), deadline: nil)

        let outcome = try #require(server.waitForOutcome())
        let serverInfo = try outcome.handshake.get()
        #expect(serverInfo.peerCertificate?.subject == "CN=Outbox Test Client")
        #expect(serverInfo.peerCertificate?.issuer == "CN=Outbox Test CA")
    }

    @Test func missingClientCertificateIsRejected() throws {
        let context = try TLSServerContext(
            certificatePath: certificates.server.certificatePath, keyPath: certificates.server.keyPath,
            clientCertificateTrustFile: certificates.caCertificatePath
        )
        let server = try TLSLoopbackServer(context: context)

        // In TLS 1.3 the client finishes its handshake before the server checks the client's certificate,
        // so the server's alert may arrive with the first read instead.
        let clientError = tlsError {
            let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))
            return try connection.read(timeout: .seconds(5), deadline: nil)
        }
        let outcome = try #require(server.waitForOutcome())

        let serverError = try #require(Result { try outcome.handshake.get() }.tlsFailure)
        #expect(serverError.kind == .handshakeFailed)
        #expect(serverError.reason.contains("peer did not return a certificate"), "reason: \(serverError.reason)")
        #expect(clientError?.reason.contains("certificate required") == true, "client error: \(String(describing: clientError))")
    }

    @Test func untrustedClientCertificateIsRejected() throws {
        let context = try TLSServerContext(
            certificatePath: certificates.server.certificatePath, keyPath: certificates.server.keyPath,
            clientCertificateTrustFile: certificates.caCertificatePath
        )
        let server = try TLSLoopbackServer(context: context)
        var configuration = TLSConfiguration.trustingTestCA(certificates)
        configuration.clientCertificate = .init(
            certificatePath: certificates.selfSigned.certificatePath, keyPath: certificates.selfSigned.keyPath
        )

        _ = tlsError {
            let connection = try connectTLS(port: server.port, configuration: configuration)
            return try connection.read(timeout: .seconds(5), deadline: nil)
        }
        let outcome = try #require(server.waitForOutcome())

        let serverError = try #require(Result { try outcome.handshake.get() }.tlsFailure)
        #expect(serverError.kind == .selfSignedCertificate)
        #expect(serverError.certificate?.subject == "CN=localhost")
        #expect(serverError.description.contains("Client certificate: subject \"CN=localhost\""))
    }

    // MARK: - Self-signed certificates from the API

    @Test func generatedCertificateServesPinnedClient() throws {
        let generated = try SelfSignedCertificate.generate(
            commonName: "capture.test", alternativeNames: ["localhost", "127.0.0.1", "::1"]
        )
        let context = try TLSServerContext(
            certificatePEM: generated.certificatePEM, privateKeyPEM: generated.privateKeyPEM
        )
        let server = try TLSLoopbackServer(context: context)

        let connection = try connectTLS(
            port: server.port,
            configuration: TLSConfiguration(trust: .pinnedSHA256Fingerprint(generated.info.sha256Fingerprint))
        )
        let certificate = try #require(connection.tlsSession?.peerCertificate)

        #expect(certificate == generated.info)
        #expect(certificate.subject == "CN=capture.test")
        #expect(certificate.issuer == "CN=capture.test")
        #expect(certificate.subjectAlternativeNames
            == [.dnsName("localhost"), .ipAddress("127.0.0.1"), .ipAddress("::1")])
        let validity = certificate.notAfter.timeIntervalSince(certificate.notBefore)
        #expect(abs(validity - 365 * 24 * 3600) < 2)
    }

    @Test func generatedCertificateFilesWorkAsTrustFile() throws {
        let directory = NSTemporaryDirectory() + "outbox-self-signed-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: directory)
        }
        let certificatePath = "\(directory)/capture.pem"
        let keyPath = "\(directory)/capture.key"
        let generated = try SelfSignedCertificate.generate(commonName: "localhost", alternativeNames: ["localhost"])

        try generated.write(certificatePath: certificatePath, keyPath: keyPath)
        let server = try TLSLoopbackServer(
            context: TLSServerContext(certificatePath: certificatePath, keyPath: keyPath)
        )
        let connection = try connectTLS(
            port: server.port, configuration: TLSConfiguration(trust: .certificateFile(certificatePath))
        )

        var status = stat()
        #expect(stat(keyPath, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(connection.tlsSession?.peerCertificate?.sha256Fingerprint
            == (try TestCertificates.sha256Fingerprint(ofCertificateAt: certificatePath)))
    }

    @Test func systemTrustRejectsGeneratedCertificate() throws {
        let generated = try SelfSignedCertificate.generate(commonName: "localhost", alternativeNames: ["localhost"])
        let server = try TLSLoopbackServer(
            context: TLSServerContext(certificatePEM: generated.certificatePEM, privateKeyPEM: generated.privateKeyPEM)
        )

        let error = try #require(tlsError { try connectTLS(port: server.port, configuration: TLSConfiguration()) })

        #expect(error.kind == .selfSignedCertificate)
    }

    @Test func generatedPastDatesGiveExpiredError() throws {
        let notBefore = Date(timeIntervalSince1970: 1_577_836_800)  // 2020-01-01 00:00:00 UTC
        let notAfter = Date(timeIntervalSince1970: 1_609_459_200)  // 2021-01-01 00:00:00 UTC
        let generated = try SelfSignedCertificate.generate(
            commonName: "localhost", alternativeNames: ["localhost"], notBefore: notBefore, notAfter: notAfter
        )
        let directory = NSTemporaryDirectory() + "outbox-expired-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: directory)
        }
        try generated.write(certificatePath: "\(directory)/c.pem", keyPath: "\(directory)/k.pem")
        let server = try TLSLoopbackServer(
            context: TLSServerContext(certificatePEM: generated.certificatePEM, privateKeyPEM: generated.privateKeyPEM)
        )

        let error = try #require(tlsError {
            try connectTLS(port: server.port, configuration: TLSConfiguration(trust: .certificateFile("\(directory)/c.pem")))
        })

        #expect(generated.info.notBefore == notBefore)
        #expect(generated.info.notAfter == notAfter)
        #expect(error.kind == .certificateExpired)
        #expect(error.description.contains("valid from 2020-01-01 00:00:00 UTC until 2021-01-01 00:00:00 UTC"))
    }

    @Test func generatorRejectsInvalidInput() {
        let commaName = tlsError {
            try SelfSignedCertificate.generate(commonName: "localhost", alternativeNames: ["a.test,DNS:b.test"])
        }
        let reversedDates = tlsError {
            try SelfSignedCertificate.generate(
                commonName: "localhost", alternativeNames: [], notBefore: Date(), notAfter: Date(timeIntervalSinceNow: -60)
            )
        }

        #expect(commaName?.kind == .invalidConfiguration)
        #expect(reversedDates?.kind == .invalidConfiguration)
    }

    // MARK: - Server configuration errors

    @Test func mismatchedKeyIsRejected() {
        let error = tlsError {
            try TLSServerContext(certificatePath: certificates.server.certificatePath, keyPath: certificates.client.keyPath)
        }

        #expect(error?.kind == .invalidConfiguration)
        #expect(error?.description.contains("does not match the certificate") == true)
    }

    @Test func missingCertificateFileIsRejected() {
        let error = tlsError {
            try TLSServerContext(certificatePath: "/nonexistent/server.pem", keyPath: certificates.server.keyPath)
        }

        #expect(error?.kind == .invalidConfiguration)
        #expect(error?.reason == "cannot read the server certificate /nonexistent/server.pem: No such file or directory")
    }
}
