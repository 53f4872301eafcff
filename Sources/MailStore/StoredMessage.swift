import Foundation

/// The folders of the store. A message is in exactly one.
public enum Folder: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Messages kept without being sent, including any the store recovered after a crash while they
    /// were being stored.
    case drafts
    /// Messages waiting to be sent, or being sent.
    case outbox
    /// Messages the server accepted for every recipient.
    case sent
    /// Messages that failed for good for at least one recipient, and have no recipient left to try.
    case failed

    public var description: String { rawValue }
}

/// The state of one recipient's delivery.
public enum RecipientState: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Not tried yet.
    case pending
    /// The server accepted the message for this recipient.
    case delivered
    /// The last attempt failed temporarily; the recipient will be tried again.
    case deferred
    /// The server rejected this recipient for good, or the message expired.
    case failed

    public var description: String { rawValue }

    /// Whether a later attempt should include this recipient.
    public var isOutstanding: Bool { self == .pending || self == .deferred }
}

/// A reply from the server, as recorded for a recipient or a message.
public struct StoredReply: Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    /// The whole reply text, lines joined with a space; it includes any enhanced status code.
    public var text: String

    public init(code: Int, text: String) {
        self.code = code
        self.text = text
    }

    public var description: String { "\(code) \(text)" }
}

/// One recipient of a stored message and the outcome of its delivery so far.
public struct StoredRecipient: Sendable, Hashable {
    public var address: String
    /// The DSN parameters for this recipient, kept as the caller gave them (NOTIFY and ORCPT).
    public var parameters: String?
    public var state: RecipientState
    /// The server's last reply about this recipient, or an error text when no reply came.
    public var reply: StoredReply?
    /// The error, for a recipient deferred or failed without a reply of its own.
    public var error: String?

    public init(
        address: String, parameters: String? = nil, state: RecipientState = .pending,
        reply: StoredReply? = nil, error: String? = nil
    ) {
        self.address = address
        self.parameters = parameters
        self.state = state
        self.reply = reply
        self.error = error
    }
}

/// The envelope and settings of a new message, as the caller gives them to the store.
public struct NewMessage: Sendable {
    /// The envelope sender; empty for the null sender.
    public var sender: String
    public var recipients: [StoredRecipient]
    /// The account the message is sent through, kept as opaque text for the sender to interpret.
    public var account: String
    /// The key of the server the message goes to, such as `smtp.example.org:587`, used to group
    /// messages into connections and to retry a server's messages together.
    public var route: String
    /// Envelope options kept as opaque text, such as the DSN RET and ENVID values.
    public var envelopeOptions: String?
    /// The message's Message-ID field, for display and for recognising a message sent twice.
    public var messageID: String?
    public var subject: String?
    public var folder: Folder
    /// Whether the message waits in the Outbox until it is released.
    public var held: Bool

    public init(
        sender: String, recipients: [StoredRecipient], account: String, route: String,
        envelopeOptions: String? = nil, messageID: String? = nil, subject: String? = nil,
        folder: Folder = .outbox, held: Bool = false
    ) {
        self.sender = sender
        self.recipients = recipients
        self.account = account
        self.route = route
        self.envelopeOptions = envelopeOptions
        self.messageID = messageID
        self.subject = subject
        self.folder = folder
        self.held = held
    }
}

/// A message in the store, with its delivery state.
public struct StoredMessage: Sendable, Hashable, Identifiable {
    /// The store's identifier, 20 characters that sort in the order messages were stored.
    public var id: String
    public var folder: Folder
    public var held: Bool
    public var sender: String
    public var recipients: [StoredRecipient]
    public var account: String
    public var route: String
    public var envelopeOptions: String?
    public var messageID: String?
    public var subject: String?
    /// The size of the content file in octets.
    public var size: Int
    public var created: Date
    public var updated: Date
    /// When the message last entered the Outbox; its maximum age counts from then.
    public var queued: Date
    /// The number of delivery attempts made so far.
    public var attempts: Int
    /// The time of the next attempt, for a message in the Outbox.
    public var nextAttempt: Date?
    /// The reason the last attempt failed, or the reason the message is in Failed or Drafts.
    public var lastError: String?
    /// How many times the server gave no valid reply to the message after it was sent (the connection
    /// ended, timed out, or carried a malformed reply), so that it may have been delivered already.
    public var unknownOutcomes: Int
    /// The process holding the message for sending, while a lease is in force.
    public var leaseOwner: String?
    public var leaseExpires: Date?

    /// The recipients still to be tried.
    public var outstandingRecipients: [StoredRecipient] {
        recipients.filter { $0.state.isOutstanding }
    }
}
