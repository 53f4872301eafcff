import Foundation
import SMTPClient
import SMTPCore

/// An SMTP server and the login to use on it.
///
/// The defaults are the safe ones: port 587, STARTTLS required with a verified certificate for
/// any server not on loopback, and credentials never sent without TLS to such a server.
///
/// ```swift
/// let account = MailAccount(host: "smtp.example.org", credentials: .password(
///     username: "me@example.org", password: Secret(password)))
/// ```
public struct MailAccount: Sendable {
    /// Returns the credentials to log in with. It is called each time a connection opens, never
    /// stored, so it can return a fresh OAuth 2.0 access token. An error it throws fails the send
    /// with `MailError.Kind.credentialsUnavailable`.
    public typealias CredentialsProvider = @Sendable () async throws -> SASLCredentials

    /// The server's host name or IP address.
    public var host: String
    /// The server's port. Default: 587, the submission port (RFC 6409).
    public var port: UInt16
    /// The encryption of the connection. Default: nil, which chooses by the server: implicit TLS
    /// on port 465, no TLS for a server on a loopback address, and required STARTTLS otherwise.
    public var tlsMode: TLSMode?
    /// Whom to trust and which TLS versions to accept. Default: the system's CA store, TLS 1.2
    /// or later, and the host name checked against the certificate.
    public var tls: TLSConfiguration
    /// The source of the credentials, or nil to send without AUTH.
    public var credentialsProvider: CredentialsProvider?
    /// The SASL mechanism to use, or nil (the default) for the strongest that the server offers
    /// and the credentials allow.
    public var authenticationMechanism: String?
    /// Whether credentials may go over an unencrypted connection to a server that is not on
    /// loopback. Default: false, because anyone on the path could read them.
    public var allowsCredentialsWithoutTLS: Bool
    /// The name sent with EHLO, or nil for the host name when it is fully qualified and an address
    /// literal otherwise.
    public var clientName: String?
    /// How long to wait at each step of the session. Default: the minimums of RFC 5321.
    public var timeouts: SMTPClientConfiguration.Timeouts
    /// The maximum number of connections open at once to this server. Default: 4.
    public var maximumConnections: Int
    /// How long an idle connection is kept for reuse before it is closed. Default: 60 seconds,
    /// below the 5-minute minimum wait for the next command that RFC 5321 section 4.5.3.2.7
    /// recommends for servers.
    public var maximumIdleTime: Duration

    /// Creates an account that logs in with fixed credentials, or sends without AUTH when
    /// `credentials` is nil.
    public init(
        host: String, port: UInt16 = 587, tlsMode: TLSMode? = nil, credentials: SASLCredentials? = nil
    ) {
        var provider: CredentialsProvider?
        if let credentials {
            provider = { credentials }
        }
        self.init(host: host, port: port, tlsMode: tlsMode, credentialsProvider: provider)
    }

    /// Creates an account whose credentials `credentialsProvider` returns each time a connection opens.
    public init(
        host: String, port: UInt16 = 587, tlsMode: TLSMode? = nil,
        credentialsProvider: CredentialsProvider?
    ) {
        self.host = host
        self.port = port
        self.tlsMode = tlsMode
        self.tls = TLSConfiguration()
        self.credentialsProvider = credentialsProvider
        self.authenticationMechanism = nil
        self.allowsCredentialsWithoutTLS = false
        self.clientName = nil
        self.timeouts = SMTPClientConfiguration.Timeouts()
        self.maximumConnections = 4
        self.maximumIdleTime = .seconds(60)
    }

    /// The server as `host:port`, with brackets around an IPv6 address.
    var server: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Returns the client configuration for one new connection, asking the credentials provider.
    func makeConfiguration() async throws(MailError) -> SMTPClientConfiguration {
        var authentication: AuthenticationConfiguration?
        if let credentialsProvider {
            let credentials: SASLCredentials
            do {
                credentials = try await credentialsProvider()
            } catch is CancellationError {
                throw MailError(kind: .cancelled, detail: "cancelled while getting the credentials", isRetryable: true)
            } catch {
                throw MailError(
                    kind: .credentialsUnavailable,
                    detail: "the credentials provider for \(server) failed: \(error)", isRetryable: true)
            }
            authentication = AuthenticationConfiguration(
                credentials: credentials, mechanism: authenticationMechanism,
                allowUnencrypted: allowsCredentialsWithoutTLS)
        }
        return SMTPClientConfiguration(
            host: host, port: port, clientName: clientName, timeouts: timeouts, tlsMode: tlsMode, tls: tls,
            authentication: authentication)
    }
}
