import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The outcome of one delivery attempt, as the sender records it.
public struct DeliveryUpdate: Sendable {
    /// Every recipient of the message, in their stored order, with their new states.
    public var recipients: [StoredRecipient]
    /// The folder the message goes to: Outbox while a recipient is outstanding, else Sent or Failed.
    public var folder: Folder
    /// When to try again, for a message that stays in the Outbox.
    public var nextAttempt: Date?
    /// The reason the attempt failed, or nil after a success.
    public var lastError: String?
    /// Whether the connection ended after the message was sent and before the server's reply to it.
    public var outcomeUnknown: Bool

    public init(
        recipients: [StoredRecipient], folder: Folder, nextAttempt: Date? = nil, lastError: String? = nil,
        outcomeUnknown: Bool = false
    ) {
        self.recipients = recipients
        self.folder = folder
        self.nextAttempt = nextAttempt
        self.lastError = lastError
        self.outcomeUnknown = outcomeUnknown
    }
}

extension MailStore {
    /// Returns the lease owner name for this process: host, process id and a random part.
    public static func makeLeaseOwner() -> String {
        "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Claims up to `limit` messages of the Outbox for sending, oldest due first, and returns them.
    ///
    /// A claimed message is leased to `owner` until `leaseDuration` has passed; no other claim
    /// returns it meanwhile. Held messages, and messages leased by a live process, are skipped.
    ///
    /// - Parameters:
    ///   - route: claim only messages for this server, or for any server when nil.
    ///   - ids: claim only these messages.
    ///   - ignoringBackoff: claim deferred messages whose next attempt is still to come.
    public func claim(
        owner: String, route: String? = nil, ids wanted: [String]? = nil, limit: Int,
        ignoringBackoff: Bool = false, leaseDuration: TimeInterval = 600, now: Date = Date()
    ) throws(StoreError) -> [StoredMessage] {
        try withLock { () throws(StoreError) in
            try index.transaction { () throws(StoreError) in
                try releaseLeasesOfDeadProcesses(now: now)
                var condition = """
                    folder = 'outbox' AND held = 0 AND (lease_owner IS NULL OR lease_expires < ?)
                    """
                var parameters: [SQLiteValue] = [.init(now)]
                if !ignoringBackoff {
                    condition += " AND (next_attempt IS NULL OR next_attempt <= ?)"
                    parameters.append(.init(now))
                }
                if let route {
                    condition += " AND route = ?"
                    parameters.append(.text(route))
                }
                if let wanted {
                    condition += " AND id IN (\(wanted.map { _ in "?" }.joined(separator: ",")))"
                    parameters += wanted.map { .text($0) }
                }
                let ids = try index.query(
                    "SELECT id FROM messages WHERE \(condition) ORDER BY next_attempt, id LIMIT ?",
                    parameters + [.init(limit)]
                ).compactMap { $0[0].string }
                guard !ids.isEmpty else { return [] }
                let list = ids.map { _ in "?" }.joined(separator: ",")
                let idValues = ids.map { SQLiteValue.text($0) }
                try index.query(
                    "UPDATE messages SET lease_owner = ?, lease_pid = ?, lease_expires = ? WHERE id IN (\(list))",
                    [.text(owner), .integer(Int64(getpid())), .init(now.addingTimeInterval(leaseDuration))] + idValues)
                return try loadMessages(where: "id IN (\(list))", idValues)
            }
        }
    }

    /// Extends the leases `owner` holds on these messages.
    public func renewLeases(
        _ ids: [String], owner: String, leaseDuration: TimeInterval = 600, now: Date = Date()
    ) throws(StoreError) {
        guard !ids.isEmpty else { return }
        try withLock { () throws(StoreError) in
            let list = ids.map { _ in "?" }.joined(separator: ",")
            try index.query(
                "UPDATE messages SET lease_expires = ? WHERE lease_owner = ? AND id IN (\(list))",
                [.init(now.addingTimeInterval(leaseDuration)), .text(owner)] + ids.map { .text($0) })
        }
    }

    /// Gives back messages claimed but not attempted, leaving their state as it was.
    public func releaseLeases(_ ids: [String], owner: String) throws(StoreError) {
        guard !ids.isEmpty else { return }
        try withLock { () throws(StoreError) in
            let list = ids.map { _ in "?" }.joined(separator: ",")
            try index.query(
                """
                UPDATE messages SET lease_owner = NULL, lease_pid = NULL, lease_expires = NULL
                WHERE lease_owner = ? AND id IN (\(list))
                """,
                [.text(owner)] + ids.map { .text($0) })
        }
    }

    /// Records the outcome of an attempt and ends `owner`'s lease on the message.
    ///
    /// The record is committed without waiting for the disk, unlike `add`: after a power failure it
    /// can be lost, and the message is then sent again, but never lost. After a crash of the process
    /// alone it is kept.
    public func record(_ id: String, owner: String, _ update: DeliveryUpdate, now: Date = Date()) throws(StoreError) {
        try record([(id, update)], owner: owner, now: now)
    }

    /// Records the outcomes of several attempts in one transaction, as `record(_:owner:_:now:)` does
    /// for one. One transaction writes each changed page of the index once, however many outcomes
    /// share it, which costs much less than a transaction per outcome.
    ///
    /// - Throws: `StoreError.noSuchMessage` when a message is not in the store; then none of the
    ///   outcomes is recorded.
    public func record(_ outcomes: [(id: String, update: DeliveryUpdate)], owner: String, now: Date = Date())
        throws(StoreError)
    {
        guard !outcomes.isEmpty else { return }
        try withLock { () throws(StoreError) in
            try index.transaction { () throws(StoreError) in
                for (id, update) in outcomes {
                    try index.query(
                        """
                        UPDATE messages SET folder = ?, held = CASE WHEN ?1 = 'outbox' THEN held ELSE 0 END,
                            updated = ?, attempts = attempts + 1, next_attempt = ?,
                            last_error = ?, unknown_outcomes = unknown_outcomes + ?,
                            lease_owner = NULL, lease_pid = NULL, lease_expires = NULL
                        WHERE id = ?
                        """,
                        [.text(update.folder.rawValue), .init(now), .init(update.nextAttempt), .init(update.lastError),
                         .integer(update.outcomeUnknown ? 1 : 0), .text(id)])
                    guard index.changes == 1 else { throw StoreError.noSuchMessage(id) }
                    for (position, recipient) in update.recipients.enumerated() {
                        try index.query(
                            """
                            UPDATE recipients SET state = ?, reply_code = ?, reply_text = ?, error = ?
                            WHERE message = ? AND position = ?
                            """,
                            [.text(recipient.state.rawValue), .init(recipient.reply?.code),
                             .init(recipient.reply?.text), .init(recipient.error), .text(id), .init(position)])
                    }
                }
            }
        }
    }

    /// Keeps an Outbox message from being sent until `release` is called.
    public func hold(_ id: String) throws(StoreError) {
        try changeOutboxMessage(id, set: "held = 1", verb: "held")
    }

    /// Lets a held message be sent, at once.
    public func release(_ id: String, now: Date = Date()) throws(StoreError) {
        try changeOutboxMessage(id, set: "held = 0, next_attempt = \(now.timeIntervalSince1970)", verb: "released")
    }

    private func changeOutboxMessage(_ id: String, set assignment: String, verb: String) throws(StoreError) {
        try withLock { () throws(StoreError) in
            try index.transaction { () throws(StoreError) in
                let rows = try index.query("SELECT folder FROM messages WHERE id = ?", [.text(id)])
                guard let folder = rows.first?[0].string else { throw StoreError.noSuchMessage(id) }
                guard folder == Folder.outbox.rawValue else {
                    throw StoreError.invalidState(
                        id: id, message: "it is in \(folder), and only a message in the outbox can be \(verb).")
                }
                try index.query("UPDATE messages SET \(assignment), updated = ? WHERE id = ?", [.init(Date()), .text(id)])
            }
        }
    }

    /// Makes a message due at once: an Outbox message waiting out its backoff, or a message in Failed
    /// or Drafts, which moves back to the Outbox with its failed recipients pending again. The time
    /// it may stay queued counts from now.
    public func retry(_ id: String, now: Date = Date()) throws(StoreError) {
        try withLock { () throws(StoreError) in
            try index.transaction { () throws(StoreError) in
                let rows = try index.query("SELECT folder, sender, route FROM messages WHERE id = ?", [.text(id)])
                guard let row = rows.first, let folder = row[0].string else { throw StoreError.noSuchMessage(id) }
                switch folder {
                case Folder.outbox.rawValue:
                    break
                case Folder.failed.rawValue, Folder.drafts.rawValue:
                    if row[2].string?.isEmpty ?? true {
                        throw StoreError.invalidState(
                            id: id, message: "its envelope and server are unknown, so it cannot be sent from the store.")
                    }
                    try index.query(
                        "UPDATE recipients SET state = 'pending' WHERE message = ? AND state = 'failed'", [.text(id)])
                default:
                    throw StoreError.invalidState(id: id, message: "it is in \(folder) already.")
                }
                try index.query(
                    """
                    UPDATE messages SET folder = 'outbox', held = 0, next_attempt = ?, queued = ?, updated = ?
                    WHERE id = ?
                    """,
                    [.init(now), .init(now), .init(now), .text(id)])
            }
        }
    }

    /// Makes every Outbox message due at once, and moves every Failed message back to the Outbox.
    /// Returns the number of messages affected.
    @discardableResult
    public func retryAll(now: Date = Date()) throws(StoreError) -> Int {
        let ids = try withLock { () throws(StoreError) in
            try index.query(
                "SELECT id FROM messages WHERE (folder = 'outbox' AND held = 0) OR (folder = 'failed' AND route <> '')"
            ).compactMap { $0[0].string }
        }
        for id in ids {
            try retry(id, now: now)
        }
        return ids.count
    }

    /// Makes every deferred message for `route`, or for every route when nil, due at once, as when
    /// its server has just accepted a message again. Returns how many there were.
    ///
    /// - Parameter deferredBefore: only messages last changed before this time, so that a flush does
    ///   not pull in again the messages it has just deferred itself.
    @discardableResult
    public func expediteRoute(
        _ route: String?, deferredBefore: Date = .distantFuture, now: Date = Date()
    ) throws(StoreError) -> Int {
        try withLock { () throws(StoreError) in
            try index.query(
                """
                UPDATE messages SET next_attempt = ? WHERE folder = 'outbox' AND held = 0
                    AND (? IS NULL OR route = ?) AND next_attempt > ? AND updated < ?
                """,
                [.init(now), .init(route), .init(route), .init(now), .init(deferredBefore)])
            return index.changes
        }
    }

    /// Removes a message and its content file. A message being sent by a live process cannot be
    /// removed; hold it first, or wait for the attempt to end.
    public func delete(_ id: String, now: Date = Date()) throws(StoreError) {
        try withLock { () throws(StoreError) in
            try index.transaction { () throws(StoreError) in
                let rows = try index.query(
                    "SELECT lease_pid, lease_expires FROM messages WHERE id = ? AND folder <> 'incoming'", [.text(id)])
                guard let row = rows.first else { throw StoreError.noSuchMessage(id) }
                if let pid = row[0].int, let expires = row[1].date, expires > now, Self.isAlive(pid: pid) {
                    throw StoreError.invalidState(
                        id: id, message: "it is being sent by process \(pid). Hold it, or wait for the attempt to end.")
                }
                try index.query("DELETE FROM messages WHERE id = ?", [.text(id)])
            }
        }
        unlink(contentURL(id: id).path)
    }

    /// Returns the number and total size of the messages due in the Outbox, for one server or for all.
    public func dueSummary(route: String? = nil, now: Date = Date()) throws(StoreError) -> (count: Int, bytes: Int) {
        try withLock { () throws(StoreError) in
            var sql = """
                SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE folder = 'outbox' AND held = 0
                    AND (next_attempt IS NULL OR next_attempt <= ?)
                """
            var parameters: [SQLiteValue] = [.init(now)]
            if let route {
                sql += " AND route = ?"
                parameters.append(.text(route))
            }
            let row = try index.query(sql, parameters).first
            return (row?[0].int ?? 0, row?[1].int ?? 0)
        }
    }

    /// Returns the number of messages stored since `date` with these envelope options and a recipient with
    /// this address, such as the failure notices sent to one sender.
    public func countMessages(to address: String, envelopeOptions: String, since date: Date) throws(StoreError) -> Int {
        try withLock { () throws(StoreError) in
            try index.query(
                """
                SELECT count(DISTINCT m.id) FROM messages m JOIN recipients r ON r.message = m.id
                WHERE m.envelope_options = ? AND m.created >= ? AND r.address = ?
                """,
                [.text(envelopeOptions), .init(date), .text(address)]
            ).first?.first?.int ?? 0
        }
    }

    /// Returns the servers with messages due in the Outbox, and when the earliest message not yet due is due.
    public func dueRoutes(now: Date = Date()) throws(StoreError) -> (due: [String], nextDue: Date?) {
        try withLock { () throws(StoreError) in
            let due = try index.query(
                """
                SELECT DISTINCT route FROM messages WHERE folder = 'outbox' AND held = 0
                    AND (next_attempt IS NULL OR next_attempt <= ?)
                """, [.init(now)]
            ).compactMap { $0[0].string }
            let next = try index.query(
                "SELECT min(next_attempt) FROM messages WHERE folder = 'outbox' AND held = 0 AND next_attempt > ?",
                [.init(now)]
            ).first?.first?.date
            return (due, next)
        }
    }

    /// Clears leases whose holder has exited. Called inside a transaction with the lock held.
    private func releaseLeasesOfDeadProcesses(now: Date) throws(StoreError) {
        let pids = try index.query(
            "SELECT DISTINCT lease_pid FROM messages WHERE lease_owner IS NOT NULL AND lease_expires >= ?",
            [.init(now)]
        ).compactMap { $0[0].int }
        for pid in pids where !Self.isAlive(pid: pid) {
            try index.query(
                """
                UPDATE messages SET lease_owner = NULL, lease_pid = NULL, lease_expires = NULL
                WHERE lease_pid = ? AND lease_owner IS NOT NULL
                """,
                [.init(pid)])
        }
    }
}
