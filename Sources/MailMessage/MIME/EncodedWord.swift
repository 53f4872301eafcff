/// RFC 2047 encoded words, such as `=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=`, the form that non-ASCII text takes in
/// header fields of messages that do not use RFC 6532.
public enum EncodedWord {
    /// Maximum length of one encoded word, from RFC 2047 section 2.
    public static let maximumLength = 75

    /// The place in a header field where the words go, which decides the characters that Q may leave
    /// unencoded.
    public enum Context: Sendable {
        /// Unstructured text, such as the value of Subject.
        case text
        /// A phrase, such as a display name in an address field (RFC 2047 section 5, rule 3).
        case phrase
    }

    /// Returns `text` as UTF-8 encoded words, each at most 75 characters.
    ///
    /// Words are split only between grapheme clusters, so no word ends inside a UTF-8 sequence and no base
    /// character is separated from its combining marks. A single cluster too large for one word, which
    /// takes dozens of combining marks, is split between Unicode scalars instead. The Q encoding is used
    /// when at most a sixth of the bytes are not ASCII, else B. Put folding white space between the words:
    /// a decoder drops it, so the words decode back to exactly `text`.
    ///
    /// - Parameter firstWordLimit: Maximum length of the first word, so that it fits on a line that is
    ///   partly used. Values below 16 are raised to 16.
    public static func encode(_ text: String, context: Context = .text, firstWordLimit: Int = maximumLength) -> [String] {
        let bytes = Array(text.utf8)
        let nonASCII = bytes.filter { $0 >= 0x80 }.count
        let useQ = nonASCII * 6 <= bytes.count
        let prefix = useQ ? "=?UTF-8?Q?" : "=?UTF-8?B?"
        let overhead = prefix.utf8.count + 2

        var words: [String] = []
        var current: [UInt8] = []
        var currentLength = 0
        func limit() -> Int { (words.isEmpty ? max(16, min(firstWordLimit, maximumLength)) : maximumLength) - overhead }
        func encodedLength(_ count: Int, adding piece: [UInt8]) -> Int {
            useQ ? count + qLength(piece, context: context) : (current.count + piece.count + 2) / 3 * 4
        }
        func flush() {
            guard !current.isEmpty else { return }
            let payload = useQ ? qEncode(current, context: context) : String(decoding: Base64Encoder.encode(current).filter { $0 != 13 && $0 != 10 }, as: UTF8.self)
            words.append(prefix + payload + "?=")
            current.removeAll()
            currentLength = 0
        }
        func add(_ piece: [UInt8]) -> Bool {
            let length = encodedLength(currentLength, adding: piece)
            if length <= limit() {
                current += piece
                currentLength = useQ ? length : 0
                return true
            }
            return false
        }
        for cluster in text {
            let piece = Array(String(cluster).utf8)
            if add(piece) { continue }
            flush()
            if add(piece) { continue }
            for scalar in cluster.unicodeScalars {
                let scalarBytes = Array(String(scalar).utf8)
                if !add(scalarBytes) {
                    flush()
                    _ = add(scalarBytes)
                }
            }
        }
        flush()
        return words
    }

    private static func isQLiteral(_ byte: UInt8, context: Context) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"):
            return true
        case UInt8(ascii: "."), UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: ";"), UInt8(ascii: "'"):
            return context == .text
        default:
            return false
        }
    }

    private static func qLength(_ bytes: [UInt8], context: Context) -> Int {
        bytes.reduce(0) { $0 + (isQLiteral($1, context: context) || $1 == 32 ? 1 : 3) }
    }

    private static func qEncode(_ bytes: [UInt8], context: Context) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var output: [UInt8] = []
        for byte in bytes {
            if byte == 32 {
                output.append(UInt8(ascii: "_"))
            } else if isQLiteral(byte, context: context) {
                output.append(byte)
            } else {
                output += [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    // MARK: - Decoding

    /// Returns `value` with its encoded words decoded and white space between adjacent encoded words
    /// removed, as RFC 2047 section 6.2 requires.
    ///
    /// Words in charsets other than UTF-8, US-ASCII and ISO-8859-1 are converted through iconv. A word
    /// that is malformed or names a charset that iconv does not know is kept as written. An RFC 2231
    /// language suffix (`=?UTF-8*en?Q?...?=`) is ignored.
    public static func decode(_ value: String) -> String {
        let bytes = Array(value.utf8)
        var result = ""
        var index = 0
        var literalStart = 0
        var lastWordEnd: Int?
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "="), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "?"),
                  let (text, end) = decodeWord(bytes, at: index)
            else {
                index += 1
                continue
            }
            let between = bytes[literalStart..<index]
            let onlyWhiteSpace = between.allSatisfy { MailCharacters.isWhiteSpace($0) || $0 == 13 || $0 == 10 }
            if !(lastWordEnd == literalStart && onlyWhiteSpace) {
                result += String(decoding: between, as: UTF8.self)
            }
            result += text
            index = end
            literalStart = end
            lastWordEnd = end
        }
        result += String(decoding: bytes[literalStart...], as: UTF8.self)
        return result
    }

    /// Decodes the encoded word that starts at `start`, returning its text and the offset after it.
    private static func decodeWord(_ bytes: [UInt8], at start: Int) -> (String, Int)? {
        var fields: [[UInt8]] = []
        var index = start + 2
        var fieldStart = index
        while index < bytes.count && fields.count < 3 {
            let byte = bytes[index]
            if byte == 32 || byte == 9 || byte == 13 || byte == 10 { return nil }
            if byte == UInt8(ascii: "?") {
                fields.append(Array(bytes[fieldStart..<index]))
                fieldStart = index + 1
                if fields.count == 3 {
                    guard index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "=") else { return nil }
                    index += 2
                    break
                }
            }
            index += 1
        }
        guard fields.count == 3, !fields[0].isEmpty else { return nil }

        let charset = String(decoding: fields[0].prefix { $0 != UInt8(ascii: "*") }, as: UTF8.self)
        let payload = fields[2]

        let decoded: [UInt8]
        switch fields[1] {
        case [UInt8(ascii: "B")], [UInt8(ascii: "b")]:
            decoded = Base64Decoder.decode(payload)
        case [UInt8(ascii: "Q")], [UInt8(ascii: "q")]:
            decoded = qDecode(payload)
        default:
            return nil
        }
        guard let text = Charset.decode(decoded, from: charset) else { return nil }
        return (text, index)
    }

    private static func qDecode(_ payload: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var index = 0
        while index < payload.count {
            let byte = payload[index]
            if byte == UInt8(ascii: "_") {
                output.append(32)
            } else if byte == UInt8(ascii: "="), index + 2 < payload.count,
                      let high = QuotedPrintableDecoder.hexValue(payload[index + 1]),
                      let low = QuotedPrintableDecoder.hexValue(payload[index + 2])
            {
                output.append(high << 4 | low)
                index += 2
            } else {
                output.append(byte)
            }
            index += 1
        }
        return output
    }
}
