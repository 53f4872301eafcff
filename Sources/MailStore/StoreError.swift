/// A failure of the message store. Each case names the file or message it concerns.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file system has no room left. Nothing was stored; what the store held before is intact.
    case diskFull(path: String)
    /// Another process held the store's database locked for longer than the busy timeout.
    case busy(path: String)
    /// SQLite reported an error for the index database.
    case database(path: String, message: String)
    /// A file or folder of the store could not be created, written or read.
    case file(path: String, message: String)
    /// The store's folder or a file in it is readable by other users, or not owned by this user.
    case unsafePermissions(path: String, message: String)
    /// No message has this identifier.
    case noSuchMessage(String)
    /// The message is not in a state that allows the operation; the text gives the reason and what to do.
    case invalidState(id: String, message: String)

    public var description: String {
        switch self {
        case .diskFull(let path):
            "The disk holding \(path) is full. Nothing was stored; free some space and try again."
        case .busy(let path):
            "The message store \(path) stayed locked by another process for too long. Try again."
        case .database(let path, let message):
            "The message store index \(path) failed: \(message)."
        case .file(let path, let message):
            "\(path): \(message)."
        case .unsafePermissions(let path, let message):
            "\(path): \(message)."
        case .noSuchMessage(let id):
            "No message has the id \(id). 'outbox queue list' shows the ids."
        case .invalidState(let id, let message):
            "Message \(id): \(message)"
        }
    }
}
