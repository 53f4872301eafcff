/// A recursive-descent parser for the address grammar of RFC 5322 section 3.4, which also reads the obsolete
/// forms of section 4.4 and the UTF-8 text of RFC 6532.
///
/// The grammar functions live in extensions: `AddressParser+Lexical.swift` reads tokens and white space,
/// `AddressParser+Address.swift` reads addresses and lists. Each function reads from `position` and leaves
/// `position` after what it read.
struct AddressParser {
    /// Maximum input length in bytes. It equals `HeaderSection.defaultMaximumSize`, so the value of any field
    /// from a header section parsed with the default limit fits. Longer input is rejected before parsing.
    static let maximumInputLength = 1_048_576

    /// Maximum nesting depth of comments, as in `(a (b (c)))`, which has depth 3. RFC 5322 sets no limit.
    /// Real messages nest comments a level or two, so deeper nesting is rejected as broken or hostile input.
    /// Comments are read in a loop, not by recursion, so this limit is not needed to protect the stack.
    static let maximumCommentDepth = 64

    /// The UTF-8 input, which `init` has checked for valid UTF-8 and for CR, LF and NUL.
    let bytes: [UInt8]
    /// Offset of the next byte to read.
    var position = 0

    /// Creates a parser after checking the length, the UTF-8 encoding and the control characters of `input`.
    init(_ input: some Collection<UInt8>) throws(AddressParseError) {
        let length = input.count
        guard length <= Self.maximumInputLength else {
            let reason = AddressParseError.Reason.inputTooLong(length: length, maximumLength: Self.maximumInputLength)
            let keptPrefix = input.prefix(Self.maximumInputLength)
            throw AddressParseError(reason, in: keptPrefix, at: Self.maximumInputLength)
        }
        bytes = Array(input)
        if let invalidOffset = firstInvalidUTF8Offset() {
            throw error(.invalidUTF8, at: invalidOffset)
        }
        try checkControlCharacters()
    }

    var isAtEnd: Bool {
        position >= bytes.count
    }

    /// Returns the byte at `position`, or nil at the end of the input.
    func peek() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    // MARK: - Errors

    func error(_ reason: AddressParseError.Reason, at offset: Int) -> AddressParseError {
        AddressParseError(reason, in: bytes, at: offset)
    }

    /// Returns an `unexpected` error at `position` (or at `offset`) that shows what the input has there.
    func unexpected(_ expected: String, at offset: Int? = nil) -> AddressParseError {
        let offset = offset ?? position
        return error(.unexpected(expected: expected, found: describeToken(at: offset)), at: offset)
    }

    /// Returns the offset in Characters of the byte at `byteOffset`, as `AddressParseError.offset` counts it.
    func characterOffset(of byteOffset: Int) -> Int {
        String(decoding: bytes.prefix(byteOffset), as: UTF8.self).count
    }

    /// Returns a short description of the input at `offset` for error messages: a run of atext, one
    /// character, a control character by its code, or "end of input".
    func describeToken(at offset: Int) -> String {
        guard offset < bytes.count else {
            return "end of input"
        }
        let byte = bytes[offset]
        if MailCharacters.isAtomText(byte) {
            // 128 bytes hold the 20 Characters shown, so the cut cannot split a character that is shown.
            let runEnd = bytes[offset...].prefix(128).firstIndex { !MailCharacters.isAtomText($0) }
                ?? min(bytes.count, offset + 128)
            let run = String(decoding: bytes[offset..<runEnd], as: UTF8.self)
            let displayedRun = run.count > 20 ? String(run.prefix(20)) + "…" : run
            return Self.quotedForMessage(displayedRun)
        }
        if byte < 0x20 || byte == 0x7F {
            return "control character 0x" + String(byte, radix: 16)
        }
        return Self.quotedForMessage(String(UnicodeScalar(byte)))
    }

    /// Returns `text` in double quotes for an error message, or in single quotes when it is a double quote.
    static func quotedForMessage(_ text: some StringProtocol) -> String {
        text == "\"" ? "'\"'" : "\"" + text + "\""
    }

    // MARK: - Input checks

    private func firstInvalidUTF8Offset() -> Int? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                offset += UTF8.width(scalar)
            case .emptyInput:
                return nil
            case .error:
                return offset
            }
        }
    }

    /// Rejects NUL, and CR and LF except in a folding line break: CR LF followed by a space or tab.
    /// After this check the lexer can skip every CR it meets together with the LF after it.
    private func checkControlCharacters() throws(AddressParseError) {
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case 0:
                throw error(.forbiddenControlCharacter(0), at: index)
            case MailCharacters.carriageReturn:
                let isFolding = index + 2 < bytes.count
                    && bytes[index + 1] == MailCharacters.lineFeed
                    && MailCharacters.isWhiteSpace(bytes[index + 2])
                guard isFolding else {
                    throw error(.forbiddenControlCharacter(MailCharacters.carriageReturn), at: index)
                }
                index += 2
            case MailCharacters.lineFeed:
                throw error(.forbiddenControlCharacter(MailCharacters.lineFeed), at: index)
            default:
                index += 1
            }
        }
    }
}
