import Foundation
import OutboxTestSupport
import Testing
@testable import SMTPClient

@Suite("TLS handshake and certificate verification")
struct TLSHandshakeTests {
    let certificates: TestCertificates

    init() throws {
        certificates = try TestCertificates.shared()
    }

    private func server(_ identity: TestCertificates.Identity) throws -> TLSLoopbackServer {
        let context = try TLSServerContext(certificatePath: identity.certificatePath, keyPath: identity.keyPath)
        return try TLSLoopbackServer(context: context)
    }

    /// Runs a client handshake against a server with `identity` and returns the client's TLS error.
    private func handshakeError(
        _ identity: TestCertificates.Identity,
        trust: TLSConfiguration.Trust,
        serverName: String = "localhost"
    ) throws -> TLSError? {
        let server = try server(identity)
        return tlsError {
            try connectTLS(port: server.port, configuration: TLSConfiguration(trust: trust), serverName: serverName)
        }
    }

    // MARK: - Success

    @Test func validChainWithTrustFileSucceeds() throws {
        let server = try server(certificates.server)

        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))
        let info = try #require(connection.tlsSession)
        let certificate = try #require(info.peerCertificate)

        #expect(info.protocolVersion == "TLSv1.3")
        #expect(info.cipher.hasPrefix("TLS_"), "cipher \(info.cipher)")
        #expect(certificate.subject == "CN=localhost")
        #expect(certificate.issuer == "CN=Outbox Test CA")
        #expect(certificate.sha256Fingerprint
            == (try TestCertificates.sha256Fingerprint(ofCertificateAt: certificates.server.certificatePath)))
        #expect(certificate.subjectAlternativeNames
            == [.dnsName("localhost"), .ipAddress("127.0.0.1"), .ipAddress("::1")])
        #expect(certificate.notBefore < Date())
        #expect(certificate.notAfter > Date().addingTimeInterval(29 * 24 * 3600))
        connection.close()

        let outcome = try #require(server.waitForOutcome())
        let serverInfo = try outcome.handshake.get()
        #expect(serverInfo.protocolVersion == "TLSv1.3")
        #expect(serverInfo.peerCertificate == nil)
    }

    @Test func ipLiteralMatchesIPAddressEntry() throws {
        let server = try server(certificates.server)

        let connection = try connectTLS(
            port: server.port, configuration: .trustingTestCA(certificates), serverName: "127.0.0.1"
        )

        #expect(connection.tlsSession?.peerCertificate?.subject == "CN=localhost")
    }

    @Test func ipLiteralWithoutIPAddressEntryFails() throws {
        let error = try #require(try handshakeError(
            certificates.otherName, trust: .certificateFile(certificates.caCertificatePath), serverName: "127.0.0.1"
        ))

        #expect(error.kind == .hostNameMismatch)
        #expect(error.reason == "IP address mismatch")
    }

    @Test func minimumTLS13Succeeds() throws {
        let server = try server(certificates.server)
        var configuration = TLSConfiguration.trustingTestCA(certificates)
        configuration.minimumVersion = .tls1_3

        let connection = try connectTLS(port: server.port, configuration: configuration)

        #expect(connection.tlsSession?.protocolVersion == "TLSv1.3")
    }

    // MARK: - Verification failures

    @Test func systemTrustRejectsTestCA() throws {
        let error = try #require(try handshakeError(certificates.server, trust: .systemDefault))
        let fingerprint = try TestCertificates.sha256Fingerprint(ofCertificateAt: certificates.server.certificatePath)

        #expect(error.kind == .unknownIssuer)
        #expect(error.reason == "unable to get local issuer certificate")
        #expect(error.certificate?.sha256Fingerprint == fingerprint)
        #expect(error.description.contains("subject \"CN=localhost\""))
        #expect(error.description.contains("issuer \"CN=Outbox Test CA\""))
        #expect(error.description.contains(fingerprint))
        #expect(error.description.contains("trust file"))
    }

    @Test func expiredCertificateFails() throws {
        let error = try #require(try handshakeError(
            certificates.expired, trust: .certificateFile(certificates.caCertificatePath)
        ))

        #expect(error.kind == .certificateExpired)
        #expect(error.reason == "certificate has expired")
        #expect(error.failingIssuerCertificate == nil)
        #expect(error.description.contains("valid from 2020-01-01 00:00:00 UTC until 2021-01-01 00:00:00 UTC"))
        #expect(error.description.contains("pin its SHA-256 fingerprint"))
    }

    @Test func notYetValidCertificateFails() throws {
        let error = try #require(try handshakeError(
            certificates.notYetValid, trust: .certificateFile(certificates.caCertificatePath)
        ))

        #expect(error.kind == .certificateNotYetValid)
        #expect(error.description.contains("valid from 2099-01-01 00:00:00 UTC"))
    }

    @Test func certificateForOtherNameFails() throws {
        let error = try #require(try handshakeError(
            certificates.otherName, trust: .certificateFile(certificates.caCertificatePath)
        ))

        #expect(error.kind == .hostNameMismatch)
        #expect(error.serverName == "localhost")
        #expect(error.description.contains("not valid for localhost"))
        #expect(error.description.contains("DNS:mail.other.test"))
    }

    @Test func selfSignedCertificateFails() throws {
        let error = try #require(try handshakeError(certificates.selfSigned, trust: .systemDefault))
        let fingerprint = try TestCertificates.sha256Fingerprint(ofCertificateAt: certificates.selfSigned.certificatePath)

        #expect(error.kind == .selfSignedCertificate)
        #expect(error.description.contains("pin its SHA-256 fingerprint \(fingerprint)"))
        #expect(error.description.contains("issuer \"CN=localhost\""))
    }

    @Test func serverLearnsOfRejectedCertificate() throws {
        let server = try server(certificates.selfSigned)

        _ = tlsError { try connectTLS(port: server.port, configuration: TLSConfiguration()) }
        let outcome = try #require(server.waitForOutcome())

        let error = try #require(Result { try outcome.handshake.get() }.tlsFailure)
        #expect(error.kind == .handshakeFailed)
        #expect(error.serverName == nil)
        #expect(error.reason.contains("alert"), "reason: \(error.reason)")
    }

    // MARK: - Pinning and no verification

    @Test func pinnedFingerprintAcceptsSelfSignedCertificate() throws {
        let fingerprint = try TestCertificates.sha256Fingerprint(ofCertificateAt: certificates.selfSigned.certificatePath)
        let server = try server(certificates.selfSigned)

        let connection = try connectTLS(
            port: server.port, configuration: TLSConfiguration(trust: .pinnedSHA256Fingerprint(fingerprint))
        )

        #expect(connection.tlsSession?.peerCertificate?.sha256Fingerprint == fingerprint)
    }

    @Test func compactPinAcceptsExpiredCertificate() throws {
        let fingerprint = try TestCertificates.sha256Fingerprint(ofCertificateAt: certificates.expired.certificatePath)
        let compact = fingerprint.replacingOccurrences(of: ":", with: "").lowercased()
        let server = try server(certificates.expired)

        let connection = try connectTLS(
            port: server.port, configuration: TLSConfiguration(trust: .pinnedSHA256Fingerprint(compact)),
            serverName: "mail.other.test"
        )

        #expect(connection.tlsSession?.peerCertificate?.sha256Fingerprint == fingerprint)
    }

    @Test func wrongPinFails() throws {
        let wrongPin = String(repeating: "AB:", count: 31) + "AB"
        let actual = try TestCertificates.sha256Fingerprint(ofCertificateAt: certificates.server.certificatePath)

        let error = try #require(try handshakeError(certificates.server, trust: .pinnedSHA256Fingerprint(wrongPin)))

        #expect(error.kind == .fingerprintMismatch)
        #expect(error.pinnedFingerprint == wrongPin)
        #expect(error.certificate?.sha256Fingerprint == actual)
        #expect(error.description.contains("not the pinned \(wrongPin)"))
        #expect(error.description.contains("pin the new fingerprint \(actual)"))
    }

    @Test func insecureNoVerificationAcceptsSelfSignedCertificate() throws {
        let server = try server(certificates.selfSigned)

        let connection = try connectTLS(
            port: server.port, configuration: TLSConfiguration(trust: .insecureNoVerification),
            serverName: "any.name.test"
        )

        #expect(connection.tlsSession?.peerCertificate?.subject == "CN=localhost")
    }

    // MARK: - Protocol versions, against openssl s_server

    @Test func openSSLServerWithTLS12Interoperates() throws {
        let server = try OpenSSLServer(identity: certificates.server, arguments: ["-tls1_2"])

        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))

        #expect(connection.tlsSession?.protocolVersion == "TLSv1.2")
        #expect(connection.tlsSession?.cipher.contains("ECDHE") == true)
    }

    @Test func minimumTLS13RejectsTLS12Server() throws {
        let server = try OpenSSLServer(identity: certificates.server, arguments: ["-tls1_2"])
        var configuration = TLSConfiguration.trustingTestCA(certificates)
        configuration.minimumVersion = .tls1_3

        let error = try #require(tlsError { try connectTLS(port: server.port, configuration: configuration) })

        #expect(error.kind == .protocolVersionTooOld)
        #expect(error.description.contains("RFC 8996"))
    }

    @Test(.enabled(if: OpenSSLServer.canOfferTLS11, "this OpenSSL cannot offer TLS 1.1, even at security level 0"))
    func tls11ServerIsRejected() throws {
        let server = try OpenSSLServer(
            identity: certificates.server, arguments: ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]
        )

        let error = try #require(tlsError { try connectTLS(port: server.port, configuration: .trustingTestCA(certificates)) })

        // s_server finds no common version in the ClientHello and replies with a protocol_version alert.
        #expect(error.kind == .protocolVersionTooOld)
        #expect(error.reason == "tlsv1 alert protocol version")
    }
}

extension Swift.Result {
    /// The error as a `TLSError`, or nil when the body returned or threw something else.
    var tlsFailure: TLSError? {
        guard case let .failure(error) = self else {
            return nil
        }
        return error as? TLSError
    }
}
