import COpenSSL
import Glibc

/// The server role of TLS: a certificate and key, loaded once and shared by every accepted connection.
///
/// It serves the project's own test servers and the STARTTLS of `outbox capture`.
public final class TLSServerContext: @unchecked Sendable {
    // @unchecked: the SSL_CTX is configured in init and only read afterwards. OpenSSL 3 allows one SSL_CTX
    // to create SSL objects on many threads at once (openssl-threads(7)).
    let context: OpaquePointer

    /// Loads a PEM certificate chain (the server certificate first) and its unencrypted PEM private key.
    ///
    /// - Parameters:
    ///   - minimumVersion: the oldest protocol version that clients may use.
    ///   - clientCertificateTrustFile: a PEM file of CA certificates. When set, every client must present
    ///     a certificate that one of them issued. When nil, no client certificate is requested.
    /// - Throws: `TLSError` with kind `invalidConfiguration` when a file cannot be loaded or the key does
    ///   not match the certificate.
    public init(
        certificatePath: String,
        keyPath: String,
        minimumVersion: TLSProtocolVersion = .tls1_2,
        clientCertificateTrustFile: String? = nil
    ) throws {
        // Once `context` is set, deinit frees it even when a later step throws.
        context = try TLSServerContext.makeContext()
        try TLSContextSetup.configure(context, minimumVersion: minimumVersion)
        try TLSContextSetup.loadCertificateChain(context, path: certificatePath, purpose: "server certificate")
        try TLSContextSetup.loadPrivateKey(context, path: keyPath, certificatePath: certificatePath)
        try requireClientCertificates(trustFile: clientCertificateTrustFile)
    }

    /// Uses a PEM certificate chain and unencrypted PEM private key held in memory, such as those of a
    /// `SelfSignedCertificate`, so that nothing secret has to be written to disk.
    public init(
        certificatePEM: String,
        privateKeyPEM: String,
        minimumVersion: TLSProtocolVersion = .tls1_2,
        clientCertificateTrustFile: String? = nil
    ) throws {
        context = try TLSServerContext.makeContext()
        try TLSContextSetup.configure(context, minimumVersion: minimumVersion)
        try useCertificateChain(pem: certificatePEM)
        try usePrivateKey(pem: privateKeyPEM)
        try TLSContextSetup.checkKeyMatches(context, description: "the private key does not match the certificate")
        try requireClientCertificates(trustFile: clientCertificateTrustFile)
    }

    deinit {
        SSL_CTX_free(context)
    }

    /// The details of the server certificate, including the SHA-256 fingerprint that clients can pin.
    public var certificateInfo: CertificateInfo? {
        SSL_CTX_get0_certificate(context).map { CertificateInfo(certificate: $0) }
    }

    /// Performs the server side of the TLS handshake on a socket returned by accept(2), waiting at most
    /// `timeout`, and returns the connection, ready for encrypted reads and writes.
    ///
    /// The connection takes ownership of `descriptor`, and closes it if the handshake fails.
    ///
    /// - Throws: `TLSError`, or `TransportError.timedOut` with operation `tlsHandshake`, `cancelled` or
    ///   `systemCallFailed`.
    public func accept(
        descriptor: Int32,
        timeout: Duration,
        cancellation: CancellationSignal
    ) throws -> TCPConnection {
        let connection = try TCPConnection.adopting(acceptedDescriptor: descriptor, cancellation: cancellation)
        do {
            try connection.acceptTLS(context: self, timeout: timeout, deadline: nil)
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    private static func makeContext() throws -> OpaquePointer {
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw TLSContextSetup.failure("could not create an OpenSSL server context")
        }
        return context
    }

    private func requireClientCertificates(trustFile: String?) throws {
        guard let trustFile else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
            return
        }
        try TLSContextSetup.loadTrustFile(context, path: trustFile)
        SSL_CTX_set_verify(
            context,
            SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
            TLSVerification.recordingCallback
        )
    }

    /// Loads the first PEM certificate as the server's, and the rest as its chain.
    private func useCertificateChain(pem: String) throws {
        try PEMReader.withBIO(pem) { bio in
            guard let leaf = PEM_read_bio_X509_AUX(bio, nil, nil, nil) else {
                throw TLSContextSetup.failure("the certificate PEM contains no certificate")
            }
            defer {
                X509_free(leaf)
            }
            guard SSL_CTX_use_certificate(context, leaf) == 1 else {
                throw TLSContextSetup.failure("could not use the certificate")
            }
            while let issuer = PEM_read_bio_X509(bio, nil, nil, nil) {
                // SSL_CTRL_CHAIN_CERT with larg 0 is SSL_CTX_add0_chain_cert, which takes ownership.
                guard SSL_CTX_ctrl(context, SSL_CTRL_CHAIN_CERT, 0, UnsafeMutableRawPointer(issuer)) == 1 else {
                    X509_free(issuer)
                    throw TLSContextSetup.failure("could not add a chain certificate")
                }
            }
            // Reading stops with PEM_R_NO_START_LINE at the end of the text, which is not an error.
            OpenSSLErrorQueue.clear()
        }
    }

    private func usePrivateKey(pem: String) throws {
        try PEMReader.withBIO(pem) { bio in
            guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
                throw TLSContextSetup.failure("the private key PEM contains no unencrypted private key")
            }
            defer {
                EVP_PKEY_free(key)
            }
            guard SSL_CTX_use_PrivateKey(context, key) == 1 else {
                throw TLSContextSetup.failure("could not use the private key")
            }
        }
    }
}

/// Reads PEM text through a read-only memory BIO.
enum PEMReader {
    static func withBIO<Result>(_ pem: String, _ body: (OpaquePointer) throws -> Result) throws -> Result {
        let bytes = Array(pem.utf8)
        return try bytes.withUnsafeBytes { buffer in
            OpenSSLErrorQueue.clear()
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else {
                throw TLSContextSetup.failure("could not create a memory BIO")
            }
            defer {
                BIO_free(bio)
            }
            return try body(bio)
        }
    }
}
