import Foundation

/// When the client sends STARTTLS (RFC 3207).
public enum StartTLSPolicy: Sendable, Hashable {
    /// Never: the session stays unencrypted.
    case never
    /// When the server offers it. A server that does not offer it, or refuses it, gets the message
    /// unencrypted. A failed handshake still ends the session.
    case ifOffered
    /// Always: unless the server offers STARTTLS, replies 220 and completes a verified handshake,
    /// the session ends before AUTH or MAIL.
    case required
}

/// Settings for logging in with AUTH (RFC 4954).
public struct AuthenticationConfiguration: Sendable {
    public var credentials: SASLCredentials
    /// The mechanism to use, or nil to choose the strongest the server offers that the credentials
    /// allow.
    public var mechanism: String?
    /// Whether credentials may be sent over an unencrypted connection to a server that is not on
    /// this machine. Off by default, because anyone on the path could read them.
    public var allowUnencrypted: Bool
    /// The server's host and port, which OAUTHBEARER sends.
    public var host: String
    public var port: UInt16
    /// A mechanism instance to use instead of choosing one, for tests of the exchange itself.
    var mechanismOverride: (any SASLMechanism)?

    public init(
        credentials: SASLCredentials, mechanism: String? = nil, allowUnencrypted: Bool = false, host: String = "",
        port: UInt16 = 0
    ) {
        self.credentials = credentials
        self.mechanism = mechanism
        self.allowUnencrypted = allowUnencrypted
        self.host = host
        self.port = port
    }
}

/// An AUTH exchange in progress.
struct AuthenticationExchange: Sendable {
    var mechanism: any SASLMechanism
    var rounds = 0
    /// Set when the client cancelled the exchange with "*", with the reason.
    var cancellation: SASLError?

    /// The most 334 challenges accepted in one exchange. SCRAM needs two; a server that keeps
    /// challenging is stopped here.
    static let maxRounds = 8
}

extension ClientSession {
    /// Continues after a successful EHLO or HELO: STARTTLS when the policy requires or allows it, then AUTH
    /// when configured, then the session is ready.
    mutating func afterGreetingExchange() -> [Action] {
        if !isEncrypted, configuration.startTLS != .never {
            if capabilities.supportsStartTLS {
                state = .awaitingStartTLS
                return [.write(Array("STARTTLS\r\n".utf8))]
            }
            if configuration.startTLS == .required {
                return failSecurity(SMTPError(
                    phase: .startTLS,
                    kind: .tlsUnavailable(
                        "TLS is required but the server did not offer STARTTLS, so nothing was sent. An attacker "
                            + "on the path may have removed it. Use implicit TLS (port 465) if the server has it."),
                    isTemporary: true))
            }
        }
        return startAuthentication()
    }

    mutating func handleStartTLSReply(_ reply: SMTPReply) -> [Action] {
        guard reply.code == 220 else {
            if reply.code == 421 {
                return fail(.rejected(reply, phase: .startTLS))
            }
            if configuration.startTLS == .required {
                return failSecurity(SMTPError(
                    phase: .startTLS,
                    kind: .tlsUnavailable("TLS is required but the server answered STARTTLS with \"\(reply)\""),
                    reply: reply, isTemporary: !reply.isPermanentNegative))
            }
            return startAuthentication()
        }
        // RFC 3207 section 5 and the STARTTLS command injection attacks: anything the server sent
        // after its 220 was sent before the handshake, unprotected, and must not be read as if it
        // came over TLS.
        if parser.hasBufferedBytes {
            return fail(SMTPError(
                phase: .startTLS,
                kind: .protocolViolation(
                    "the server sent data after its 220 reply to STARTTLS, before the TLS handshake; "
                        + "it may have been injected"),
                isTemporary: true))
        }
        state = .tlsHandshake
        return [.startTLS]
    }

    /// Reports that the TLS handshake succeeded and the certificate was verified. Capabilities from
    /// before TLS are forgotten and EHLO is sent again (RFC 3207 section 4.2).
    public mutating func tlsEstablished() -> [Action] {
        guard case .tlsHandshake = state else {
            preconditionFailure("ClientSession.tlsEstablished called without a handshake in progress")
        }
        isEncrypted = true
        capabilitiesBeforeTLS = capabilities
        capabilities = .none
        parser = ReplyParser(limits: configuration.replyLimits)
        state = .awaitingEHLO
        return writeOrFail(.ehlo(domain: configuration.clientName), phase: .ehlo)
    }

    /// Reports that the TLS handshake failed. The session ends without sending anything more.
    ///
    /// - Parameter isTemporary: false when trying again cannot help, as for a client configuration
    ///   that cannot be used.
    public mutating func tlsFailed(_ detail: String, isTemporary: Bool = true) -> [Action] {
        fail(SMTPError(phase: .startTLS, kind: .tlsFailed(detail), isTemporary: isTemporary))
    }

    /// Ends the session for a security reason: QUIT is sent, but nothing else.
    private mutating func failSecurity(_ error: SMTPError) -> [Action] {
        state = .closed
        transactions = []
        return [.fail(error), .write(Array("QUIT\r\n".utf8)), .close]
    }

    // MARK: - AUTH

    private mutating func startAuthentication() -> [Action] {
        guard let authentication = configuration.authentication else {
            state = .open
            return [.ready(capabilities)]
        }

        if !isEncrypted, !configuration.isLoopback, !authentication.allowUnencrypted {
            return failSecurity(SMTPError(
                phase: .auth,
                kind: .authenticationUnavailable(
                    "the connection is not encrypted, so the credentials were not sent. Use TLS, or allow "
                        + "unencrypted authentication explicitly if this network is trusted"),
                isTemporary: false))
        }

        if let field = Self.fieldWithLineBreak(authentication.credentials) {
            return failSecurity(SMTPError(
                phase: .auth,
                kind: .authenticationUnavailable("the \(field) contains a CR, LF or NUL character, so nothing was sent"),
                isTemporary: false))
        }

        let mechanism: any SASLMechanism
        do {
            mechanism = try selectMechanism(authentication)
        } catch {
            return failSecurity(SMTPError(
                phase: .auth, kind: .authenticationUnavailable(error.description), isTemporary: false))
        }

        var exchange = AuthenticationExchange(mechanism: mechanism)
        let initial: [UInt8]?
        do {
            initial = try exchange.mechanism.initialResponse()
        } catch {
            return failSecurity(SMTPError(phase: .auth, kind: .authenticationUnavailable(error.description), isTemporary: false))
        }

        state = .authenticating(exchange)
        var command = "AUTH \(mechanism.name)"
        var shown = command
        if let initial {
            let encoded = initial.isEmpty ? "=" : Data(initial).base64EncodedString()
            command += " " + encoded
            shown += " <redacted>"
            rememberSentSecret(encoded)
        }
        return [.writeRedacted(Array((command + "\r\n").utf8), transcript: shown)]
    }

    private func selectMechanism(_ authentication: AuthenticationConfiguration) throws(SASLError) -> any SASLMechanism {
        if let mechanism = authentication.mechanismOverride {
            return mechanism
        }
        return try selectSASLMechanism(
            offered: capabilities.authenticationMechanisms, credentials: authentication.credentials,
            configured: authentication.mechanism, host: authentication.host, port: authentication.port)
    }

    mutating func handleAuthenticationReply(_ reply: SMTPReply, exchange: AuthenticationExchange) -> [Action] {
        var exchange = exchange
        if let cancellation = exchange.cancellation, reply.code != 421 {
            // After "*" the server owes a 501; whatever it sends instead, the exchange is over.
            return failSecurity(SMTPError(
                phase: .auth, kind: .authenticationFailed(cancellation.description), reply: reply, isTemporary: false))
        }
        switch reply.code {
        case 200..<300 where reply.code != 235:
            return fail(SMTPError(
                phase: .auth, kind: .protocolViolation("AUTH answered \(reply), not 235"), reply: reply, isTemporary: true))
        case 235:
            do {
                try exchange.mechanism.verifyCompletion()
            } catch {
                return failSecurity(SMTPError(
                    phase: .auth, kind: .authenticationFailed(error.description), reply: reply, isTemporary: false))
            }
            isAuthenticated = true
            authenticationMechanism = exchange.mechanism.name
            state = .open
            return [.ready(capabilities)]
        case 334:
            return respondToChallenge(reply, exchange: &exchange)
        case 421:
            return fail(.rejected(reply, phase: .auth))
        default:
            let serverError = (exchange.mechanism as? any SASLServerErrorReporting)?.serverError
            var detail = Self.authenticationHint(for: reply)
            if let serverError {
                detail += " The server explained: \(serverError)"
            }
            return failSecurity(SMTPError(
                phase: .auth, kind: .authenticationFailed(detail), reply: reply, isTemporary: !reply.isPermanentNegative))
        }
    }

    private mutating func respondToChallenge(_ reply: SMTPReply, exchange: inout AuthenticationExchange) -> [Action] {
        exchange.rounds += 1
        if exchange.rounds > AuthenticationExchange.maxRounds {
            return cancelAuthentication(
                &exchange, SASLError(
                    mechanism: exchange.mechanism.name,
                    message: "the server sent more than \(AuthenticationExchange.maxRounds) challenges"))
        }
        // RFC 4954 section 4: the challenge is the base64 text after "334 ".
        let text = reply.lines.first ?? ""
        guard let challenge = Data(base64Encoded: text) else {
            return cancelAuthentication(
                &exchange, SASLError(mechanism: exchange.mechanism.name, message: "the server's challenge is not base64"))
        }
        let response: [UInt8]
        do {
            response = try exchange.mechanism.response(to: Array(challenge))
        } catch {
            return cancelAuthentication(&exchange, error)
        }
        state = .authenticating(exchange)
        let encoded = Data(response).base64EncodedString()
        rememberSentSecret(encoded)
        return [.writeRedacted(Array((encoded + "\r\n").utf8), transcript: "<redacted>")]
    }

    /// Cancels the exchange with "*" (RFC 4954 section 4) and waits for the server's 501.
    private mutating func cancelAuthentication(_ exchange: inout AuthenticationExchange, _ error: SASLError) -> [Action] {
        exchange.cancellation = error
        state = .authenticating(exchange)
        return [.write(Array("*\r\n".utf8))]
    }

    /// Returns the name of a credential field that contains CR, LF or NUL, or nil.
    private static func fieldWithLineBreak(_ credentials: SASLCredentials) -> String? {
        let (username, secret, secretName): (String, Secret, String) = switch credentials {
        case .password(let username, let password): (username, password, "password")
        case .oauth2(let username, let token): (username, token, "token")
        }
        func hasLineBreak(_ text: String) -> Bool {
            text.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 }
        }
        if hasLineBreak(username) { return "user name" }
        if hasLineBreak(secret.value) { return secretName }
        return nil
    }

    /// Keeps a base64 string the client sent during AUTH, so that a server which echoes it back in a
    /// reply cannot make it appear in a transcript or an error message.
    private mutating func rememberSentSecret(_ encoded: String) {
        if encoded.count >= 4 {
            sentSecrets.append(encoded)
        }
    }

    /// Returns advice for a rejected login, by reply code (RFC 4954 section 6).
    static func authenticationHint(for reply: SMTPReply) -> String {
        switch reply.code {
        case 535:
            "Check the user name and password. Some providers require an app password or OAuth 2.0 for SMTP."
        case 534:
            "The server finds this mechanism too weak: configure a stronger one, or use TLS."
        case 538:
            "The server requires encryption for this mechanism: use TLS."
        case 530:
            "The server requires authentication of another kind."
        case 454:
            "The server could not check the credentials just now; try again later."
        default:
            ""
        }
    }
}

/// A mechanism that can carry an error the server explained in a challenge, as XOAUTH2 and
/// OAUTHBEARER do with a JSON document before the final 535.
public protocol SASLServerErrorReporting {
    var serverError: String? { get }
}
