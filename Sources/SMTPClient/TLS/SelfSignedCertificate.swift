import COpenSSL
import Foundation
import Glibc

/// A self-signed certificate and its private key, generated in memory with OpenSSL's API, for servers
/// such as `outbox capture` that need a certificate at run time without the openssl command.
///
/// The key is ECDSA P-256. The certificate is X.509 v3 with basicConstraints CA:FALSE, keyUsage
/// digitalSignature, extendedKeyUsage serverAuth and a subject alternative name for each host name or
/// IP address, signed with SHA-256.
public struct SelfSignedCertificate: Sendable, Hashable {
    /// The certificate in PEM form.
    public let certificatePEM: String
    /// The unencrypted private key in PKCS #8 PEM form.
    public let privateKeyPEM: String
    /// The certificate's details, including the SHA-256 fingerprint that clients can pin.
    public let info: CertificateInfo

    /// Generates a key pair and a certificate that signs itself.
    ///
    /// - Parameters:
    ///   - commonName: the subject's CN, such as `localhost`.
    ///   - alternativeNames: host names and IP literals for the subject alternative name extension.
    ///     Clients verify these, not the CN. IP literals become IP address entries.
    ///   - notBefore: the start of validity. The default, one hour ago, tolerates clients whose clocks
    ///     run behind.
    ///   - notAfter: the end of validity, or nil for 365 days after `notBefore`.
    /// - Throws: `TLSError` with kind `invalidConfiguration` for an empty or malformed name or a
    ///   `notAfter` before `notBefore`, or with kind `certificateGenerationFailed` when OpenSSL fails.
    public static func generate(
        commonName: String,
        alternativeNames: [String],
        notBefore: Date = Date(timeIntervalSinceNow: -3600),
        notAfter: Date? = nil
    ) throws -> SelfSignedCertificate {
        let end = notAfter ?? notBefore.addingTimeInterval(365 * 24 * 3600)
        try validate(commonName: commonName, alternativeNames: alternativeNames, notBefore: notBefore, notAfter: end)

        let key = try generateKey()
        defer {
            EVP_PKEY_free(key)
        }
        guard let certificate = X509_new() else {
            throw generationFailure("X509_new failed")
        }
        defer {
            X509_free(certificate)
        }
        try fill(
            certificate, key: key, commonName: commonName, alternativeNames: alternativeNames,
            notBefore: notBefore, notAfter: end
        )
        guard X509_sign(certificate, key, EVP_sha256()) > 0 else {
            throw generationFailure("X509_sign failed")
        }

        let certificatePEM = MemoryBIO.text { PEM_write_bio_X509($0, certificate) }
        let keyPEM = MemoryBIO.text { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        guard certificatePEM.hasPrefix("-----BEGIN"), keyPEM.hasPrefix("-----BEGIN") else {
            throw generationFailure("PEM encoding failed")
        }
        return SelfSignedCertificate(
            certificatePEM: certificatePEM,
            privateKeyPEM: keyPEM,
            info: CertificateInfo(certificate: certificate)
        )
    }

    /// Writes the certificate and the key to PEM files. The key file gets mode 0600, so only its owner
    /// can read it, and an existing file at either path is replaced.
    ///
    /// - Throws: `TransportError.systemCallFailed` when a file cannot be written.
    public func write(certificatePath: String, keyPath: String) throws {
        try SelfSignedCertificate.writeFile(certificatePath, contents: certificatePEM, mode: 0o644)
        try SelfSignedCertificate.writeFile(keyPath, contents: privateKeyPEM, mode: 0o600)
    }

    private static func writeFile(_ path: String, contents: String, mode: mode_t) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            throw TransportError.systemCall("open(\(path))", errno: errno)
        }
        defer {
            close(descriptor)
        }
        // open(2) applies `mode` only to a new file, so an existing key file is narrowed here.
        guard fchmod(descriptor, mode) == 0 else {
            throw TransportError.systemCall("fchmod(\(path))", errno: errno)
        }
        let bytes = Array(contents.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR {
                    continue
                }
                throw TransportError.systemCall("write(\(path))", errno: errno)
            }
            offset += count
        }
    }

    // MARK: - Generation steps

    private static func validate(
        commonName: String,
        alternativeNames: [String],
        notBefore: Date,
        notAfter: Date
    ) throws {
        guard !commonName.isEmpty, commonName.utf8.count <= 64 else {
            throw TLSError(kind: .invalidConfiguration, reason: "the common name must have 1 to 64 bytes")
        }
        // The names go into an OpenSSL configuration string, where commas separate entries.
        let forbidden = CharacterSet(charactersIn: ", \t\r\n").union(.controlCharacters)
        for name in alternativeNames where name.isEmpty || name.rangeOfCharacter(from: forbidden) != nil {
            throw TLSError(
                kind: .invalidConfiguration,
                reason: "the alternative name \"\(name)\" is not a host name or IP address"
            )
        }
        guard notAfter > notBefore else {
            throw TLSError(kind: .invalidConfiguration, reason: "notAfter must be later than notBefore")
        }
    }

    /// Generates an ECDSA P-256 key. EVP_PKEY_Q_keygen(3) would do this in one call, but Swift cannot
    /// call C variadic functions, so this uses the EVP_PKEY_CTX steps that it wraps.
    private static func generateKey() throws -> OpaquePointer {
        OpenSSLErrorQueue.clear()
        guard let keyContext = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
            throw generationFailure("EVP_PKEY_CTX_new_from_name failed")
        }
        defer {
            EVP_PKEY_CTX_free(keyContext)
        }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(keyContext) == 1,
              EVP_PKEY_CTX_set_group_name(keyContext, "P-256") == 1,
              EVP_PKEY_generate(keyContext, &key) == 1,
              let key
        else {
            throw generationFailure("EC P-256 key generation failed")
        }
        return key
    }

    private static func fill(
        _ certificate: OpaquePointer,
        key: OpaquePointer,
        commonName: String,
        alternativeNames: [String],
        notBefore: Date,
        notAfter: Date
    ) throws {
        // Version 3 is encoded as 2. RFC 5280 section 4.1.2.2 requires a positive serial of at most 20
        // octets. A random one keeps two generated certificates with the same issuer name from sharing it.
        var serial: UInt64 = 0
        guard X509_set_version(certificate, 2) == 1,
              withUnsafeMutableBytes(of: &serial, { RAND_bytes($0.baseAddress, Int32($0.count)) }) == 1,
              ASN1_INTEGER_set_uint64(X509_get_serialNumber(certificate), serial >> 1 | 1) == 1,
              ASN1_TIME_set(X509_getm_notBefore(certificate), time_t(notBefore.timeIntervalSince1970)) != nil,
              ASN1_TIME_set(X509_getm_notAfter(certificate), time_t(notAfter.timeIntervalSince1970)) != nil,
              X509_set_pubkey(certificate, key) == 1
        else {
            throw generationFailure("setting the version, serial, validity or public key failed")
        }

        guard let name = X509_get_subject_name(certificate),
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, commonName, -1, -1, 0) == 1,
              X509_set_issuer_name(certificate, name) == 1
        else {
            throw generationFailure("setting the subject and issuer failed")
        }

        var extensions = [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature"),
            (NID_ext_key_usage, "serverAuth"),
            (NID_subject_key_identifier, "hash"),
        ]
        if !alternativeNames.isEmpty {
            let entries = alternativeNames.map { name in
                ServerName(name).isIPAddress ? "IP:\(ServerName(name).text)" : "DNS:\(name)"
            }
            extensions.append((NID_subject_alt_name, entries.joined(separator: ",")))
        }
        try addExtensions(extensions, to: certificate)
    }

    private static func addExtensions(_ extensions: [(Int32, String)], to certificate: OpaquePointer) throws {
        var context = X509V3_CTX()
        X509V3_set_ctx(&context, certificate, certificate, nil, nil, 0)
        for (nid, value) in extensions {
            guard let item = X509V3_EXT_conf_nid(nil, &context, nid, value) else {
                throw generationFailure("the extension \(String(cString: OBJ_nid2sn(nid))) = \(value) is invalid")
            }
            defer {
                X509_EXTENSION_free(item)
            }
            guard X509_add_ext(certificate, item, -1) == 1 else {
                throw generationFailure("adding an extension failed")
            }
        }
    }

    private static func generationFailure(_ summary: String) -> TLSError {
        let detail = OpenSSLErrorQueue.drainedDescription(fallback: "")
        return TLSError(
            kind: .certificateGenerationFailed,
            reason: detail.isEmpty ? summary : "\(summary) (\(detail))"
        )
    }
}
