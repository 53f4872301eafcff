/// SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), without channel binding.
///
/// The exchange:
/// ```
/// C: n,,n=user,r=<client nonce>                        (initial response)
/// S: r=<client nonce><server nonce>,s=<salt>,i=<count>  (server-first-message)
/// C: c=biws,r=<nonce>,p=<client proof>                  (client-final-message)
/// S: v=<server signature>  or  e=<error>               (server-final-message)
/// C: (empty response), then the server replies 235
/// ```
/// The server's signature proves that it has the user's SCRAM credentials, and `response(to:)` checks it.
/// `verifyCompletion()` fails when the server replied 235 without sending it. The gs2 header is
/// "n,,": this client does not support channel binding, so the -PLUS variants are not offered.
///
/// SASLprep is applied to the user name and the password (see `SASLPrep` for what it covers).
public struct SCRAMMechanism: SASLMechanism, CustomReflectable {
    public enum Variant: String, Sendable, Hashable, CaseIterable {
        case sha1 = "SCRAM-SHA-1"
        case sha256 = "SCRAM-SHA-256"

        var hashFunction: SASLHashFunction {
            switch self {
            case .sha1: .sha1
            case .sha256: .sha256
            }
        }
    }

    /// The fewest PBKDF2 iterations accepted from the server. RFC 5802 section 5.1 and RFC 7677
    /// section 3 recommend that servers announce at least 4096, and fewer make a captured exchange
    /// cheap to attack offline.
    public static let minimumIterationCount = 4096

    /// The default for the maximum PBKDF2 iterations accepted from the server. Every iteration
    /// costs the client CPU time, so a hostile or broken server could otherwise stall the client
    /// with a huge count. One million is above the 600,000 that the OWASP Password Storage Cheat
    /// Sheet (May 2023) recommends for PBKDF2-HMAC-SHA256, and took 0.3 s for SHA-256 on one AMD
    /// EPYC core (`openssl kdf ... -kdfopt iter:1000000 PBKDF2`, OpenSSL 3).
    ///
    /// NOTE: Keycloak's defaults, which follow the same guidance, use 1,300,000 iterations for
    /// PBKDF2-HMAC-SHA1. A SCRAM-SHA-1 server configured like that is rejected unless the caller
    /// raises `maximumIterationCount`.
    public static let defaultMaximumIterationCount = 1_000_000

    public let variant: Variant
    public var name: String { variant.rawValue }
    public let username: String
    /// The maximum PBKDF2 iterations this instance computes. A server that requests more is rejected.
    public let maximumIterationCount: Int

    /// The user name after SASLprep and saslname encoding, as sent in `n=`.
    private let encodedUsername: String
    /// The password after SASLprep.
    private let preparedPassword: Secret
    private let clientNonce: String
    private var state = State.initial

    private enum State: Sendable {
        case initial
        case awaitingServerFirst(clientFirstBare: String)
        case awaitingServerFinal(expectedServerSignature: [UInt8])
        case verified
        case failed
    }

    /// Creates the mechanism with a random client nonce, or throws when SASLprep rejects the user
    /// name or password, or when OpenSSL cannot produce random bytes.
    public init(
        variant: Variant, username: String, password: Secret,
        maximumIterationCount: Int = SCRAMMechanism.defaultMaximumIterationCount
    ) throws(SASLError) {
        // 18 random bytes give a 24-character base64 nonce, which never contains ",".
        guard let random = SASLCrypto.randomBytes(count: 18) else {
            throw SASLError(
                mechanism: variant.rawValue, message: "OpenSSL could not generate random bytes for the client nonce")
        }
        try self.init(
            variant: variant, username: username, password: password, clientNonce: SASLBase64.encode(random),
            maximumIterationCount: maximumIterationCount)
    }

    /// Creates the mechanism with a fixed client nonce, which only tests may do: a repeated nonce
    /// lets a recorded exchange be replayed.
    init(
        variant: Variant, username: String, password: Secret, clientNonce: String,
        maximumIterationCount: Int = SCRAMMechanism.defaultMaximumIterationCount
    ) throws(SASLError) {
        let mechanism = variant.rawValue
        guard !clientNonce.isEmpty, clientNonce.unicodeScalars.allSatisfy(Self.isNonceCharacter) else {
            throw SASLError(
                mechanism: mechanism, message: "the client nonce must be printable ASCII without \",\"")
        }
        guard maximumIterationCount >= Self.minimumIterationCount else {
            throw SASLError(
                mechanism: mechanism,
                message: "the maximum iteration count \(maximumIterationCount) is below the minimum of "
                    + "\(Self.minimumIterationCount). Raise it")
        }
        let preparedUsername: String
        do {
            preparedUsername = try SASLPrep.prepare(username)
        } catch {
            throw SASLError(
                mechanism: mechanism,
                message: "the user name contains \(codePointLabel(error.scalar)), which SASLprep (RFC 4013) "
                    + "prohibits, so SCRAM cannot send it")
        }
        guard !preparedUsername.isEmpty else {
            throw SASLError(mechanism: mechanism, message: "the user name is empty, but SCRAM requires one")
        }
        let preparedPassword: String
        do {
            preparedPassword = try SASLPrep.prepare(password.value)
        } catch {
            // The character is not named, because that would reveal part of the password.
            throw SASLError(
                mechanism: mechanism,
                message: "the password contains a character that SASLprep (RFC 4013) prohibits, such as a "
                    + "control or private-use character, so SCRAM cannot use it. Change the password or "
                    + "configure another mechanism")
        }
        self.variant = variant
        self.username = username
        self.maximumIterationCount = maximumIterationCount
        self.encodedUsername = saslName(preparedUsername)
        self.preparedPassword = Secret(preparedPassword)
        self.clientNonce = clientNonce
    }

    public mutating func initialResponse() throws(SASLError) -> [UInt8]? {
        guard case .initial = state else {
            state = .failed
            throw error("the initial response was requested twice. Start a new exchange")
        }
        let clientFirstBare = "n=\(encodedUsername),r=\(clientNonce)"
        state = .awaitingServerFirst(clientFirstBare: clientFirstBare)
        return Array(("n,," + clientFirstBare).utf8)
    }

    public mutating func response(to challenge: [UInt8]) throws(SASLError) -> [UInt8] {
        let current = state
        state = .failed
        switch current {
        case .initial:
            throw error("the server sent a challenge before the client-first-message was sent")
        case .awaitingServerFirst(let clientFirstBare):
            let (response, expectedServerSignature) = try clientFinalMessage(
                serverFirst: challenge, clientFirstBare: clientFirstBare)
            state = .awaitingServerFinal(expectedServerSignature: expectedServerSignature)
            return response
        case .awaitingServerFinal(let expectedServerSignature):
            try verifyServerFinal(challenge, expectedServerSignature: expectedServerSignature)
            state = .verified
            return []
        case .verified:
            throw error("the server sent another challenge after its signature, but SCRAM has nothing more to send")
        case .failed:
            throw error("the exchange already failed. Start a new one")
        }
    }

    public func verifyCompletion() throws(SASLError) {
        guard case .verified = state else {
            throw error(
                "the server accepted the login without proving that it has this user's credentials (no valid v= "
                    + "signature), so it may not be the server it claims to be")
        }
    }

    public var description: String { "\(name) for \(username)" }
    public var customMirror: Mirror { Mirror(self, children: []) }

    // MARK: - Messages

    /// Parses the server-first-message and computes the client-final-message and the server
    /// signature to expect (RFC 5802 section 3).
    private func clientFinalMessage(
        serverFirst challenge: [UInt8], clientFirstBare: String
    ) throws(SASLError) -> (response: [UInt8], expectedServerSignature: [UInt8]) {
        let serverFirst = try utf8Text(challenge, role: "server-first-message")
        let attributes = serverFirst.split(separator: ",", omittingEmptySubsequences: false)
        if attributes.first?.hasPrefix("m=") == true {
            throw error(
                "the server requires an extension (m=) that this client does not support: "
                    + quotedServerText(serverFirst))
        }
        guard attributes.count >= 3, attributes[0].hasPrefix("r="), attributes[1].hasPrefix("s="),
            attributes[2].hasPrefix("i=")
        else {
            throw error(
                "the server-first-message is not of the form r=<nonce>,s=<salt>,i=<iteration count>: "
                    + quotedServerText(serverFirst))
        }
        let nonce = String(attributes[0].dropFirst(2))
        guard nonce.hasPrefix(clientNonce) else {
            throw error(
                "the server's nonce does not start with the client nonce, so the reply does not belong to this "
                    + "exchange")
        }
        guard nonce.unicodeScalars.allSatisfy(Self.isNonceCharacter) else {
            throw error("the server's nonce contains characters other than printable ASCII")
        }
        guard let salt = SASLBase64.decode(String(attributes[1].dropFirst(2))), !salt.isEmpty else {
            throw error("the server's salt (s=) is empty or not valid base64: " + quotedServerText(serverFirst))
        }
        let iterations = try iterationCount(attributes[2].dropFirst(2))

        let hash = variant.hashFunction
        let clientFinalWithoutProof = "c=biws,r=\(nonce)"
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(clientFinalWithoutProof)".utf8)
        guard
            let saltedPassword = SASLCrypto.pbkdf2(
                hash, password: Array(preparedPassword.value.utf8), salt: salt, iterations: iterations),
            let clientKey = SASLCrypto.hmac(hash, key: saltedPassword, message: Array("Client Key".utf8)),
            let storedKey = SASLCrypto.hash(hash, clientKey),
            let clientSignature = SASLCrypto.hmac(hash, key: storedKey, message: authMessage),
            let serverKey = SASLCrypto.hmac(hash, key: saltedPassword, message: Array("Server Key".utf8)),
            let serverSignature = SASLCrypto.hmac(hash, key: serverKey, message: authMessage)
        else {
            throw error("OpenSSL could not compute PBKDF2 or HMAC with \(hash.displayName)")
        }
        let clientProof = zip(clientKey, clientSignature).map { $0 ^ $1 }
        let clientFinal = clientFinalWithoutProof + ",p=" + SASLBase64.encode(clientProof)
        return (Array(clientFinal.utf8), serverSignature)
    }

    private func iterationCount(_ text: Substring) throws(SASLError) -> Int {
        guard !text.isEmpty, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw error("the server's iteration count (i=) is not a positive decimal number: \"\(text.prefix(20))\"")
        }
        // A number too large for Int is certainly above the maximum.
        let count = Int(text) ?? Int.max
        guard count >= Self.minimumIterationCount else {
            throw error(
                "the server requested \(count) PBKDF2 iterations, below the minimum of \(Self.minimumIterationCount) "
                    + "that RFC 5802 and RFC 7677 recommend. Ask the server's administrator to raise it")
        }
        guard count <= maximumIterationCount else {
            throw error(
                "the server requested \(text.prefix(20)) PBKDF2 iterations, above this client's maximum of "
                    + "\(maximumIterationCount). Raise the maximum only if the server is trusted")
        }
        return count
    }

    /// Checks the server-final-message: `v=` with the expected signature, or `e=` with an error.
    private func verifyServerFinal(_ challenge: [UInt8], expectedServerSignature: [UInt8]) throws(SASLError) {
        let serverFinal = try utf8Text(challenge, role: "server-final-message")
        let first = serverFinal.split(separator: ",", omittingEmptySubsequences: false)[0]
        if first.hasPrefix("e=") {
            let value = String(first.dropFirst(2))
            throw error("the server reported the error \(quotedServerText(value))" + Self.hint(forServerError: value))
        }
        guard first.hasPrefix("v=") else {
            throw error(
                "the server-final-message has neither a signature (v=) nor an error (e=): "
                    + quotedServerText(serverFinal))
        }
        guard let signature = SASLBase64.decode(String(first.dropFirst(2))) else {
            throw error("the server's signature (v=) is not valid base64")
        }
        guard SASLCrypto.constantTimeEqual(signature, expectedServerSignature) else {
            throw error(
                "the server's signature does not match, so the server does not have this user's credentials. "
                    + "It may not be the server it claims to be")
        }
    }

    /// Returns advice for a server-error-value of RFC 5802 section 7, or "" when there is none.
    private static func hint(forServerError value: String) -> String {
        switch value {
        case "invalid-proof": ". Check the user name and password"
        case "unknown-user": ". The server has no account with this user name"
        case "invalid-username-encoding": ". The server could not read the user name"
        case "no-resources": ". The server is out of resources, so try again later"
        case "channel-bindings-dont-match", "server-does-support-channel-binding", "channel-binding-not-supported",
            "unsupported-channel-binding-type":
            ". The server expects channel binding (SCRAM -PLUS), which this client does not support"
        default: ""
        }
    }

    private func utf8Text(_ bytes: [UInt8], role: String) throws(SASLError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw error("the \(role) is not valid UTF-8")
        }
        return text
    }

    private func error(_ message: String) -> SASLError {
        SASLError(mechanism: name, message: message)
    }

    /// RFC 5802 section 7: `printable = %x21-2B / %x2D-7E`, printable ASCII except ",".
    private static func isNonceCharacter(_ scalar: Unicode.Scalar) -> Bool {
        (0x21...0x7E).contains(scalar.value) && scalar != ","
    }
}

/// Quotes text that came from the server for an error message: control characters become "?", so
/// that the text cannot rewrite a terminal, and long text is cut at 200 characters.
func quotedServerText(_ text: String) -> String {
    let limit = 200
    let scalars = text.unicodeScalars.prefix(limit).map { $0.properties.generalCategory == .control ? "?" : $0 }
    var cleaned = String(String.UnicodeScalarView(scalars))
    if text.unicodeScalars.count > limit {
        cleaned += "…"
    }
    return "\"\(cleaned)\""
}
