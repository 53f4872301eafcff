/// A named group of addresses (RFC 5322 section 3.4), such as `team: a@x.example, b@y.example;` or
/// `undisclosed-recipients:;`.
public struct AddressGroup: Sendable, Hashable, CustomStringConvertible {
    /// The group name, read as `MailAddress.displayName` is read. It may be empty, as in `"":;`.
    public let displayName: String

    /// The members in the order written. An empty group has none.
    public let members: [MailAddress]

    init(displayName: String, members: [MailAddress]) {
        self.displayName = displayName
        self.members = members
    }

    /// The group in RFC 5322 form, such as `team: a@x.example, b@y.example;`.
    public var description: String {
        let name = displayName.isEmpty ? "\"\"" : MailAddress.formatPhrase(displayName)
        let list = members.map(\.description).joined(separator: ", ")
        return name + ":" + (list.isEmpty ? "" : " " + list) + ";"
    }
}
