/// OAUTHBEARER (RFC 7628) for OAuth 2.0 bearer tokens.
///
/// The initial response is the gs2 header `n,a=<user>,` followed by
/// `\x01host=<host>\x01port=<port>\x01auth=Bearer <token>\x01\x01`. A server that rejects the
/// token sends a 334 challenge with a JSON error (RFC 7628 section 3.2.2). The client responds with
/// the single byte 0x01 (section 3.2.3), and the server then replies 535. The JSON is kept in
/// `serverError`.
public struct OAuthBearerMechanism: SASLMechanism, SASLServerErrorReporting, CustomReflectable {
    public let name = "OAUTHBEARER"
    public let username: String
    /// The server's host name as the client connected to it, or "" to leave out the optional
    /// `host` field.
    public let host: String
    /// The server's port, or 0 to leave out the optional `port` field.
    public let port: UInt16
    private let token: Secret
    /// The error the server sent as a challenge, decoded, or nil when it sent none.
    public private(set) var serverError: String?
    private var respondedToErrorChallenge = false

    /// Creates the mechanism, or throws when the token is empty or contains characters that a
    /// bearer token cannot, or the user name or host contains a control character.
    public init(username: String, token: Secret, host: String, port: UInt16) throws(SASLError) {
        try validateOAuthField(username, field: "user name", mechanism: "OAUTHBEARER")
        try validateOAuthField(host, field: "host name", mechanism: "OAUTHBEARER")
        try validateBearerToken(token, mechanism: "OAUTHBEARER")
        self.username = username
        self.host = host
        self.port = port
        self.token = token
    }

    public mutating func initialResponse() throws(SASLError) -> [UInt8]? {
        var response = "n,a=\(saslName(username)),\u{01}"
        if !host.isEmpty {
            response += "host=\(host)\u{01}"
        }
        if port != 0 {
            response += "port=\(port)\u{01}"
        }
        response += "auth=Bearer \(token.value)\u{01}\u{01}"
        return Array(response.utf8)
    }

    public mutating func response(to challenge: [UInt8]) throws(SASLError) -> [UInt8] {
        guard !respondedToErrorChallenge else {
            throw SASLError(
                mechanism: name,
                message: "the server sent a second challenge after its error, but OAUTHBEARER expects one")
        }
        respondedToErrorChallenge = true
        serverError = oauthServerErrorText(challenge)
        return [0x01]
    }

    public var description: String { "OAUTHBEARER for \(username)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
