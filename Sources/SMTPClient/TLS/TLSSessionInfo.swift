/// The parameters that a completed TLS handshake agreed on.
public struct TLSSessionInfo: Sendable, Hashable {
    /// The protocol version as OpenSSL names it, such as `TLSv1.3` or `TLSv1.2`.
    public var protocolVersion: String
    /// The cipher suite as OpenSSL names it, such as `TLS_AES_256_GCM_SHA384`.
    public var cipher: String
    /// The peer's certificate: always present on the client side, and on the server side only when the
    /// client sent one.
    public var peerCertificate: CertificateInfo?

    public init(protocolVersion: String, cipher: String, peerCertificate: CertificateInfo?) {
        self.protocolVersion = protocolVersion
        self.cipher = cipher
        self.peerCertificate = peerCertificate
    }
}
