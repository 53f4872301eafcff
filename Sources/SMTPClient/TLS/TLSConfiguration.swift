/// The client settings for one TLS connection: protocol versions, whom to trust, and an optional client
/// certificate.
///
/// The default configuration requires TLS 1.2 or later, as RFC 9325 section 3.1.1 recommends, and
/// verifies the server's certificate chain against the system's CA store and the server's name.
public struct TLSConfiguration: Sendable, Hashable {
    /// How the client decides whether to trust the server's certificate.
    public enum Trust: Sendable, Hashable {
        /// The system's CA store, from OpenSSL's default paths. On Debian these are
        /// /usr/lib/ssl/cert.pem and /usr/lib/ssl/certs, links to /etc/ssl/certs. The SSL_CERT_FILE and
        /// SSL_CERT_DIR environment variables override them.
        case systemDefault
        /// The PEM certificates in the file at this path, such as a private CA bundle. Any certificate
        /// in the file is a trust anchor, even an intermediate or the server's own certificate.
        case certificateFile(String)
        /// Exactly the server certificate whose SHA-256 fingerprint is this hex string, with or without
        /// colons. The chain, the dates and the name are not checked, so a pinned self-signed or expired
        /// certificate is accepted.
        case pinnedSHA256Fingerprint(String)
        /// Any certificate at all. The connection is encrypted but not authenticated, so anyone on the
        /// path can intercept it. Use it only when the user asks for it.
        case insecureNoVerification
    }

    /// A certificate that the client presents when the server requests one.
    public struct ClientCertificate: Sendable, Hashable {
        /// A PEM file with the client certificate, optionally followed by its intermediate certificates.
        public var certificatePath: String
        /// A PEM file with the unencrypted private key of the certificate.
        public var keyPath: String

        public init(certificatePath: String, keyPath: String) {
            self.certificatePath = certificatePath
            self.keyPath = keyPath
        }
    }

    /// The oldest protocol version that the client accepts.
    public var minimumVersion: TLSProtocolVersion
    public var trust: Trust
    public var clientCertificate: ClientCertificate?

    public init(
        minimumVersion: TLSProtocolVersion = .tls1_2,
        trust: Trust = .systemDefault,
        clientCertificate: ClientCertificate? = nil
    ) {
        self.minimumVersion = minimumVersion
        self.trust = trust
        self.clientCertificate = clientCertificate
    }

    /// Whether the client checks the server's certificate at all. False only for `insecureNoVerification`.
    public var verifiesCertificate: Bool {
        trust != .insecureNoVerification
    }
}

/// A TLS protocol version that a configuration can require as its minimum.
///
/// TLS 1.0 and 1.1 are missing on purpose: RFC 8996 deprecates them.
public enum TLSProtocolVersion: String, Sendable, Hashable, CaseIterable {
    case tls1_2 = "TLSv1.2"
    case tls1_3 = "TLSv1.3"
}
