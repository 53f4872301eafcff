/// A SASL mechanism as SMTP AUTH uses it (RFC 4954): an optional initial response, then one response
/// for each 334 challenge, until the server replies 235 or rejects the exchange.
///
/// Challenges and responses are the decoded bytes; the session does the base64 encoding. An
/// instance serves one exchange and is not reused.
///
/// The description names the mechanism and the user, never the secret, so a mechanism can be
/// logged. Conforming types also hide their stored properties from `Mirror` and `dump`.
public protocol SASLMechanism: Sendable, CustomStringConvertible {
    /// The mechanism's registered name, upper-case, as sent with AUTH and offered in EHLO.
    var name: String { get }

    /// Returns the initial response sent with the AUTH command, or nil when the mechanism waits for
    /// the server's first challenge. An empty array is sent as "=" (RFC 4954 section 4).
    mutating func initialResponse() throws(SASLError) -> [UInt8]?

    /// Returns the response to a 334 challenge.
    ///
    /// - Throws: `SASLError` when the challenge is malformed or, for mechanisms with mutual
    ///   authentication such as SCRAM, when the server fails to prove that it has the password. The
    ///   session then cancels the exchange with "*".
    mutating func response(to challenge: [UInt8]) throws(SASLError) -> [UInt8]

    /// Checks, after the server's 235 reply, that the exchange completed as the mechanism requires.
    /// SCRAM fails here when the server never sent its signature.
    func verifyCompletion() throws(SASLError)
}

extension SASLMechanism {
    public func verifyCompletion() throws(SASLError) {}
}

/// A SASL exchange that cannot go on, or no mechanism that fits. The message never contains a
/// password, a token or a response that carries one.
public struct SASLError: Error, Sendable, Hashable, CustomStringConvertible {
    public let mechanism: String
    public let message: String

    public init(mechanism: String, message: String) {
        self.mechanism = mechanism
        self.message = message
    }

    public var description: String { "\(mechanism) authentication failed: \(message)" }
}

/// A secret such as a password or an OAuth 2.0 token. Its description is redacted, so printing a
/// value that contains one, logging it or putting it in an error message cannot reveal it.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The secret itself. Read it only to compute a SASL response.
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}

/// The credentials the client authenticates with.
public enum SASLCredentials: Sendable, Hashable, CustomStringConvertible {
    /// A user name and password, for PLAIN, LOGIN, CRAM-MD5 and SCRAM.
    case password(username: String, password: Secret)
    /// A user name and an OAuth 2.0 bearer token, for XOAUTH2 and OAUTHBEARER.
    case oauth2(username: String, token: Secret)

    public var username: String {
        switch self {
        case .password(let username, _), .oauth2(let username, _): username
        }
    }

    public var description: String {
        switch self {
        case .password(let username, _): "password for \(username)"
        case .oauth2(let username, _): "OAuth 2.0 token for \(username)"
        }
    }
}
