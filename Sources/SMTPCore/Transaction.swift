/// One message to send: the envelope, the delivery status notifications asked for, and what the client
/// learned about the content by scanning it (`DataEncoder.scan`).
public struct Transaction: Sendable, Hashable {
    /// The reverse-path as `local@domain`, or an empty string for the null sender `<>`.
    public var sender: String
    public var recipients: [Recipient]
    public var content: DataEncoder.Statistics
    /// RET and ENVID of RFC 3461, sent only when the server offers DSN.
    public var deliveryStatus: DeliveryStatusRequest?

    public init(
        sender: String, recipients: [Recipient], content: DataEncoder.Statistics,
        deliveryStatus: DeliveryStatusRequest? = nil
    ) {
        self.sender = sender
        self.recipients = recipients
        self.content = content
        self.deliveryStatus = deliveryStatus
    }
}

/// A forward-path with its RFC 3461 options.
public struct Recipient: Sendable, Hashable {
    /// The address as `local@domain`.
    public var address: String
    /// When to send a delivery status notification; nil leaves it to the server.
    public var notify: DeliveryStatusRequest.Notify?
    /// Whether to send ORCPT with the recipient's address, so that a notification names it as given.
    public var includeOriginalRecipient: Bool

    public init(_ address: String, notify: DeliveryStatusRequest.Notify? = nil, includeOriginalRecipient: Bool = false) {
        self.address = address
        self.notify = notify
        self.includeOriginalRecipient = includeOriginalRecipient
    }
}

/// Delivery status notification options for the whole message (RFC 3461 sections 4.3 and 4.4).
public struct DeliveryStatusRequest: Sendable, Hashable {
    /// The NOTIFY parameter: NEVER, or any of SUCCESS, FAILURE and DELAY.
    public enum Notify: Sendable, Hashable {
        case never
        case on(success: Bool, failure: Bool, delay: Bool)

        var parameterValue: String? {
            switch self {
            case .never:
                return "NEVER"
            case .on(let success, let failure, let delay):
                let names = [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")]
                    .filter(\.0).map(\.1)
                return names.isEmpty ? nil : names.joined(separator: ",")
            }
        }
    }

    /// The RET parameter: whether a notification carries the full message or only its headers.
    public enum Return: String, Sendable, Hashable {
        case full = "FULL"
        case headers = "HDRS"
    }

    public var returnContent: Return?
    /// The ENVID parameter, an identifier the sender chooses, returned in notifications.
    public var envelopeID: String?

    public init(returnContent: Return? = nil, envelopeID: String? = nil) {
        self.returnContent = returnContent
        self.envelopeID = envelopeID
    }
}

/// The server's reply to one RCPT.
public struct RecipientResult: Sendable, Hashable {
    public let address: String
    public let reply: SMTPReply

    public init(address: String, reply: SMTPReply) {
        self.address = address
        self.reply = reply
    }

    public var isAccepted: Bool { reply.isPositiveCompletion }
}

/// The outcome of a transaction the server accepted for at least one recipient.
public struct TransactionResult: Sendable, Hashable {
    /// The reply to each RCPT, in the order the recipients were given.
    public let recipients: [RecipientResult]
    /// The server's reply to the end of data, usually naming the queue id.
    public let reply: SMTPReply

    public init(recipients: [RecipientResult], reply: SMTPReply) {
        self.recipients = recipients
        self.reply = reply
    }

    public var accepted: [RecipientResult] { recipients.filter(\.isAccepted) }
    public var rejected: [RecipientResult] { recipients.filter { !$0.isAccepted } }
}
