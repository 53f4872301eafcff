/// PLAIN (RFC 4616): one initial response, `authzid NUL authcid NUL passwd`, in UTF-8.
///
/// The strings are sent as given. SASLprep is the server's job here (RFC 4616 section 2), and
/// PLAIN sends the password itself, so use it only over TLS.
public struct PlainMechanism: SASLMechanism, CustomReflectable {
    public let name = "PLAIN"
    public let username: String
    /// The identity to act as, or "" to act as `username`.
    public let authorizationIdentity: String
    private let password: Secret

    /// Creates the mechanism, or throws when a string contains NUL, which PLAIN uses as its
    /// separator and so cannot send.
    public init(username: String, password: Secret, authorizationIdentity: String = "") throws(SASLError) {
        let fields = [
            ("authorization identity", authorizationIdentity), ("user name", username),
            ("password", password.value),
        ]
        for (field, value) in fields where value.utf8.contains(0) {
            throw SASLError(
                mechanism: "PLAIN",
                message: "the \(field) contains a NUL character, which PLAIN uses as its separator. "
                    + "Remove it or use another mechanism")
        }
        self.username = username
        self.password = password
        self.authorizationIdentity = authorizationIdentity
    }

    public mutating func initialResponse() throws(SASLError) -> [UInt8]? {
        return Array(authorizationIdentity.utf8) + [0] + Array(username.utf8) + [0] + Array(password.value.utf8)
    }

    public mutating func response(to challenge: [UInt8]) throws(SASLError) -> [UInt8] {
        throw SASLError(
            mechanism: name,
            message: "the server sent a challenge after the initial response, but PLAIN has nothing more to send")
    }

    public var description: String { "PLAIN for \(username)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
