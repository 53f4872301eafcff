/// The SASL mechanisms this client implements.
public enum SASLMechanismName: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case scramSHA256 = "SCRAM-SHA-256"
    case scramSHA1 = "SCRAM-SHA-1"
    case cramMD5 = "CRAM-MD5"
    case plain = "PLAIN"
    case login = "LOGIN"
    case oauthBearer = "OAUTHBEARER"
    case xoauth2 = "XOAUTH2"

    /// Returns the mechanisms that can use these credentials, strongest first. SCRAM never sends
    /// the password and makes the server prove that it has the user's credentials. CRAM-MD5 does not
    /// send the password either, but PLAIN and LOGIN do. OAUTHBEARER is the standard form of XOAUTH2.
    public static func preferenceOrder(for credentials: SASLCredentials) -> [SASLMechanismName] {
        switch credentials {
        case .password: [.scramSHA256, .scramSHA1, .cramMD5, .plain, .login]
        case .oauth2: [.oauthBearer, .xoauth2]
        }
    }

    public var description: String { rawValue }

    /// Creates a fresh instance of this mechanism for the credentials, or throws when the
    /// credentials are of the other kind or the mechanism rejects them.
    ///
    /// - Parameters:
    ///   - host: The server's host name, which OAUTHBEARER sends; "" leaves it out.
    ///   - port: The server's port, which OAUTHBEARER sends; 0 leaves it out.
    public func makeMechanism(
        credentials: SASLCredentials, host: String, port: UInt16
    ) throws(SASLError) -> any SASLMechanism {
        switch (self, credentials) {
        case (.scramSHA256, .password(let username, let password)):
            return try SCRAMMechanism(variant: .sha256, username: username, password: password)
        case (.scramSHA1, .password(let username, let password)):
            return try SCRAMMechanism(variant: .sha1, username: username, password: password)
        case (.cramMD5, .password(let username, let password)):
            return CRAMMD5Mechanism(username: username, password: password)
        case (.plain, .password(let username, let password)):
            return try PlainMechanism(username: username, password: password)
        case (.login, .password(let username, let password)):
            return LoginMechanism(username: username, password: password)
        case (.oauthBearer, .oauth2(let username, let token)):
            return try OAuthBearerMechanism(username: username, token: token, host: host, port: port)
        case (.xoauth2, .oauth2(let username, let token)):
            return try XOAuth2Mechanism(username: username, token: token)
        default:
            throw SASLError(
                mechanism: rawValue,
                message: "\(rawValue) cannot use a \(credentials). It works with "
                    + list(Self.preferenceOrder(for: credentials)))
        }
    }
}

/// Chooses the SASL mechanism for AUTH and creates a fresh instance of it.
///
/// Without a configured mechanism, this returns the first mechanism in
/// `SASLMechanismName.preferenceOrder(for:)` that the server offers. A configured mechanism is used
/// only when the server offers it and the credentials suit it. Whether a mechanism that sends the
/// password may run over an unencrypted connection is for the caller to decide.
///
/// - Parameters:
///   - offered: The mechanisms from the server's EHLO reply, as `Capabilities.authenticationMechanisms`
///     returns them. Case is ignored.
///   - configured: The mechanism the user asked for, in any case, or nil to choose.
///   - host: The server's host name, which OAUTHBEARER sends; "" leaves it out.
///   - port: The server's port, which OAUTHBEARER sends; 0 leaves it out.
/// - Throws: `SASLError` naming the offered mechanisms and the ones the credentials can use, when
///   no mechanism fits, or the error of the chosen mechanism's initializer.
public func selectSASLMechanism(
    offered: [String], credentials: SASLCredentials, configured: String? = nil, host: String = "",
    port: UInt16 = 0
) throws(SASLError) -> any SASLMechanism {
    let offeredNames = offered.map { $0.uppercased() }
    let usable = SASLMechanismName.preferenceOrder(for: credentials)
    let offeredText = offeredNames.isEmpty ? "no mechanisms" : list(offeredNames)

    if let configured {
        let requested = configured.uppercased()
        guard let name = SASLMechanismName(rawValue: requested) else {
            throw SASLError(
                mechanism: "SASL",
                message: "the configured mechanism \"\(configured)\" is not supported. Choose one of "
                    + list(SASLMechanismName.allCases))
        }
        guard usable.contains(name) else {
            throw SASLError(
                mechanism: "SASL",
                message: "the configured mechanism \(name) cannot use a \(credentials). It works with "
                    + "\(list(usable)), and the server offers \(offeredText)")
        }
        guard offeredNames.contains(requested) else {
            throw SASLError(
                mechanism: "SASL",
                message: "the configured mechanism \(name) is not offered by the server, which offers "
                    + "\(offeredText). A \(credentials) works with \(list(usable)). Configure one that both "
                    + "support, or none to choose automatically")
        }
        return try name.makeMechanism(credentials: credentials, host: host, port: port)
    }

    guard let name = usable.first(where: { offeredNames.contains($0.rawValue) }) else {
        if offeredNames.isEmpty {
            throw SASLError(
                mechanism: "SASL",
                message: "the server offers no AUTH mechanism on this connection. Servers often offer AUTH "
                    + "only after STARTTLS: use STARTTLS or implicit TLS, which is off by default for a "
                    + "server on a loopback address")
        }
        throw SASLError(
            mechanism: "SASL",
            message: "the server offers \(offeredText), and none of them can use a \(credentials), which works "
                + "with \(list(usable))")
    }
    return try name.makeMechanism(credentials: credentials, host: host, port: port)
}

private func list(_ names: [some CustomStringConvertible]) -> String {
    names.map(\.description).joined(separator: ", ")
}
