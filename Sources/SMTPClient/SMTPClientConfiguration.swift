import SMTPCore

/// The server to connect to and the settings of the connection.
public struct SMTPClientConfiguration: Sendable {
    /// The server's host name or IP address. Every address the name resolves to is tried in turn.
    public var host: String
    public var port: UInt16
    /// The name sent with EHLO. Nil sends the machine's host name when it is fully qualified, and an
    /// address literal of the local end of the connection otherwise, as RFC 5321 section 4.1.4 recommends.
    public var clientName: String?
    public var timeouts: Timeouts
    /// A limit on the whole session, from the start of the connection; nil for none.
    public var sessionDeadline: Duration?
    /// Whether to pipeline commands when the server offers PIPELINING.
    public var usePipelining: Bool
    public var replyLimits: ReplyParser.Limits
    /// The encryption of the connection. Nil chooses by the server: implicit TLS on port 465,
    /// no TLS for a server on a loopback address, and required STARTTLS for every other server.
    public var tlsMode: TLSMode?
    /// The TLS settings: minimum version, whom to trust, client certificate. The default verifies
    /// the certificate chain against the system's CA store and the host name.
    public var tls: TLSConfiguration
    /// How to log in, or nil to send without AUTH.
    public var authentication: AuthenticationConfiguration?

    public init(
        host: String, port: UInt16 = 25, clientName: String? = nil, timeouts: Timeouts = .init(),
        sessionDeadline: Duration? = nil, usePipelining: Bool = true, replyLimits: ReplyParser.Limits = .init(),
        tlsMode: TLSMode? = nil, tls: TLSConfiguration = .init(), authentication: AuthenticationConfiguration? = nil
    ) {
        self.host = host
        self.port = port
        self.clientName = clientName
        self.timeouts = timeouts
        self.sessionDeadline = sessionDeadline
        self.usePipelining = usePipelining
        self.replyLimits = replyLimits
        self.tlsMode = tlsMode
        self.tls = tls
        self.authentication = authentication
    }

    /// Returns the TLS mode in effect for a connection whose remote end is or is not a loopback address.
    public func effectiveTLSMode(remoteIsLoopback: Bool) -> TLSMode {
        if let tlsMode { return tlsMode }
        if port == 465 { return .implicit }
        return remoteIsLoopback ? .off : .requiredStartTLS
    }

    /// How long to wait at each step. The defaults are the minimums of RFC 5321 section 4.5.3.2.
    public struct Timeouts: Sendable, Hashable {
        /// Establishing the TCP connection, for each address tried. RFC 5321 sets none; 30 seconds.
        public var connect: Duration = .seconds(30)
        /// The 220 greeting: 5 minutes.
        public var greeting: Duration = .seconds(300)
        /// Replies to EHLO, HELO, MAIL, RCPT and RSET: 5 minutes.
        public var command: Duration = .seconds(300)
        /// The 354 reply to DATA: 2 minutes.
        public var dataInitiation: Duration = .seconds(120)
        /// Sending one block of 64 KiB of message content, or of commands, as a whole: 3 minutes (RFC 5321
        /// section 4.5.3.2.5). A server that reads less than 64 KiB per timeout, about 364 octets/s with
        /// the default, fails the message with a temporary timeout.
        public var dataBlock: Duration = .seconds(180)
        /// The reply to the final ".": 10 minutes.
        public var dataTermination: Duration = .seconds(600)
        /// The reply to QUIT. RFC 5321 sets none; 30 seconds, because the message is already sent.
        public var quit: Duration = .seconds(30)

        public init() {}

        /// Sets the same timeout for every step.
        public init(all timeout: Duration) {
            connect = timeout
            greeting = timeout
            command = timeout
            dataInitiation = timeout
            dataBlock = timeout
            dataTermination = timeout
            quit = timeout
        }

        /// Returns the timeout for waiting on the reply of a phase.
        public func forReply(to phase: SMTPPhase) -> Duration {
            switch phase {
            case .connect: connect
            case .greeting, .tlsHandshake: greeting
            case .ehlo, .helo, .startTLS, .auth, .mail, .rcpt, .rset: command
            case .data: dataInitiation
            case .dataTransfer: dataBlock
            case .endOfData: dataTermination
            case .quit: quit
            }
        }
    }
}

/// The encryption of an SMTP connection.
public enum TLSMode: String, Sendable, Hashable, CaseIterable {
    /// No encryption. Credentials are then sent only to a loopback address, unless allowed explicitly.
    case off
    /// STARTTLS when the server offers it, else unencrypted. This protects only against passive
    /// eavesdroppers: an attacker on the path can remove the offer.
    case opportunisticStartTLS = "opportunistic"
    /// STARTTLS, and the session ends before AUTH or MAIL unless it succeeds with a verified certificate.
    case requiredStartTLS = "starttls"
    /// TLS from the first byte, as on port 465 (RFC 8314).
    case implicit
}
