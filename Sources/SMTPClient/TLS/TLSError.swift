/// A failure to set up or use a TLS connection: the peer's certificate was not trusted, the handshake
/// failed, or the configuration could not be loaded.
public struct TLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What failed.
    public enum Kind: Sendable, Hashable {
        /// The certificate's notAfter date has passed (X509_V_ERR_CERT_HAS_EXPIRED).
        case certificateExpired
        /// The certificate's notBefore date is still ahead (X509_V_ERR_CERT_NOT_YET_VALID).
        case certificateNotYetValid
        /// The certificate signs itself and is not a trust anchor (X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        /// or X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN).
        case selfSignedCertificate
        /// No trusted CA issued the chain (X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY and related).
        case unknownIssuer
        /// The certificate does not name the host name or IP address that the client connected to.
        case hostNameMismatch
        /// The certificate's SHA-256 fingerprint differs from the pinned one.
        case fingerprintMismatch
        /// Certificate verification failed for another reason, given in `reason`.
        case certificateRejected
        /// The peer offered only protocol versions older than the configured minimum.
        case protocolVersionTooOld
        /// The handshake failed for a reason other than the certificate or the version.
        case handshakeFailed
        /// A TLS error after the handshake, such as a corrupt record or a fatal alert from the peer.
        case connectionFailed
        /// A trust file, certificate, key or fingerprint in the configuration is missing or invalid.
        case invalidConfiguration
        /// OpenSSL failed to generate a key or a certificate.
        case certificateGenerationFailed
    }

    public var kind: Kind
    /// OpenSSL's reason, such as `certificate has expired` (X509_verify_cert_error_string(3)) or
    /// `tlsv1 alert protocol version`, or this project's own sentence for configuration errors.
    public var reason: String
    /// The host name or IP address that the certificate was checked against, or nil for the server role.
    public var serverName: String?
    /// The remote endpoint, such as `127.0.0.1:465`, or nil when no connection was involved.
    public var peer: String?
    /// The peer's own certificate (the leaf), when it sent one before the failure.
    public var certificate: CertificateInfo?
    /// The issuer certificate that failed verification, when the failure was not at the leaf.
    public var failingIssuerCertificate: CertificateInfo?
    /// The X509_V_ERR_* code of a verification failure, or nil for other failures.
    public var verifyResult: Int32?
    /// The pinned fingerprint, normalized to colon-separated upper-case hex, for `fingerprintMismatch`.
    public var pinnedFingerprint: String?

    public init(
        kind: Kind,
        reason: String,
        serverName: String? = nil,
        peer: String? = nil,
        certificate: CertificateInfo? = nil,
        failingIssuerCertificate: CertificateInfo? = nil,
        verifyResult: Int32? = nil,
        pinnedFingerprint: String? = nil
    ) {
        self.kind = kind
        self.reason = reason
        self.serverName = serverName
        self.peer = peer
        self.certificate = certificate
        self.failingIssuerCertificate = failingIssuerCertificate
        self.verifyResult = verifyResult
        self.pinnedFingerprint = pinnedFingerprint
    }

    public var description: String {
        var sentences = [summary]
        if let failingIssuerCertificate {
            sentences.append("Failing issuer certificate: \(failingIssuerCertificate).")
        }
        if let certificate {
            let role = serverName == nil ? "Client" : "Server"
            sentences.append("\(role) certificate: \(certificate).")
        }
        if let advice {
            sentences.append(advice)
        }
        return sentences.joined(separator: " ")
    }

    /// The peer as `localhost (127.0.0.1:465)`, or whichever part is known.
    private var target: String {
        switch (serverName, peer) {
        case let (name?, peer?) where name != peer: "\(name) (\(peer))"
        case let (name?, _): name
        case let (nil, peer?): peer
        case (nil, nil): "the peer"
        }
    }

    private var summary: String {
        let verificationFailed = "TLS certificate verification failed for \(target)"
        switch kind {
        case .certificateExpired:
            return "\(verificationFailed): the certificate has expired (\(reason))."
        case .certificateNotYetValid:
            return "\(verificationFailed): the certificate is not valid yet (\(reason))."
        case .selfSignedCertificate:
            return "\(verificationFailed): the certificate is self-signed and not trusted (\(reason))."
        case .unknownIssuer:
            return "\(verificationFailed): no trusted CA issued the certificate (\(reason))."
        case .hostNameMismatch:
            return "\(verificationFailed): the certificate is not valid for \(serverName ?? "the requested name") "
                + "(\(reason))."
        case .fingerprintMismatch:
            let pinned = pinnedFingerprint ?? "the pinned value"
            return "\(verificationFailed): the certificate's SHA-256 fingerprint is not the pinned \(pinned)."
        case .certificateRejected:
            return "\(verificationFailed): \(reason)."
        case .protocolVersionTooOld:
            return "The TLS handshake with \(target) failed because the peer supports only protocol versions "
                + "older than the configured minimum (\(reason))."
        case .handshakeFailed:
            return "The TLS handshake with \(target) failed: \(reason)."
        case .connectionFailed:
            return "The TLS connection with \(target) failed: \(reason)."
        case .invalidConfiguration:
            return "Invalid TLS configuration: \(reason)."
        case .certificateGenerationFailed:
            return "Could not generate a self-signed certificate: \(reason)."
        }
    }

    /// How to fix the failure, or how to trust the certificate on purpose.
    private var advice: String? {
        let pin = certificate.map { "pin its SHA-256 fingerprint \($0.sha256Fingerprint)" }
            ?? "pin its SHA-256 fingerprint"
        switch kind {
        case .certificateExpired, .certificateNotYetValid:
            return "Ask the server's administrator to renew the certificate, or check this computer's clock. "
                + "To trust this certificate anyway, \(pin)."
        case .selfSignedCertificate:
            return "To trust this certificate on purpose, \(pin), or add the certificate to a trust file "
                + "(a PEM file of trusted certificates)."
        case .unknownIssuer, .certificateRejected:
            return "To trust this certificate on purpose, add the CA that issued it to a trust file "
                + "(a PEM file of trusted certificates), or \(pin)."
        case .hostNameMismatch:
            return "Connect with a name that the certificate lists, or \(pin) "
                + "to trust this certificate regardless of its name."
        case .fingerprintMismatch:
            let actual = certificate.map { " \($0.sha256Fingerprint)" } ?? ""
            return "If the server's certificate was replaced on purpose, pin the new fingerprint\(actual). "
                + "Otherwise someone may be intercepting the connection."
        case .protocolVersionTooOld:
            return "TLS 1.0 and 1.1 are deprecated by RFC 8996. Ask the peer's administrator to enable TLS 1.2 "
                + "or later."
        case .handshakeFailed where reason.contains("wrong version number"):
            return "The peer did not answer with TLS. Check that the port expects TLS at once (implicit TLS, "
                + "usually port 465) rather than STARTTLS, or the other way round."
        case .handshakeFailed, .connectionFailed, .invalidConfiguration, .certificateGenerationFailed:
            return nil
        }
    }
}
