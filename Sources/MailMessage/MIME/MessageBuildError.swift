/// A message that `MessageBuilder` cannot build or write.
public enum MessageBuildError: Error, Sendable, CustomStringConvertible {
    /// A header field value is invalid, for example because it contains a line break.
    case invalidHeader(HeaderValueError)
    /// The message has no From address.
    case missingFrom
    /// A file to attach does not exist, is not a regular file or cannot be read.
    case fileUnreadable(path: String, reason: String)
    /// The charset is unknown to iconv.
    case unknownCharset(String)

    public var description: String {
        switch self {
        case .invalidHeader(let error):
            return error.description
        case .missingFrom:
            return "The message has no From address: set one, such as \"Name <user@example.org>\"."
        case .fileUnreadable(let path, let reason):
            return "The file \(Self.printable(path)) cannot be attached: \(reason)."
        case .unknownCharset(let name):
            return "The charset \"\(Self.printable(name))\" is unknown: use UTF-8 or a name that iconv -l lists."
        }
    }

    /// Returns `text` with C0 and C1 control characters as Swift escapes, such as `\r`, so that a value
    /// echoed in a message cannot break a terminal line or a log line.
    static func printable(_ text: String) -> String {
        text.unicodeScalars
            .map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? $0.escaped(asASCII: true) : String($0) }
            .joined()
    }
}
