/// A list of addresses and groups, as in the To, Cc and Bcc fields (RFC 5322 section 3.4).
public struct AddressList: Sendable, Hashable, CustomStringConvertible {
    /// One element of an address list.
    public enum Entry: Sendable, Hashable, CustomStringConvertible {
        case mailbox(MailAddress)
        case group(AddressGroup)

        /// The address of a mailbox, or the members of a group.
        public var addresses: [MailAddress] {
            switch self {
            case .mailbox(let address): [address]
            case .group(let group): group.members
            }
        }

        /// The entry in RFC 5322 form.
        public var description: String {
            switch self {
            case .mailbox(let address): address.description
            case .group(let group): group.description
            }
        }
    }

    /// The mailboxes and groups in the order written. Empty elements between commas are not kept.
    public let entries: [Entry]

    /// Creates a list from entries that were parsed before.
    public init(_ entries: [Entry]) {
        self.entries = entries
    }

    // address-list = (address *("," address)) / obs-addr-list
    /// Parses an address list, such as the value of a To field: addresses and groups separated by commas.
    ///
    /// The obsolete forms of RFC 5322 section 4.4 are accepted: empty elements between commas
    /// (`a@x.example, , b@y.example`), source routes in angle addresses, phrases with dots, and comments and
    /// white space around the dots of local parts and domains.
    ///
    /// - Throws: `AddressParseError` when the input is invalid or contains no address and no group.
    public init(parsing text: String) throws(AddressParseError) {
        entries = try AddressParser.parseAddressList(text.utf8)
    }

    /// Parses an address list from UTF-8 bytes, as `init(parsing:)` with a `String` does.
    public init(parsing bytes: some Collection<UInt8>) throws(AddressParseError) {
        entries = try AddressParser.parseAddressList(bytes)
    }

    // mailbox-list = (mailbox *("," mailbox)) / obs-mbox-list
    /// Parses a mailbox list, such as the value of a From field: an address list without groups.
    ///
    /// - Throws: `AddressParseError` when the input is invalid, contains a group or contains no address.
    public init(parsingMailboxList text: String) throws(AddressParseError) {
        entries = try AddressParser.parseMailboxList(text.utf8).map(Entry.mailbox)
    }

    /// Parses a mailbox list from UTF-8 bytes, as `init(parsingMailboxList:)` with a `String` does.
    public init(parsingMailboxList bytes: some Collection<UInt8>) throws(AddressParseError) {
        entries = try AddressParser.parseMailboxList(bytes).map(Entry.mailbox)
    }

    /// Every address in the order written, with the members of each group in place of the group.
    public var addresses: [MailAddress] {
        entries.flatMap(\.addresses)
    }

    /// The list in RFC 5322 form, with entries separated by ", ".
    public var description: String {
        entries.map(\.description).joined(separator: ", ")
    }
}
