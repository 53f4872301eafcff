import COpenSSL
import Glibc

/// An OpenSSL SSL_CTX for the client role, set up from a `TLSConfiguration`.
final class TLSClientContext {
    let context: OpaquePointer
    let configuration: TLSConfiguration
    /// The digest from `Trust.pinnedSHA256Fingerprint`, or nil for the other kinds of trust.
    let pinnedFingerprint: [UInt8]?

    /// Whether the handshake checks the server's name, which only chain verification does.
    var verifiesServerName: Bool {
        switch configuration.trust {
        case .systemDefault, .certificateFile: true
        case .pinnedSHA256Fingerprint, .insecureNoVerification: false
        }
    }

    /// Loads the trust anchors and the client certificate of `configuration`.
    ///
    /// - Throws: `TLSError` with kind `invalidConfiguration` when a file cannot be loaded or the pinned
    ///   fingerprint is not 32 bytes of hex.
    init(configuration: TLSConfiguration) throws {
        var pin: [UInt8]?
        if case let .pinnedSHA256Fingerprint(text) = configuration.trust {
            guard let digest = CertificateFingerprint.parseSHA256(text) else {
                throw TLSError(
                    kind: .invalidConfiguration,
                    reason: "the pinned fingerprint \"\(text)\" is not a SHA-256 fingerprint. Expected 64 hex "
                        + "digits, optionally with a colon between each pair, as `openssl x509 -fingerprint "
                        + "-sha256` prints them"
                )
            }
            pin = digest
        }

        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw TLSContextSetup.failure("could not create an OpenSSL client context")
        }
        self.context = context
        self.configuration = configuration
        pinnedFingerprint = pin

        try TLSContextSetup.configure(context, minimumVersion: configuration.minimumVersion)
        try configureTrust()
        if let client = configuration.clientCertificate {
            try TLSContextSetup.loadCertificateChain(context, path: client.certificatePath, purpose: "client certificate")
            try TLSContextSetup.loadPrivateKey(context, path: client.keyPath, certificatePath: client.certificatePath)
        }
    }

    deinit {
        SSL_CTX_free(context)
    }

    private func configureTrust() throws {
        switch configuration.trust {
        case .systemDefault:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw TLSContextSetup.failure("could not load the system's CA certificates")
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, TLSVerification.recordingCallback)

        case let .certificateFile(path):
            try TLSContextSetup.loadTrustFile(context, path: path)
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, TLSVerification.recordingCallback)

        case .pinnedSHA256Fingerprint:
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
            SSL_CTX_set_cert_verify_callback(context, TLSVerification.pinningCallback, nil)

        case .insecureNoVerification:
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
    }
}

/// The steps of SSL_CTX setup that the client and server roles share.
enum TLSContextSetup {
    /// Sets the minimum protocol version and the modes that `TLSStream` relies on.
    static func configure(_ context: OpaquePointer, minimumVersion: TLSProtocolVersion) throws {
        let version = switch minimumVersion {
        case .tls1_2: TLS1_2_VERSION
        case .tls1_3: TLS1_3_VERSION
        }
        guard SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(version), nil) == 1 else {
            throw failure("could not set the minimum protocol version \(minimumVersion.rawValue)")
        }
        // Partial writes let SSL_write return after each record, as send(2) does. A moving write buffer is
        // allowed because `TCPConnection.flush` retries from its output buffer, which enqueue(_:) may
        // reallocate between a write that would block and its retry.
        let modes = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
        SSL_CTX_ctrl(context, SSL_CTRL_MODE, Int(modes), nil)
    }

    /// Loads every PEM certificate in `path` as a trust anchor, with X509_V_FLAG_PARTIAL_CHAIN so that an
    /// intermediate or a leaf in the file is trusted by itself.
    static func loadTrustFile(_ context: OpaquePointer, path: String) throws {
        try checkReadable(path, purpose: "trust file")
        guard SSL_CTX_load_verify_file(context, path) == 1 else {
            throw failure("could not load the trust file \(path)")
        }
        X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(context), UInt(X509_V_FLAG_PARTIAL_CHAIN))
    }

    static func loadCertificateChain(_ context: OpaquePointer, path: String, purpose: String) throws {
        try checkReadable(path, purpose: purpose)
        guard SSL_CTX_use_certificate_chain_file(context, path) == 1 else {
            throw failure("could not load the \(purpose) \(path) as PEM")
        }
    }

    /// Loads the PEM private key in `path` and checks that it matches the loaded certificate.
    static func loadPrivateKey(_ context: OpaquePointer, path: String, certificatePath: String) throws {
        try checkReadable(path, purpose: "private key")
        let mismatch = "the private key \(path) does not match the certificate \(certificatePath)"
        guard SSL_CTX_use_PrivateKey_file(context, path, SSL_FILETYPE_PEM) == 1 else {
            // SSL_CTX_use_PrivateKey_file already compares the key with the loaded certificate.
            let entries = OpenSSLErrorQueue.drain()
            if entries.contains(where: { $0.reasonCode == X509_R_KEY_VALUES_MISMATCH }) {
                throw TLSError(kind: .invalidConfiguration, reason: mismatch)
            }
            let detail = entries.map(\.reason).joined(separator: ", ")
            throw TLSError(
                kind: .invalidConfiguration,
                reason: "could not load the private key \(path) as an unencrypted PEM key (\(detail))"
            )
        }
        try checkKeyMatches(context, description: mismatch)
    }

    static func checkKeyMatches(_ context: OpaquePointer, description: String) throws {
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw failure(description)
        }
    }

    /// Throws when `path` cannot be opened for reading, with the strerror(3) text, so that a missing
    /// file reads as such rather than as OpenSSL's "system lib" error.
    static func checkReadable(_ path: String, purpose: String) throws {
        guard access(path, R_OK) == 0 else {
            let reason = TransportError.errnoText(errno)
            throw TLSError(kind: .invalidConfiguration, reason: "cannot read the \(purpose) \(path): \(reason)")
        }
    }

    /// Builds an `invalidConfiguration` error from `summary` and the reasons on OpenSSL's error queue.
    static func failure(_ summary: String) -> TLSError {
        let detail = OpenSSLErrorQueue.drainedDescription(fallback: "")
        let reason = detail.isEmpty ? summary : "\(summary) (\(detail))"
        return TLSError(kind: .invalidConfiguration, reason: reason)
    }
}
