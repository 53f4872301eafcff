import COpenSSL

/// The certificate verification callbacks and the mapping of X509 verify results to `TLSError`.
enum TLSVerification {
    /// The SSL_verify_cb for chain verification. It keeps OpenSSL's verdict and records the first failure
    /// with its certificate, because OpenSSL keeps neither once the handshake has failed.
    static let recordingCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { verdict, store in
        guard let store, let state = TLSConnectionState.of(store: store) else {
            return verdict
        }
        if state.verifiedLeaf == nil, let leaf = X509_STORE_CTX_get0_cert(store) {
            state.verifiedLeaf = CertificateInfo(certificate: leaf)
        }
        if verdict == 0, state.firstVerifyFailure == nil {
            let certificate = X509_STORE_CTX_get_current_cert(store).map { CertificateInfo(certificate: $0) }
            state.firstVerifyFailure = .init(
                depth: X509_STORE_CTX_get_error_depth(store),
                error: X509_STORE_CTX_get_error(store),
                certificate: certificate
            )
        }
        return verdict
    }

    /// The certificate verification callback (SSL_CTX_set_cert_verify_callback) for a pinned fingerprint.
    /// It replaces chain verification: the peer's own certificate passes when its SHA-256 digest equals
    /// the pin, whatever its issuer, dates or names.
    static let pinningCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { store, _ in
        guard let store, let state = TLSConnectionState.of(store: store), let leaf = X509_STORE_CTX_get0_cert(store)
        else {
            return 0
        }
        state.verifiedLeaf = CertificateInfo(certificate: leaf)
        if let pin = state.pinnedFingerprint, CertificateFingerprint.sha256(of: leaf) == pin {
            X509_STORE_CTX_set_error(store, X509_V_OK)
            return 1
        }
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION)
        return 0
    }

    /// Returns the kind of error for an X509_V_ERR_* code.
    static func kind(forVerifyResult result: Int32, isPinned: Bool) -> TLSError.Kind {
        switch result {
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return .certificateExpired
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return .certificateNotYetValid
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
            return .selfSignedCertificate
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return .unknownIssuer
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
            return .hostNameMismatch
        case X509_V_ERR_APPLICATION_VERIFICATION where isPinned:
            return .fingerprintMismatch
        default:
            return .certificateRejected
        }
    }

    /// Builds the error for a handshake that failed certificate verification, from the SSL object's verify
    /// result, its peer chain and what the callbacks recorded.
    static func error(
        ssl: OpaquePointer,
        state: TLSConnectionState,
        serverName: String?,
        peer: String
    ) -> TLSError {
        let result = Int32(truncatingIfNeeded: SSL_get_verify_result(ssl))
        let reason = String(cString: X509_verify_cert_error_string(Int(result)))
        let isPinned = state.pinnedFingerprint != nil
        let failure = state.firstVerifyFailure
        let issuerFailure = failure.flatMap { $0.depth > 0 ? $0.certificate : nil }

        return TLSError(
            kind: kind(forVerifyResult: result, isPinned: isPinned),
            reason: reason,
            serverName: serverName,
            peer: peer,
            certificate: peerLeaf(ssl: ssl) ?? state.verifiedLeaf,
            failingIssuerCertificate: issuerFailure,
            verifyResult: result,
            pinnedFingerprint: state.pinnedFingerprint.map(CertificateFingerprint.format)
        )
    }

    /// Returns the peer's own certificate: the verified one, or else the first of the chain that the peer
    /// sent. On the server side OpenSSL's peer chain leaves the client's certificate out.
    static func peerLeaf(ssl: OpaquePointer) -> CertificateInfo? {
        if let certificate = SSL_get0_peer_certificate(ssl) {
            return CertificateInfo(certificate: certificate)
        }
        guard SSL_is_server(ssl) == 0, let chain = SSL_get_peer_cert_chain(ssl), OPENSSL_sk_num(chain) > 0,
              let first = OPENSSL_sk_value(chain, 0)
        else {
            return nil
        }
        return CertificateInfo(certificate: OpaquePointer(first))
    }
}
