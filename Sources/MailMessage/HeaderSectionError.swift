/// An error that stops `HeaderSection` parsing.
public enum HeaderSectionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The header section does not end within `maximumSize` bytes.
    case tooLarge(maximumSize: Int)

    /// The problem and what to do about it.
    public var description: String {
        switch self {
        case .tooLarge(let maximumSize):
            return "header section is larger than the maximum of \(maximumSize) bytes; "
                + "check that the input is a message, or pass a larger maximumSize"
        }
    }
}
