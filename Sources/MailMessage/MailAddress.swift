/// An email address (an RFC 5322 mailbox): a local part and a domain, with an optional display name.
///
/// Values come only from parsing, so every address is valid RFC 5322 (with the UTF-8 of RFC 6532) and
/// contains no CR, LF or NUL. The parts are stored in the form that an SMTP envelope uses, so obsolete
/// syntax, comments and folding white space from the input are not kept. Equality compares the parts
/// exactly, so `User@Example.org` and `user@example.org` are different values.
public struct MailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The local part as it must appear in an SMTP envelope (RFC 5321 section 4.1.2): a dot-string such as
    /// `john.doe` when the content is one, else a quoted string such as `"john q"` with a backslash before
    /// each `"` and `\`. A quoted local part whose content is a dot-string is stored without quotes.
    public let localPart: String

    /// The domain: labels joined by dots as written, or a domain literal such as `[192.0.2.1]` with its
    /// brackets and its content as written.
    public let domain: String

    /// The display name with quotes removed, quoted pairs unescaped and comments dropped, or nil when the
    /// address has none or it is empty. RFC 2047 encoded words are kept as written, not decoded.
    public let displayName: String?

    init(localPart: String, domain: String, displayName: String?) {
        self.localPart = localPart
        self.domain = domain
        self.displayName = displayName
    }

    // mailbox = name-addr / addr-spec
    /// Parses exactly one address, either a bare addr-spec (`user@example.org`) or a name-addr
    /// (`Name <user@example.org>`), with optional comments and white space around it.
    ///
    /// - Throws: `AddressParseError` for invalid input, for a group, and for anything after the address,
    ///   such as a second address.
    public init(parsing text: String) throws(AddressParseError) {
        self = try AddressParser.parseMailbox(text.utf8)
    }

    /// Parses exactly one address from UTF-8 bytes, as `init(parsing:)` with a `String` does.
    public init(parsing bytes: some Collection<UInt8>) throws(AddressParseError) {
        self = try AddressParser.parseMailbox(bytes)
    }

    /// The address as `local-part@domain`, the form that SMTP `MAIL FROM` and `RCPT TO` take in angle brackets.
    public var addrSpec: String {
        localPart + "@" + domain
    }

    /// Whether the local part, the domain and the display name are all ASCII.
    public var isASCII: Bool {
        [localPart, domain, displayName ?? ""].allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
    }

    /// Whether the envelope address has non-ASCII characters, so that sending to or from it needs the
    /// SMTPUTF8 extension (RFC 6531). The display name does not count here, but a message that contains a
    /// non-ASCII display name unencoded in a header field also needs SMTPUTF8.
    public var requiresSMTPUTF8: Bool {
        !addrSpec.utf8.allSatisfy { $0 < 0x80 }
    }

    /// The address in the form of an RFC 5322 mailbox, such as `"Joe Q. Public" <john.q.public@example.com>`
    /// or `user@example.org`.
    ///
    /// A display name of atoms separated by single spaces is written as it is, any other display name as a
    /// quoted string. Non-ASCII text is written as UTF-8 (RFC 6532), not as RFC 2047 encoded words.
    public var description: String {
        guard let displayName else {
            return addrSpec
        }
        return Self.formatPhrase(displayName) + " <" + addrSpec + ">"
    }

    /// Returns `text` as a phrase: unchanged when it is atoms separated by single spaces, else quoted.
    static func formatPhrase(_ text: String) -> String {
        let words = text.utf8.split(separator: MailCharacters.space, omittingEmptySubsequences: false)
        let isAtoms = words.allSatisfy { word in !word.isEmpty && word.allSatisfy(MailCharacters.isAtomText) }
        return isAtoms ? text : MailCharacters.quoted(text)
    }
}
