/// LOGIN (draft-murchison-sasl-login-00): no initial response, then the user name and the password,
/// each as the response to one challenge.
///
/// Servers usually send "Username:" and "Password:", but some send other text, so the challenges
/// are matched by position and their text is ignored. LOGIN sends the password itself, so use it
/// only over TLS.
public struct LoginMechanism: SASLMechanism, CustomReflectable {
    public let name = "LOGIN"
    public let username: String
    private let password: Secret
    private var challengesAnswered = 0

    public init(username: String, password: Secret) {
        self.username = username
        self.password = password
    }

    public mutating func initialResponse() throws(SASLError) -> [UInt8]? {
        nil
    }

    public mutating func response(to challenge: [UInt8]) throws(SASLError) -> [UInt8] {
        challengesAnswered += 1
        switch challengesAnswered {
        case 1:
            return Array(username.utf8)
        case 2:
            return Array(password.value.utf8)
        default:
            throw SASLError(
                mechanism: name,
                message: "the server sent a third challenge after the user name and password, but LOGIN has "
                    + "nothing more to send")
        }
    }

    public var description: String { "LOGIN for \(username)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
