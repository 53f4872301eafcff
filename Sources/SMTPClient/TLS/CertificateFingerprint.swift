import COpenSSL

/// SHA-256 certificate fingerprints: computing, formatting and parsing them.
enum CertificateFingerprint {
    /// Returns the SHA-256 digest of the DER encoding of an OpenSSL `X509` certificate.
    static func sha256(of certificate: OpaquePointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(certificate, EVP_sha256(), &digest, &length) == 1 else {
            return []
        }
        return Array(digest.prefix(Int(length)))
    }

    /// Formats a digest as colon-separated upper-case hex, such as `AB:CD:01`.
    static func format(_ digest: [UInt8]) -> String {
        digest.map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return byte < 16 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    /// Parses a SHA-256 fingerprint written as 64 hex digits, with or without colons between the bytes,
    /// in either case. Returns nil for anything else.
    static func parseSHA256(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingWhitespace()
        let digits: [Character]
        if trimmed.contains(":") {
            let groups = trimmed.split(separator: ":", omittingEmptySubsequences: false)
            guard groups.count == 32, groups.allSatisfy({ $0.count == 2 }) else {
                return nil
            }
            digits = Array(groups.joined())
        } else {
            digits = Array(trimmed)
        }
        guard digits.count == 64 else {
            return nil
        }

        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var index = 0
        while index < digits.count {
            guard let high = digits[index].hexDigitValue, let low = digits[index + 1].hexDigitValue else {
                return nil
            }
            bytes.append(UInt8(high * 16 + low))
            index += 2
        }
        return bytes
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> Substring {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return self[start..<end]
    }
}
