import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A durable store of mail messages in folders: Drafts, Outbox, Sent and Failed.
///
/// Each message's content is an RFC 5322 file of its own under `messages/`, and an SQLite index
/// (`index.sqlite`, in WAL mode) contains its folder, envelope and delivery state. A message is stored
/// in three steps: the index records it as incoming, its content is written to a temporary file,
/// flushed to disk and renamed into place, and then the index moves it to its folder. Only after the
/// last step does `add` return, so a message that `add` reported stored survives a crash or a
/// power failure. Opening the store finishes what a crashed writer left: a message whose content
/// reached its file but whose writer died before moving it is kept in Drafts with a note, never
/// dropped, and never sent without the user's say.
///
/// Several processes can use one store at once. A sender claims messages with a lease, so that two
/// senders never send the same message at the same time; a lease ends when its holder releases it,
/// when it expires, or when the holding process is found dead.
///
/// The folder and its files are created readable by their owner only (0700 and 0600).
public final class MailStore: @unchecked Sendable {
    /// The store's folder.
    public let url: URL
    // Every use of `database` happens with `lock` held.
    private let database: SQLiteDatabase
    private let lock = NSLock()
    private let messagesDirectory: URL
    private let messagesPath: String
    private let temporaryDirectory: URL

    /// The schema version kept in SQLite's `user_version`.
    private static let schemaVersion = 1

    /// Returns the default location: `$XDG_DATA_HOME/outbox`, or `~/.local/share/outbox`.
    public static func defaultURL(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let data = environment["XDG_DATA_HOME"], data.hasPrefix("/") {
            return URL(fileURLWithPath: data).appendingPathComponent("outbox")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".local/share/outbox")
    }

    /// Opens the store at `url`, creating it if needed, and recovers from any crash of an earlier writer.
    ///
    /// - Throws: `StoreError` when the folder cannot be created, is readable by others, or the index
    ///   cannot be opened.
    public init(url: URL) throws(StoreError) {
        self.url = url
        messagesDirectory = url.appendingPathComponent("messages")
        messagesPath = messagesDirectory.path
        temporaryDirectory = url.appendingPathComponent("tmp")
        for directory in [url, messagesDirectory, temporaryDirectory] {
            try Self.makePrivateDirectory(directory)
        }
        let indexPath = url.appendingPathComponent("index.sqlite").path
        let indexExisted = FileManager.default.fileExists(atPath: indexPath)
        // SQLite creates the file with the process's umask; creating it first keeps it private.
        if !indexExisted {
            let descriptor = Glibc.open(indexPath, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
            if descriptor >= 0 { close(descriptor) }
        }
        database = try SQLiteDatabase(path: indexPath)
        try database.execute("PRAGMA journal_mode=WAL")
        // Commits do not wait for the disk, except the one that makes a new message part of the
        // store (see `add`): after a power failure, a lost record of an outcome or of a user's
        // action makes a message be sent or changed again, never lost.
        try database.execute("PRAGMA synchronous=NORMAL")
        try database.execute("PRAGMA foreign_keys=ON")
        // An index without a schema is new, or was lost and left as an empty file, so the content
        // files that it does not list are adopted in both cases.
        let createdSchema = try migrate()
        try recover(rebuildIndex: createdSchema)
    }

    // MARK: - Schema

    /// Creates the schema if the index has none yet, and returns whether it did.
    private func migrate() throws(StoreError) -> Bool {
        let version = try database.query("PRAGMA user_version").first?.first?.int ?? 0
        guard version < Self.schemaVersion else { return false }
        try database.transaction { () throws(StoreError) in
            try database.execute("""
                CREATE TABLE IF NOT EXISTS messages (
                    id TEXT PRIMARY KEY,
                    folder TEXT NOT NULL,
                    held INTEGER NOT NULL DEFAULT 0,
                    sender TEXT NOT NULL,
                    account TEXT NOT NULL,
                    route TEXT NOT NULL,
                    envelope_options TEXT,
                    message_id TEXT,
                    subject TEXT,
                    size INTEGER NOT NULL DEFAULT 0,
                    created REAL NOT NULL,
                    updated REAL NOT NULL,
                    queued REAL NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt REAL,
                    last_error TEXT,
                    unknown_outcomes INTEGER NOT NULL DEFAULT 0,
                    writer_pid INTEGER,
                    lease_owner TEXT,
                    lease_pid INTEGER,
                    lease_expires REAL
                );
                CREATE INDEX IF NOT EXISTS messages_due ON messages (folder, held, next_attempt);
                CREATE INDEX IF NOT EXISTS messages_route ON messages (route, folder);
                CREATE INDEX IF NOT EXISTS messages_leased ON messages (lease_pid) WHERE lease_owner IS NOT NULL;
                CREATE TABLE IF NOT EXISTS recipients (
                    message TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                    position INTEGER NOT NULL,
                    address TEXT NOT NULL,
                    parameters TEXT,
                    state TEXT NOT NULL,
                    reply_code INTEGER,
                    reply_text TEXT,
                    error TEXT,
                    PRIMARY KEY (message, position)
                ) WITHOUT ROWID;
                PRAGMA user_version = \(Self.schemaVersion);
                """)
        }
        return true
    }

    // MARK: - Recovery

    /// Finishes or undoes what writers that died left behind.
    ///
    /// - An entry still marked incoming whose writer is dead moves to Drafts with a note when its
    ///   content file is in place. Its sender never heard that it was stored and may have sent it
    ///   another way, so it is not sent on its own. Without a content file the entry is removed.
    /// - A temporary file whose writer is dead is removed; it never became a message.
    /// - When the index is new or empty but content files exist (the index was lost), each file
    ///   becomes a Drafts entry with an unknown envelope, which 'outbox queue retry' rejects.
    private func recover(rebuildIndex: Bool) throws(StoreError) {
        try withLock { () throws(StoreError) in
            let incoming = try database.query(
                "SELECT id, writer_pid FROM messages WHERE folder = 'incoming'")
            for row in incoming {
                guard let id = row[0].string, let pid = row[1].int, !Self.isAlive(pid: pid) else { continue }
                let file = contentURL(id: id)
                if FileManager.default.fileExists(atPath: file.path) {
                    try database.query(
                        """
                        UPDATE messages SET folder = 'drafts', size = ?, updated = ?, writer_pid = NULL,
                            last_error = ? WHERE id = ?
                        """,
                        [.init(Self.fileSize(file)), .init(Date()), .text(Self.recoveredNote), .text(id)])
                } else {
                    try database.query("DELETE FROM messages WHERE id = ?", [.text(id)])
                }
            }
        }
        removeAbandonedTemporaryFiles()
        if rebuildIndex {
            try adoptOrphanFiles()
        }
    }

    static let recoveredNote =
        "Recovered after the process storing it stopped before confirming it; check it and send it with 'outbox queue retry'."

    private func removeAbandonedTemporaryFiles() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporaryDirectory.path)) ?? []
        for name in names {
            // Temporary files are named ID.PID.
            let pid = name.split(separator: ".").last.flatMap { Int($0) }
            if pid.map({ !Self.isAlive(pid: $0) }) ?? true {
                unlink(temporaryDirectory.appendingPathComponent(name).path)
            }
        }
    }

    /// Makes a Drafts entry for every content file the index does not know.
    public func adoptOrphanFiles() throws(StoreError) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: messagesDirectory.path)) ?? []
        try withLock { () throws(StoreError) in
            let known = Set(try database.query("SELECT id FROM messages").compactMap { $0[0].string })
            for name in names where name.hasSuffix(".eml") {
                let id = String(name.dropLast(4))
                guard !known.contains(id) else { continue }
                let file = contentURL(id: id)
                let now = Date()
                try database.query(
                    """
                    INSERT INTO messages (id, folder, sender, account, route, size, created, updated, queued, last_error)
                    VALUES (?, 'drafts', '', '', '', ?, ?, ?, ?, ?)
                    """,
                    [.text(id), .init(Self.fileSize(file)), .init(now), .init(now), .init(now),
                     .text("Found without an index entry; its envelope is unknown.")])
            }
        }
    }

    // MARK: - Adding

    /// Stores a new message whose content is written by `writeContent`, and returns it as stored.
    ///
    /// `writeContent` is called once with a writer for the content file. It may write in any number
    /// of pieces, so a large message is never held in memory. When this returns, the content is on
    /// disk and the index entry committed.
    ///
    /// - Throws: `StoreError.diskFull` when the disk fills up (nothing is kept), another
    ///   `StoreError`, or what `writeContent` throws.
    public func add(
        _ message: NewMessage, writeContent: (ContentWriter) throws -> Void
    ) throws -> StoredMessage {
        let id = Self.makeID()
        let now = Date()
        try withLock { () throws(StoreError) in
            try database.transaction { () throws(StoreError) in
                try database.query(
                    """
                    INSERT INTO messages (id, folder, held, sender, account, route, envelope_options, message_id,
                        subject, created, updated, queued, next_attempt, writer_pid)
                    VALUES (?, 'incoming', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [.text(id), .integer(message.held ? 1 : 0), .text(message.sender), .text(message.account),
                     .text(message.route), .init(message.envelopeOptions), .init(message.messageID),
                     .init(message.subject), .init(now), .init(now), .init(now), .init(now),
                     .integer(Int64(getpid()))])
                for (position, recipient) in message.recipients.enumerated() {
                    try database.query(
                        """
                        INSERT INTO recipients (message, position, address, parameters, state) VALUES (?, ?, ?, ?, ?)
                        """,
                        [.text(id), .init(position), .text(recipient.address), .init(recipient.parameters),
                         .text(recipient.state.rawValue)])
                }
            }
        }
        let size: Int
        do {
            size = try writeContentFile(id: id, writeContent: writeContent)
        } catch {
            // If this fails too, the entry stays incoming and the next open removes it.
            _ = try? withLock { () throws(StoreError) in
                try database.query("DELETE FROM messages WHERE id = ?", [.text(id)])
            }
            throw error
        }
        // This commit waits for the disk, and with it every earlier commit of this connection,
        // the incoming entry included: after it, the message survives a power failure.
        try withLock { () throws(StoreError) in
            try database.execute("PRAGMA synchronous=FULL")
            defer { try? database.execute("PRAGMA synchronous=NORMAL") }
            try database.query(
                "UPDATE messages SET folder = ?, size = ?, writer_pid = NULL WHERE id = ?",
                [.text(message.folder.rawValue), .init(size), .text(id)])
        }
        guard let stored = try self.message(id: id) else { throw StoreError.noSuchMessage(id) }
        return stored
    }

    /// Stores a new message whose content is `bytes`.
    public func add(_ message: NewMessage, content bytes: [UInt8]) throws -> StoredMessage {
        try add(message) { writer in try writer.write(bytes) }
    }

    /// Writes the content to a temporary file, flushes it, renames it into place and flushes the
    /// folder, so that the file is complete on disk before the index points at it.
    private func writeContentFile(id: String, writeContent: (ContentWriter) throws -> Void) throws -> Int {
        let temporary = temporaryDirectory.appendingPathComponent("\(id).\(getpid())")
        let writer = try ContentWriter(creating: temporary)
        var renamed = false
        defer {
            writer.close()
            if !renamed { unlink(temporary.path) }
        }
        try writeContent(writer)
        try writer.synchronize()
        let destination = contentURL(id: id)
        guard rename(temporary.path, destination.path) == 0 else {
            throw StoreError.fileError(path: destination.path, errno: errno)
        }
        renamed = true
        try Self.synchronizeDirectory(messagesDirectory)
        return writer.bytesWritten
    }

    // MARK: - Reading

    /// Returns the path of a message's content file.
    public func contentURL(id: String) -> URL {
        messagesDirectory.appendingPathComponent("\(id).eml")
    }

    /// Returns the whole content of a message, read from its file.
    ///
    /// A flush reads thousands of small files in a row, so this opens and reads the file directly by
    /// its path, without building a `URL`. Only a regular file is read.
    ///
    /// - Parameter sizeHint: the expected size in octets, such as the message's stored `size`, to
    ///   read the file in one call. A file of another size is still read whole.
    /// - Throws: `StoreError.file` naming the file when it cannot be opened or read.
    public func readContent(id: String, sizeHint: Int = 0) throws(StoreError) -> [UInt8] {
        let path = messagesPath + "/" + id + ".eml"
        // O_NONBLOCK keeps a FIFO put in the file's place from blocking the open, and the check
        // below rejects it.
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw StoreError.file(path: path, message: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw StoreError.file(path: path, message: String(cString: strerror(errno)))
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw StoreError.file(path: path, message: "not a regular file")
        }
        // One octet more than expected, so that the read that finds the end of a file of the
        // expected size needs no larger buffer.
        var bytes = [UInt8](repeating: 0, count: max(sizeHint, 0) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                bytes.append(contentsOf: repeatElement(0, count: max(bytes.count, 4096)))
            }
            let octetsRead = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(descriptor, buffer.baseAddress! + count, buffer.count - count)
            }
            if octetsRead == 0 { break }
            if octetsRead < 0 {
                if errno == EINTR { continue }
                throw StoreError.file(path: path, message: String(cString: strerror(errno)))
            }
            count += octetsRead
        }
        bytes.removeSubrange(count...)
        return bytes
    }

    /// Returns the message with this id, or nil.
    public func message(id: String) throws(StoreError) -> StoredMessage? {
        try withLock { () throws(StoreError) in
            try loadMessages(where: "id = ?", [.text(id)]).first
        }
    }

    /// Returns the messages in a folder, or in every folder, oldest first. Messages still being stored are
    /// not listed.
    public func messages(in folder: Folder? = nil) throws(StoreError) -> [StoredMessage] {
        try withLock { () throws(StoreError) in
            if let folder {
                return try loadMessages(where: "folder = ?", [.text(folder.rawValue)])
            }
            return try loadMessages(where: "folder <> 'incoming'", [])
        }
    }

    /// Returns the number of messages in each folder.
    public func counts() throws(StoreError) -> [Folder: Int] {
        try withLock { () throws(StoreError) in
            var counts: [Folder: Int] = [:]
            for row in try database.query("SELECT folder, count(*) FROM messages GROUP BY folder") {
                if let name = row[0].string, let folder = Folder(rawValue: name) {
                    counts[folder] = row[1].int ?? 0
                }
            }
            return counts
        }
    }

    private static let messageColumns = """
        id, folder, held, sender, account, route, envelope_options, message_id, subject, size, created,
        updated, attempts, next_attempt, last_error, unknown_outcomes, lease_owner, lease_expires, queued, lease_pid
        """

    /// Loads messages and their recipients. Called with the lock held.
    func loadMessages(where condition: String, _ parameters: [SQLiteValue]) throws(StoreError) -> [StoredMessage] {
        let rows = try database.query(
            "SELECT \(Self.messageColumns) FROM messages WHERE \(condition) ORDER BY id", parameters)
        let recipients = try loadRecipients(where: condition, parameters)
        var messages: [StoredMessage] = []
        messages.reserveCapacity(rows.count)
        let now = Date()
        // The messages of one claim share a lease holder, so each process is checked once.
        var alive: [Int: Bool] = [:]
        for row in rows {
            guard let id = row[0].string, let folder = row[1].string.flatMap(Folder.init(rawValue:)) else { continue }
            // A lease that has expired, or whose process has exited, is not in force, although its
            // columns stay set until the next claim clears them.
            var leaseOwner = row[16].string
            var leaseExpires = row[17].date
            let leaseExpired = leaseExpires.map { $0 < now } ?? true
            var holderExited = false
            if let pid = row[19].int {
                let isAlive = alive[pid] ?? Self.isAlive(pid: pid)
                alive[pid] = isAlive
                holderExited = !isAlive
            }
            if leaseExpired || holderExited {
                leaseOwner = nil
                leaseExpires = nil
            }
            messages.append(StoredMessage(
                id: id, folder: folder, held: row[2].int == 1, sender: row[3].string ?? "",
                recipients: recipients[id] ?? [], account: row[4].string ?? "", route: row[5].string ?? "",
                envelopeOptions: row[6].string, messageID: row[7].string, subject: row[8].string,
                size: row[9].int ?? 0, created: row[10].date ?? Date(), updated: row[11].date ?? Date(),
                queued: row[18].date ?? Date(), attempts: row[12].int ?? 0, nextAttempt: row[13].date, lastError: row[14].string,
                unknownOutcomes: row[15].int ?? 0, leaseOwner: leaseOwner, leaseExpires: leaseExpires))
        }
        return messages
    }

    /// Returns the recipients of the messages that match `condition`, by message id, each list in
    /// its stored order. One query serves every message, instead of one query per message.
    private func loadRecipients(
        where condition: String, _ parameters: [SQLiteValue]
    ) throws(StoreError) -> [String: [StoredRecipient]] {
        var recipients: [String: [StoredRecipient]] = [:]
        let rows = try database.query(
            """
            SELECT message, address, parameters, state, reply_code, reply_text, error FROM recipients
            WHERE message IN (SELECT id FROM messages WHERE \(condition)) ORDER BY message, position
            """, parameters)
        for row in rows {
            guard let id = row[0].string else { continue }
            recipients[id, default: []].append(StoredRecipient(
                address: row[1].string ?? "", parameters: row[2].string,
                state: row[3].string.flatMap(RecipientState.init(rawValue:)) ?? .pending,
                reply: row[4].int.map { StoredReply(code: $0, text: row[5].string ?? "") }, error: row[6].string))
        }
        return recipients
    }

    // MARK: - Helpers

    /// Runs `body` with the database lock held.
    @discardableResult
    func withLock<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// The database, for the extensions in other files; use it only inside `withLock`.
    var index: SQLiteDatabase { database }

    /// Returns a new message id: the time in microseconds as 13 hex digits, then 7 random hex digits, so
    /// that ids sort in the order messages were stored.
    static func makeID() -> String {
        let microseconds = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let time = String(microseconds, radix: 16)
        let random = String(UInt32.random(in: 0..<(1 << 28)), radix: 16)
        return String(repeating: "0", count: max(0, 13 - time.count)) + time
            + String(repeating: "0", count: 7 - random.count) + random
    }

    /// Returns whether a process with this id exists. A process of another user counts as alive.
    static func isAlive(pid: Int) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid_t(pid), 0) == 0 || errno != ESRCH
    }

    static func fileSize(_ url: URL) -> Int {
        var status = stat()
        return stat(url.path, &status) == 0 ? Int(status.st_size) : 0
    }

    private static func makePrivateDirectory(_ url: URL) throws(StoreError) {
        if mkdir(url.path, 0o700) != 0 {
            let error = errno
            guard error == EEXIST else {
                if error == ENOENT {
                    do {
                        try FileManager.default.createDirectory(
                            at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                        return
                    } catch {
                        throw StoreError.file(path: url.path, message: "cannot create the folder: \(error)")
                    }
                }
                throw StoreError.fileError(path: url.path, errno: error)
            }
        }
        var status = stat()
        guard stat(url.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
            throw StoreError.file(path: url.path, message: "exists but is not a folder")
        }
        guard status.st_uid == geteuid() else {
            throw StoreError.unsafePermissions(
                path: url.path, message: "belongs to another user; use a store folder of your own")
        }
        if status.st_mode & 0o077 != 0 {
            throw StoreError.unsafePermissions(
                path: url.path,
                message: "other users can read or enter it; make it private with 'chmod 700 \(url.path)'")
        }
    }

    static func synchronizeDirectory(_ url: URL) throws(StoreError) {
        let descriptor = Glibc.open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StoreError.fileError(path: url.path, errno: errno) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw StoreError.fileError(path: url.path, errno: errno) }
    }
}

extension StoreError {
    /// Returns the error for a failed system call on `path`.
    static func fileError(path: String, errno code: Int32) -> StoreError {
        if code == ENOSPC || code == EDQUOT {
            return .diskFull(path: path)
        }
        return .file(path: path, message: String(cString: strerror(code)))
    }
}
