import CIDN2
import Glibc

/// A domain name that IDNA 2008 rejects.
public struct IDNAError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The domain as given.
    public let domain: String
    /// libidn2's description of the problem, such as "string contains a disallowed character".
    public let reason: String

    public var description: String {
        "The domain \"\(domain)\" is not a valid internationalized domain name: \(reason). "
            + "Check it for typing errors, symbols and emoji, which IDNA 2008 does not allow."
    }
}

/// Internationalized domain names: IDNA 2008 (RFC 5890 to 5893) with the UTS #46 mapping, through libidn2.
public enum IDNA {
    /// Returns `domain` with every label that is not ASCII converted to an A-label (`xn--…`), the form an
    /// SMTP envelope without SMTPUTF8 needs, such as `xn--bcher-kva.example` for `bücher.example`.
    ///
    /// The UTS #46 mapping runs first in non-transitional mode, so upper case is lowered and `ß` stays
    /// `ß`. A domain that is all ASCII is returned as it is, and so is a domain literal such as `[192.0.2.1]`.
    ///
    /// - Throws: `IDNAError` when libidn2 rejects the domain, for example for a disallowed code point.
    public static func toASCII(_ domain: String) throws(IDNAError) -> String {
        if domain.utf8.allSatisfy({ $0 < 0x80 }) || domain.hasPrefix("[") {
            return domain
        }
        var output: UnsafeMutablePointer<CChar>?
        let flags = Int32(IDN2_NONTRANSITIONAL.rawValue | IDN2_NFC_INPUT.rawValue)
        let status = idn2_to_ascii_8z(domain, &output, flags)
        return try result(status, output, domain: domain)
    }

    /// Returns `domain` with its A-labels converted back to Unicode, for display.
    ///
    /// - Throws: `IDNAError` when a label is not a valid A-label.
    public static func toUnicode(_ domain: String) throws(IDNAError) -> String {
        var output: UnsafeMutablePointer<CChar>?
        let status = idn2_to_unicode_8z8z(domain, &output, 0)
        return try result(status, output, domain: domain)
    }

    private static func result(_ status: Int32, _ output: UnsafeMutablePointer<CChar>?, domain: String) throws(IDNAError) -> String {
        defer { idn2_free(output) }
        guard status == Int32(IDN2_OK.rawValue), let output else {
            let reason = idn2_strerror(status).map { String(cString: $0) } ?? "error \(status)"
            throw IDNAError(domain: domain, reason: reason)
        }
        return String(cString: output)
    }
}

extension MailAddress {
    /// Returns the address for an SMTP envelope without SMTPUTF8: the local part with the domain in A-labels.
    ///
    /// - Throws: `IDNAError` when the domain is not a valid internationalized domain name.
    public func addrSpecWithASCIIDomain() throws(IDNAError) -> String {
        localPart + "@" + (try IDNA.toASCII(domain))
    }
}
