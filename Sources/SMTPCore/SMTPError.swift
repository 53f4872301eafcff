/// The step of an SMTP session at which something happened.
public enum SMTPPhase: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case connect
    case greeting
    case ehlo = "EHLO"
    case helo = "HELO"
    /// The STARTTLS command and the TLS handshake after it.
    case startTLS = "STARTTLS"
    /// The TLS handshake of implicit TLS, before the greeting.
    case tlsHandshake = "TLS handshake"
    case auth = "AUTH"
    case mail = "MAIL"
    case rcpt = "RCPT"
    case data = "DATA"
    /// Sending the message content after the 354 reply.
    case dataTransfer = "data transfer"
    /// The reply to the final "." that ends the message content.
    case endOfData = "end of data"
    case rset = "RSET"
    case quit = "QUIT"

    public var description: String { rawValue }
}

/// A failure of an SMTP session or transaction: at which phase, the server's reply if there was one,
/// and whether trying again later can help.
public struct SMTPError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The server replied with a 4xx or 5xx code.
        case rejected
        /// The server replied 421, so it is closing the connection.
        case serviceNotAvailable
        /// Every recipient was rejected, so no message was sent.
        case allRecipientsRejected
        /// The server closed the connection without a reply.
        case connectionClosed
        /// No reply came within the timeout or the overall deadline. The text names which.
        case timedOut(String)
        /// The server sent something that is not a valid reply at this point.
        case protocolViolation(String)
        /// The message is larger than the limit the server advertised with SIZE.
        case messageTooLarge(size: Int, limit: Int)
        /// The message needs an extension, such as 8BITMIME or SMTPUTF8, that the server did not offer.
        case extensionNotSupported(String)
        /// A command argument was rejected before it was sent.
        case invalidArgument(CommandEncodingError)
        /// The message content cannot be sent as it is.
        case invalidMessage(DataEncodingError)
        /// The server's name did not resolve or no address accepted a connection. The text gives the reason.
        case connectionFailed(String)
        /// TLS was required but the server did not offer STARTTLS or refused it. The text names which.
        case tlsUnavailable(String)
        /// The TLS handshake failed, or the server's certificate was not trusted. The text gives the reason.
        case tlsFailed(String)
        /// AUTH cannot be attempted: no usable mechanism, or the connection is not encrypted.
        case authenticationUnavailable(String)
        /// The server rejected the login; the text adds a hint and any error the server explained.
        case authenticationFailed(String)
        /// The session was cancelled by the caller.
        case cancelled
    }

    public let phase: SMTPPhase
    public let kind: Kind
    /// The server's reply, when the failure is a reply.
    public let reply: SMTPReply?
    /// Whether the same message may succeed later. It is true for 4xx replies, lost connections and
    /// timeouts, and false for 5xx replies and for problems with the message or its addresses.
    public let isTemporary: Bool
    /// The outcome for each recipient, when the failure happened after RCPT.
    public let recipientResults: [RecipientResult]

    public init(
        phase: SMTPPhase, kind: Kind, reply: SMTPReply? = nil, isTemporary: Bool,
        recipientResults: [RecipientResult] = []
    ) {
        self.phase = phase
        self.kind = kind
        self.reply = reply
        self.isTemporary = isTemporary
        self.recipientResults = recipientResults
    }

    /// Returns the error for a negative reply: 421 ends the session, 4xx is temporary and 5xx permanent.
    public static func rejected(_ reply: SMTPReply, phase: SMTPPhase) -> SMTPError {
        SMTPError(
            phase: phase, kind: reply.code == 421 ? .serviceNotAvailable : .rejected, reply: reply,
            isTemporary: !reply.isPermanentNegative)
    }

    public var description: String {
        let reason: String
        switch kind {
        case .rejected, .serviceNotAvailable:
            reason = "the server replied \"\(reply.map(String.init(describing:)) ?? "")\""
        case .allRecipientsRejected:
            let details = recipientResults.map { "<\($0.address)>: \($0.reply)" }.joined(separator: "; ")
            reason = "the server rejected every recipient (\(details))"
        case .connectionClosed:
            reason = "the server closed the connection without a reply"
        case .timedOut(let detail):
            reason = detail
        case .protocolViolation(let detail):
            reason = "protocol error: \(detail)"
        case .messageTooLarge(let size, let limit):
            reason = "the message is \(size) octets but the server accepts at most \(limit) (SIZE)"
        case .extensionNotSupported(let name):
            reason = Self.explainMissing(extension: name)
        case .invalidArgument(let error):
            reason = error.description
        case .invalidMessage(let error):
            reason = error.description
        case .connectionFailed(let detail):
            reason = detail
        case .tlsUnavailable(let detail), .tlsFailed(let detail), .authenticationUnavailable(let detail):
            reason = detail
        case .authenticationFailed(let detail):
            let replyText = reply.map { "the server replied \"\($0)\"" } ?? "the login failed"
            reason = detail.isEmpty ? replyText : "\(replyText). \(detail)"
        case .cancelled:
            reason = "cancelled"
        }
        let outlook = isTemporary ? "temporary failure" : "permanent failure"
        return "\(phase) failed (\(outlook)): \(reason)"
    }

    private static func explainMissing(extension name: String) -> String {
        switch name {
        case "8BITMIME":
            "the message contains 8-bit data but the server does not offer 8BITMIME; "
                + "encode the body as quoted-printable or base64"
        case "SMTPUTF8":
            "an address contains non-ASCII characters but the server does not offer SMTPUTF8; "
                + "use an ASCII address"
        default:
            "the server does not offer \(name)"
        }
    }
}
