/// XOAUTH2, Google's and Microsoft's mechanism for OAuth 2.0 bearer tokens, documented by Google
/// ("OAuth 2.0 Mechanism", Gmail IMAP/SMTP guide) and not registered with IANA.
///
/// The initial response is `user=<user>\x01auth=Bearer <token>\x01\x01`. A server that rejects the
/// token sends a 334 challenge with a JSON error, to which the client sends an empty response,
/// and then replies 535. The JSON is kept in `serverError`.
public struct XOAuth2Mechanism: SASLMechanism, SASLServerErrorReporting, CustomReflectable {
    public let name = "XOAUTH2"
    public let username: String
    private let token: Secret
    /// The error the server sent as a challenge, decoded, or nil when it sent none.
    public private(set) var serverError: String?
    private var respondedToErrorChallenge = false

    /// Creates the mechanism, or throws when the token is empty or contains characters that a
    /// bearer token cannot, or the user name contains a control character.
    public init(username: String, token: Secret) throws(SASLError) {
        try validateOAuthField(username, field: "user name", mechanism: "XOAUTH2")
        try validateBearerToken(token, mechanism: "XOAUTH2")
        self.username = username
        self.token = token
    }

    public mutating func initialResponse() throws(SASLError) -> [UInt8]? {
        Array("user=\(username)\u{01}auth=Bearer \(token.value)\u{01}\u{01}".utf8)
    }

    public mutating func response(to challenge: [UInt8]) throws(SASLError) -> [UInt8] {
        guard !respondedToErrorChallenge else {
            throw SASLError(
                mechanism: name, message: "the server sent a second challenge after its error, but XOAUTH2 expects one")
        }
        respondedToErrorChallenge = true
        serverError = oauthServerErrorText(challenge)
        return []
    }

    public var description: String { "XOAUTH2 for \(username)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
