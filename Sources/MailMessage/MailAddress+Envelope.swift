/// The checks that an address must pass before it goes into an SMTP envelope (RFC 5321).
extension MailAddress {
    /// Maximum length of a local part in octets (RFC 5321 section 4.5.3.1.1).
    public static let maximumLocalPartLength = 64
    /// Maximum length of a domain in octets (RFC 5321 section 4.5.3.1.2).
    public static let maximumDomainLength = 255
    /// Maximum length of a path, `<local-part@domain>` with its angle brackets, in octets
    /// (RFC 5321 section 4.5.3.1.3). It limits `addrSpec` to 254 octets.
    public static let maximumPathLength = 256

    /// Checks that the address can be used in `MAIL FROM` or `RCPT TO`.
    ///
    /// The checks run in this order:
    /// - the RFC 5321 length limits `maximumLocalPartLength`, `maximumDomainLength` and `maximumPathLength`,
    ///   counted in UTF-8 octets;
    /// - no control characters in the local part, because a tab is valid in an RFC 5322 quoted string but
    ///   not in SMTP;
    /// - a domain in RFC 5321 syntax: labels of letters, digits and inner hyphens, or an IPv4 or IPv6 address
    ///   literal. Following RFC 6531, non-ASCII characters count as letters.
    ///
    /// Parsing does not apply these checks, because header fields may contain addresses that no envelope
    /// could carry.
    ///
    /// NOTE: non-ASCII labels are not checked against the IDNA2008 rules for U-labels.
    ///
    /// - Throws: `EnvelopeAddressError` for the first check that fails.
    public func validateForEnvelope() throws(EnvelopeAddressError) {
        let localLength = localPart.utf8.count
        guard localLength <= Self.maximumLocalPartLength else {
            throw .localPartTooLong(addrSpec: addrSpec, length: localLength, maximum: Self.maximumLocalPartLength)
        }
        let domainLength = domain.utf8.count
        guard domainLength <= Self.maximumDomainLength else {
            throw .domainTooLong(addrSpec: addrSpec, length: domainLength, maximum: Self.maximumDomainLength)
        }
        let pathLength = addrSpec.utf8.count + 2
        guard pathLength <= Self.maximumPathLength else {
            throw .pathTooLong(addrSpec: addrSpec, length: pathLength, maximum: Self.maximumPathLength)
        }
        if localPart.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw .invalidLocalPart(addrSpec: addrSpec, reason: "it contains a tab or another control character")
        }
        if let reason = Self.domainSyntaxProblem(domain) {
            throw .invalidDomain(addrSpec: addrSpec, reason: reason)
        }
    }

    // Domain = sub-domain *("." sub-domain)
    // sub-domain = Let-dig [Ldh-str]
    // Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
    /// Returns why `domain` is not an RFC 5321 domain or address literal, or nil when it is one.
    private static func domainSyntaxProblem(_ domain: String) -> String? {
        if domain.hasPrefix("[") {
            return addressLiteralProblem(String(domain.dropFirst().dropLast()))
        }
        for label in domain.utf8.split(separator: MailCharacters.dot, omittingEmptySubsequences: false) {
            let labelText = String(decoding: label, as: UTF8.self)
            guard let first = label.first, let last = label.last else {
                return "it has an empty label"
            }
            guard isLetterOrDigit(first), isLetterOrDigit(last) else {
                return "label \"\(labelText)\" must start and end with a letter or digit"
            }
            guard label.allSatisfy({ isLetterOrDigit($0) || $0 == MailCharacters.hyphen }) else {
                return "label \"\(labelText)\" may contain only letters, digits and hyphens"
            }
        }
        return nil
    }

    // address-literal = "[" ( IPv4-address-literal / IPv6-address-literal / General-address-literal ) "]"
    // IPv6-address-literal = "IPv6:" IPv6-addr
    /// Returns why `content`, the text between the brackets, is not an IPv4 or IPv6 address literal.
    /// Other General-address-literal tags are rejected, because the IANA registry of address literal tags
    /// lists only IPv6 (registry last updated 2008-10-01).
    private static func addressLiteralProblem(_ content: String) -> String? {
        if content.utf8.allSatisfy({ isDigit($0) || $0 == MailCharacters.dot }) {
            return isIPv4Address(Substring(content)) ? nil : "[\(content)] is not a valid IPv4 address"
        }
        let tag = "IPv6:"
        guard MailCharacters.equalsIgnoringASCIICase(content.utf8.prefix(tag.utf8.count), tag.utf8) else {
            return "address literal [\(content)] must be an IPv4 address or start with \"IPv6:\""
        }
        return isIPv6Address(content.dropFirst(tag.count)) ? nil : "[\(content)] is not a valid IPv6 address"
    }

    // IPv4-address-literal = Snum 3("." Snum)
    // Snum = 1*3DIGIT, representing a decimal integer value in the range 0 through 255
    private static func isIPv4Address(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            (1...3).contains(part.count) && part.utf8.allSatisfy(isDigit) && Int(part).map { $0 <= 255 } == true
        }
    }

    // IPv6-addr = IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp
    // IPv6-hex = 1*4HEXDIG
    // IPv6-full = IPv6-hex 7(":" IPv6-hex)
    // IPv6-comp = [IPv6-hex *5(":" IPv6-hex)] "::" [IPv6-hex *5(":" IPv6-hex)]
    // IPv6v4-full = IPv6-hex 5(":" IPv6-hex) ":" IPv4-address-literal
    // IPv6v4-comp = [IPv6-hex *3(":" IPv6-hex)] "::" [IPv6-hex *3(":" IPv6-hex) ":"] IPv4-address-literal
    // In the compressed forms, at most 6 groups (4 with an IPv4 part) may appear besides the "::".
    private static func isIPv6Address(_ text: Substring) -> Bool {
        var groups = text
        var maximumGroups = 8
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard isIPv4Address(text[text.index(after: lastColon)...]) else {
                return false
            }
            // Keep the colon when it is part of "::", so that the split below still finds "::".
            let isCompressionColon = lastColon > text.startIndex && text[text.index(before: lastColon)] == ":"
            groups = text[..<(isCompressionColon ? text.index(after: lastColon) : lastColon)]
            maximumGroups = 6
        }
        let halves = groups.split(separator: "::", omittingEmptySubsequences: false)
        func hexGroups(_ half: Substring) -> Int? {
            guard !half.isEmpty else {
                return 0
            }
            let parts = half.split(separator: ":", omittingEmptySubsequences: false)
            let valid = parts.allSatisfy { part in
                (1...4).contains(part.utf8.count) && part.utf8.allSatisfy(isHexDigit)
            }
            return valid ? parts.count : nil
        }
        switch halves.count {
        case 1:
            return hexGroups(halves[0]) == maximumGroups
        case 2:
            guard let before = hexGroups(halves[0]), let after = hexGroups(halves[1]) else {
                return false
            }
            return before + after <= maximumGroups - 2
        default:
            return false
        }
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
    }

    /// Let-dig, with every byte of a non-ASCII character counted as a letter (RFC 6531).
    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), 0x80...0xFF:
            return true
        default:
            return false
        }
    }
}
