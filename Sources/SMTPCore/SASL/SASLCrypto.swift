import COpenSSL
import Foundation

/// The hash functions that the SASL mechanisms use, computed by OpenSSL.
enum SASLHashFunction: Sendable, Hashable {
    case md5
    case sha1
    case sha256

    /// The digest length in bytes.
    var digestLength: Int {
        switch self {
        case .md5: 16
        case .sha1: 20
        case .sha256: 32
        }
    }

    /// The name OpenSSL and the SASL registry use, for error messages.
    var displayName: String {
        switch self {
        case .md5: "MD5"
        case .sha1: "SHA-1"
        case .sha256: "SHA-256"
        }
    }

    fileprivate var messageDigest: OpaquePointer? {
        switch self {
        case .md5: EVP_md5()
        case .sha1: EVP_sha1()
        case .sha256: EVP_sha256()
        }
    }
}

/// Thin wrappers over OpenSSL. Each returns nil when OpenSSL reports a failure, for example when
/// MD5 is unavailable because the FIPS provider is the only one loaded.
enum SASLCrypto {
    static func hash(_ function: SASLHashFunction, _ data: [UInt8]) -> [UInt8]? {
        var digest = [UInt8](repeating: 0, count: function.digestLength)
        var length: UInt32 = 0
        let status = withNonNullBytes(data) { dataPointer, dataCount in
            EVP_Digest(dataPointer, dataCount, &digest, &length, function.messageDigest, nil)
        }
        guard status == 1, Int(length) == function.digestLength else { return nil }
        return digest
    }

    static func hmac(_ function: SASLHashFunction, key: [UInt8], message: [UInt8]) -> [UInt8]? {
        var digest = [UInt8](repeating: 0, count: function.digestLength)
        var length: UInt32 = 0
        let result = withNonNullBytes(key) { keyPointer, keyCount in
            withNonNullBytes(message) { messagePointer, messageCount in
                HMAC(
                    function.messageDigest, keyPointer, Int32(keyCount),
                    messagePointer.assumingMemoryBound(to: UInt8.self), messageCount, &digest, &length)
            }
        }
        guard result != nil, Int(length) == function.digestLength else { return nil }
        return digest
    }

    /// PBKDF2 with HMAC over `function` (RFC 8018 section 5.2), producing one digest length of key,
    /// which is SCRAM's Hi() function (RFC 5802 section 2.2).
    static func pbkdf2(
        _ function: SASLHashFunction, password: [UInt8], salt: [UInt8], iterations: Int
    ) -> [UInt8]? {
        guard iterations > 0, iterations <= Int(Int32.max) else { return nil }
        var key = [UInt8](repeating: 0, count: function.digestLength)
        let status = withNonNullBytes(password) { passwordPointer, passwordCount in
            withNonNullBytes(salt) { saltPointer, saltCount in
                PKCS5_PBKDF2_HMAC(
                    passwordPointer.assumingMemoryBound(to: CChar.self), Int32(passwordCount),
                    saltPointer.assumingMemoryBound(to: UInt8.self), Int32(saltCount), Int32(iterations),
                    function.messageDigest, Int32(key.count), &key)
            }
        }
        return status == 1 ? key : nil
    }

    /// Returns `count` bytes from OpenSSL's cryptographically secure generator.
    static func randomBytes(count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        return RAND_bytes(&bytes, Int32(count)) == 1 ? bytes : nil
    }

    /// Compares in time that depends only on the length, so that a server cannot learn from timing
    /// how many leading bytes of a forged signature were right.
    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return withNonNullBytes(lhs) { lhsPointer, count in
            withNonNullBytes(rhs) { rhsPointer, _ in
                CRYPTO_memcmp(lhsPointer, rhsPointer, count) == 0
            }
        }
    }

    /// Calls `body` with a pointer that is never null, even for an empty array, because some
    /// OpenSSL functions treat a null key or buffer differently from an empty one.
    private static func withNonNullBytes<Result>(
        _ bytes: [UInt8], _ body: (UnsafeRawPointer, Int) -> Result
    ) -> Result {
        if bytes.isEmpty {
            var placeholder: UInt8 = 0
            return withUnsafeBytes(of: &placeholder) { body($0.baseAddress!, 0) }
        }
        return bytes.withUnsafeBytes { body($0.baseAddress!, $0.count) }
    }
}

/// Base64 as SASL uses it (RFC 4648 section 4, with padding).
enum SASLBase64 {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
    }

    /// Decodes strict base64, or returns nil for anything else, including whitespace.
    static func decode(_ text: String) -> [UInt8]? {
        Data(base64Encoded: text).map { Array($0) }
    }
}
