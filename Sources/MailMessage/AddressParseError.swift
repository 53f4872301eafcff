/// An error that rejects an address or address list, with the position of the problem in the input.
///
/// `description` contains the message, the input and a line with a `^` under the position, for example:
///
///     expected "," or end of input, found ")" at character 17
///     alice@example.org)<bob@example.com>
///                      ^
public struct AddressParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem.
    public enum Reason: Sendable, Hashable {
        /// The input contains `found` where the grammar requires `expected`.
        /// Both are short descriptions, such as `"\"@\""` or `"end of input"`.
        case unexpected(expected: String, found: String)
        /// A NUL, or a CR or LF that is not part of a folding line break (CR LF followed by a space or tab).
        /// The associated value is the byte.
        case forbiddenControlCharacter(UInt8)
        /// The input is not valid UTF-8.
        case invalidUTF8
        /// A quoted local part has no content, as in `""@example.com`.
        case emptyLocalPart
        /// A domain literal has no content, as in `user@[]`.
        case emptyDomain
        /// Comments are nested deeper than `maximumDepth` levels.
        case commentTooDeep(maximumDepth: Int)
        /// The input is longer than `maximumLength` bytes.
        case inputTooLong(length: Int, maximumLength: Int)
    }

    /// The kind of problem.
    public let reason: Reason
    /// The input as text. Input longer than the maximum length is cut at that length.
    public let input: String
    /// Position of the problem in `input`, counted in Characters (extended grapheme clusters), so that
    /// `input.index(input.startIndex, offsetBy: offset)` is the position.
    public let offset: Int
    /// Position of the problem in the UTF-8 bytes of the input.
    public let byteOffset: Int

    /// Creates an error at `byteOffset` of `bytes`, which must be the whole input or its first bytes.
    init(_ reason: Reason, in bytes: some Collection<UInt8>, at byteOffset: Int) {
        self.reason = reason
        self.byteOffset = byteOffset
        input = String(decoding: bytes, as: UTF8.self)
        // NOTE: when byteOffset falls inside a grapheme cluster, as with a combining mark after a quote,
        // the offset counts that cluster as already passed.
        offset = String(decoding: bytes.prefix(byteOffset), as: UTF8.self).count
    }

    /// The problem in one line, with its position.
    public var message: String {
        switch reason {
        case .unexpected(let expected, let found):
            return "expected \(expected), found \(found) at character \(offset)"
        case .forbiddenControlCharacter(MailCharacters.carriageReturn):
            return "CR at character \(offset) is not allowed, because " + Self.foldingRule
        case .forbiddenControlCharacter(MailCharacters.lineFeed):
            return "LF at character \(offset) is not allowed, because " + Self.foldingRule
        case .forbiddenControlCharacter(0):
            return "NUL at character \(offset) is not allowed in an address"
        case .forbiddenControlCharacter(let byte):
            return "control character 0x\(String(byte, radix: 16)) at character \(offset) is not allowed in an address"
        case .invalidUTF8:
            return "invalid UTF-8 at byte \(byteOffset)"
        case .emptyLocalPart:
            return "empty local part at character \(offset): the quoted string before \"@\" has no content"
        case .emptyDomain:
            return "empty domain literal at character \(offset)"
        case .commentTooDeep(let maximumDepth):
            return "comment at character \(offset) is nested more than \(maximumDepth) levels deep"
        case .inputTooLong(let length, let maximumLength):
            return "input is \(length) bytes long, more than the maximum of \(maximumLength) bytes"
        }
    }

    private static let foldingRule = "an address may contain a line break only as folding "
        + "(CR LF followed by a space or tab)"

    /// The message, the input (or the part of it around the problem) and a `^` under the position.
    public var description: String {
        let (line, column) = Self.excerpt(of: input, around: offset)
        return message + "\n" + line + "\n" + String(repeating: " ", count: column) + "^"
    }

    /// Number of Characters shown before and after the position when the input is long.
    private static let excerptRadius = 40

    /// Returns the part of `input` around `offset` as one printable line, and the column of `offset` in it.
    ///
    /// Control characters appear as escapes such as `\r` and `\u{1}`, so that the line stays one line.
    /// NOTE: the column assumes one terminal column per Character, so wide characters before the position
    /// move the `^` to the left of the place it marks.
    private static func excerpt(of input: String, around offset: Int) -> (line: String, column: Int) {
        let characters = Array(input)
        let start = max(0, offset - excerptRadius)
        let end = min(characters.count, offset + excerptRadius)
        var line = start > 0 ? "…" : ""
        var column = line.count
        for index in start..<max(start, end) {
            let printed = printable(characters[index])
            if index < offset {
                column += printed.count
            }
            line += printed
        }
        if end < characters.count {
            line += "…"
        }
        return (line, column)
    }

    private static func printable(_ character: Character) -> String {
        var printed = ""
        for scalar in character.unicodeScalars {
            switch scalar {
            case "\r": printed += "\\r"
            case "\n": printed += "\\n"
            case "\t": printed += "\\t"
            case "\0": printed += "\\0"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value):
                printed += "\\u{" + String(scalar.value, radix: 16) + "}"
            default:
                printed.unicodeScalars.append(scalar)
            }
        }
        return printed
    }
}
