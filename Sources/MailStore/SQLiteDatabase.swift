import CSQLite
import Foundation

/// A value bound to a statement parameter or read from a result column.
enum SQLiteValue: Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
}

/// One connection to an SQLite database, with its prepared statements kept for reuse.
///
/// Not thread-safe: `MailStore` serializes every use of it behind a lock.
final class SQLiteDatabase {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    let path: String

    /// Opens or creates the database file. The busy timeout lets a writer wait for another process's
    /// transaction instead of failing at once.
    init(path: String, busyTimeout: Duration = .seconds(30)) throws(StoreError) {
        self.path = path
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            handle = nil
            throw StoreError.database(path: path, message: message)
        }
        let milliseconds = busyTimeout.components.seconds * 1000
        sqlite3_busy_timeout(handle, Int32(clamping: milliseconds))
        sqlite3_extended_result_codes(handle, 1)
        // A process that stores one message and exits would otherwise checkpoint and delete the WAL
        // at close and recreate it at the next open, which costs several waits for the disk. SQLite
        // still checkpoints when the WAL reaches its size limit.
        csqlite_keep_wal_on_close(handle)
    }

    deinit {
        for statement in statements.values {
            sqlite3_finalize(statement)
        }
        sqlite3_close(handle)
    }

    /// Runs statements that take no parameters and return no rows, such as a schema or a pragma.
    func execute(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(handle, sql, nil, nil, &message)
        if status != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(status))
            sqlite3_free(message)
            throw error(status, text)
        }
    }

    /// Runs a statement and returns its rows, each as an array of column values.
    @discardableResult
    func query(_ sql: String, _ parameters: [SQLiteValue] = []) throws(StoreError) -> [[SQLiteValue]] {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, value) in parameters.enumerated() {
            let position = Int32(index + 1)
            let status: Int32
            switch value {
            case .null: status = sqlite3_bind_null(statement, position)
            case .integer(let number): status = sqlite3_bind_int64(statement, position, number)
            case .real(let number): status = sqlite3_bind_double(statement, position, number)
            case .text(let text): status = sqlite3_bind_text(statement, position, text, -1, csqlite_transient())
            }
            guard status == SQLITE_OK else { throw error(status) }
        }
        var rows: [[SQLiteValue]] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw error(status) }
            let count = sqlite3_column_count(statement)
            var row: [SQLiteValue] = []
            row.reserveCapacity(Int(count))
            for column in 0..<count {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_TEXT: row.append(.text(String(cString: sqlite3_column_text(statement, column))))
                default: row.append(.null)
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// The number of rows the last INSERT, UPDATE or DELETE changed.
    var changes: Int {
        Int(sqlite3_changes(handle))
    }

    /// Runs `body` in a transaction that takes the write lock at once (BEGIN IMMEDIATE), so that two
    /// processes never both read and then try to upgrade to writing. Rolls back when `body` throws.
    func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try execute("BEGIN IMMEDIATE")
        let result: T
        do {
            result = try body()
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
        do {
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
        return result
    }

    private func prepare(_ sql: String) throws(StoreError) -> OpaquePointer {
        if let statement = statements[sql] {
            return statement
        }
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard status == SQLITE_OK, let statement else { throw error(status) }
        statements[sql] = statement
        return statement
    }

    private func error(_ status: Int32, _ text: String? = nil) -> StoreError {
        let message = text ?? String(cString: sqlite3_errmsg(handle))
        switch status & 0xFF {
        case SQLITE_FULL:
            return .diskFull(path: path)
        case SQLITE_IOERR where [ENOSPC, EDQUOT].contains(sqlite3_system_errno(handle)):
            // SQLite 3.40 reports a full disk as an I/O error, not SQLITE_FULL, when it cannot grow
            // the WAL or its index (-shm), as when the store is opened on a full file system.
            return .diskFull(path: path)
        case SQLITE_BUSY, SQLITE_LOCKED:
            return .busy(path: path)
        default:
            return .database(path: path, message: message)
        }
    }
}

extension SQLiteValue {
    var int: Int? {
        switch self {
        case .integer(let value): Int(value)
        case .real(let value): Int(value)
        default: nil
        }
    }

    var double: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .real(let value): value
        default: nil
        }
    }

    var string: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    init(_ value: String?) {
        self = value.map { .text($0) } ?? .null
    }

    init(_ value: Int?) {
        self = value.map { .integer(Int64($0)) } ?? .null
    }

    init(_ value: Date?) {
        self = value.map { .real($0.timeIntervalSince1970) } ?? .null
    }

    var date: Date? {
        double.map { Date(timeIntervalSince1970: $0) }
    }
}
