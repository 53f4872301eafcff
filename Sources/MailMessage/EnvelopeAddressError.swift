/// An error that rejects an address for use in an SMTP envelope (`MAIL FROM` or `RCPT TO`).
/// Each case carries the address as `local-part@domain`.
public enum EnvelopeAddressError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The local part is longer than `maximum` octets.
    case localPartTooLong(addrSpec: String, length: Int, maximum: Int)
    /// The domain is longer than `maximum` octets.
    case domainTooLong(addrSpec: String, length: Int, maximum: Int)
    /// The path, `<local-part@domain>`, is longer than `maximum` octets.
    case pathTooLong(addrSpec: String, length: Int, maximum: Int)
    /// The local part contains a character that SMTP cannot carry. `reason` describes the character.
    case invalidLocalPart(addrSpec: String, reason: String)
    /// The domain is not a domain name or address literal in RFC 5321 syntax. `reason` gives the cause.
    case invalidDomain(addrSpec: String, reason: String)

    /// The problem, the address and the limit or rule it breaks.
    public var description: String {
        switch self {
        case .localPartTooLong(let addrSpec, let length, let maximum):
            return "local part of <\(addrSpec)> is \(length) octets long, more than the SMTP maximum of \(maximum)"
        case .domainTooLong(let addrSpec, let length, let maximum):
            return "domain of <\(addrSpec)> is \(length) octets long, more than the SMTP maximum of \(maximum)"
        case .pathTooLong(let addrSpec, let length, let maximum):
            return "path <\(addrSpec)> is \(length) octets long, more than the SMTP maximum of \(maximum)"
        case .invalidLocalPart(let addrSpec, let reason):
            return "invalid local part in <\(addrSpec)> for SMTP: \(reason)"
        case .invalidDomain(let addrSpec, let reason):
            return "invalid domain in <\(addrSpec)> for SMTP: \(reason)"
        }
    }
}
