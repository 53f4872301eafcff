/// A header field value that cannot be written as given.
public struct HeaderValueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The reason.
    public enum Reason: Sendable, Hashable {
        /// The value contains CR, LF or NUL, which could end the field and start another one.
        case lineBreakOrNUL
        /// The field name is empty or contains a character other than printable ASCII without ":".
        case invalidFieldName
        /// A word of a structured value does not fit in a line of 998 octets.
        case lineTooLong
        /// A media type is not of the form `type/subtype` with tokens of RFC 2045.
        case invalidMediaType(String)
        /// A message ID or content ID is not of the form `<left@right>` in printable ASCII without white space.
        case invalidMessageID(String)
        /// A custom field has a name that the builder writes itself, such as Bcc or Content-Type.
        case reservedFieldName
    }

    /// The field name as the caller gave it.
    public let fieldName: String
    /// The reason the value was rejected.
    public let reason: Reason

    public var description: String {
        let name = fieldName.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : $0.escaped(asASCII: true) }.joined()
        switch reason {
        case .lineBreakOrNUL:
            return "The value of the \(name) header field contains a line break (CR or LF) or a NUL character. "
                + "Remove it, or pass the parts as separate values."
        case .invalidFieldName:
            return "The header field name \"\(name)\" is invalid: use printable ASCII letters, digits and hyphens, without a colon."
        case .invalidMediaType(let mediaType):
            return "The media type \(mediaType.debugDescription) in the \(name) header field is invalid: "
                + "use the form type/subtype, such as application/pdf."
        case .invalidMessageID(let id):
            return "The ID \(id.debugDescription) in the \(name) header field is invalid: "
                + "use the form <left@right> with printable ASCII and no white space, such as <part1@example.org>."
        case .reservedFieldName:
            return "The header field \(name) cannot be a custom field, because the message builder writes it: "
                + "set the matching builder property instead."
        case .lineTooLong:
            return "The value of the \(name) header field contains a word longer than the 998-octet line limit of RFC 5322."
        }
    }
}

/// One header field ready to be written: its name and its value, already encoded and folded.
///
/// Values are encoded so that the field is 7-bit ASCII, except for addresses whose local part is not
/// ASCII, which need SMTPUTF8 anyway and stay UTF-8 (RFC 6532). Other domains are written in A-labels. Lines are folded at white space to at
/// most 78 characters where the words allow, and never beyond 998. Parsing the written field with
/// `HeaderSection` gives one field with the same name, whose unfolded value decodes
/// (`EncodedWord.decode`) to the value given, apart from white space at its ends.
public struct OutgoingHeaderField: Sendable, Hashable {
    /// Line length that folding aims at, without CR LF (RFC 5322 section 2.1.1).
    public static let preferredLineLength = 78
    /// Maximum line length without CR LF (RFC 5322 section 2.1.1).
    public static let maximumLineLength = 998

    /// The field name.
    public let name: String
    /// The field as written, from the name to the end of its last line, without the final CR LF, as bytes.
    /// A copied field may contain bytes that are not UTF-8.
    public let lineBytes: [UInt8]

    /// The field as written, from the name to the end of its last line, without the final CR LF.
    public var line: String { String(decoding: lineBytes, as: UTF8.self) }

    /// The whole field with its final CR LF, as bytes.
    public var bytes: [UInt8] { lineBytes + [13, 10] }

    private init(name: String, line: String) {
        self.name = name
        self.lineBytes = Array(line.utf8)
    }

    private init(name: String, lineBytes: [UInt8]) {
        self.name = name
        self.lineBytes = lineBytes
    }

    /// Creates a field with the name and raw value of a parsed field, for writing a parsed message again.
    /// Line ends become CR LF and a CR that is not part of a line end becomes a space, so the copy is
    /// still one field.
    public static func copying(_ field: HeaderField) -> Self {
        var line = Array(field.name.utf8) + [UInt8(ascii: ":")]
        let raw = field.rawValue
        var index = 0
        while index < raw.count {
            let byte = raw[index]
            if byte == 13 && index + 1 < raw.count && raw[index + 1] == 10 {
                line += [13, 10]
                index += 2
                continue
            }
            if byte == 10 {
                line += [13, 10]
            } else if byte == 13 || byte == 0 {
                line.append(32)
            } else {
                line.append(byte)
            }
            index += 1
        }
        return Self(name: field.name, lineBytes: line)
    }

    // MARK: Factories

    /// Creates a field with unstructured text, such as Subject or a custom field.
    ///
    /// The text is written as it is when it is printable ASCII, contains no `=?`, has no word of only TABs,
    /// and folds into lines of at most 998 octets. Otherwise the whole text becomes UTF-8 encoded words, so
    /// it round-trips exactly. A word of only TABs could start a folded line and leave a line of only white
    /// space, which RFC 5322 allows only in its obsolete syntax (section 4.2). `fold` breaks lines only
    /// before a word that is not the first, so a long run of spaces can make a line too long.
    ///
    /// - Throws: `HeaderValueError` when `name` is invalid or `text` contains CR, LF or NUL.
    public static func text(_ name: String, _ text: String) throws(HeaderValueError) -> Self {
        try validate(name: name, value: text)
        let words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let isPlain = text.utf8.allSatisfy { ($0 >= 0x20 && $0 < 0x7F) || $0 == 9 }
            && !text.contains("=?")
            && !words.contains { !$0.isEmpty && $0.utf8.allSatisfy { $0 == 9 } }
        if isPlain {
            let field = fold(name: name, tokens: words)
            if !field.hasLineLongerThanMaximum {
                return field
            }
        }
        let room = preferredLineLength - name.utf8.count - 2
        return fold(name: name, tokens: EncodedWord.encode(text, context: .text, firstWordLimit: room))
    }

    /// Creates an address field, such as From or To, from mailboxes and groups.
    ///
    /// Display names that are not printable ASCII become encoded words in the phrase form. Folding happens
    /// only at the white space between words, so the comma between two addresses is never encoded.
    ///
    /// - Throws: `HeaderValueError` when `name` is invalid.
    public static func addresses(_ name: String, _ entries: [AddressList.Entry]) throws(HeaderValueError) -> Self {
        try validate(name: name, value: "")
        var tokens: [String] = []
        for (index, entry) in entries.enumerated() {
            let separator = index == entries.count - 1 ? "" : ","
            switch entry {
            case .mailbox(let address):
                tokens += mailboxTokens(address)
            case .group(let group):
                var nameTokens = phraseTokens(group.displayName.isEmpty ? "\"\"" : group.displayName, quotedEmpty: true)
                nameTokens[nameTokens.count - 1] += ":"
                tokens += nameTokens
                for (memberIndex, member) in group.members.enumerated() {
                    tokens += mailboxTokens(member)
                    if memberIndex < group.members.count - 1 { tokens[tokens.count - 1] += "," }
                }
                tokens[tokens.count - 1] += ";"
            }
            tokens[tokens.count - 1] += separator
        }
        return try checked(fold(name: name, tokens: tokens))
    }

    /// Creates an address field from addresses.
    public static func addresses(_ name: String, _ addresses: [MailAddress]) throws(HeaderValueError) -> Self {
        try self.addresses(name, addresses.map(AddressList.Entry.mailbox))
    }

    /// Creates a field with a value and MIME parameters, such as Content-Type or Content-Disposition.
    ///
    /// A parameter value that is a token is written as it is, and other short printable ASCII as a quoted
    /// string. Any other value takes the RFC 2231 form (`filename*=UTF-8''%E2%82%AC.txt`), split into
    /// numbered sections between whole characters when it is long. RFC 2047 encoded words are never used
    /// in parameters.
    ///
    /// - Throws: `HeaderValueError` when a name or value contains CR, LF or NUL or a name is invalid.
    public static func parameterized(_ name: String, _ value: String, parameters: [(String, String)]) throws(HeaderValueError) -> Self {
        try validate(name: name, value: value)
        var tokens = [value + (parameters.isEmpty ? "" : ";")]
        for (index, (parameterName, parameterValue)) in parameters.enumerated() {
            try validate(name: parameterName, value: parameterValue)
            var parameterTokens = ParameterValue.encode(name: parameterName, value: parameterValue)
            if index < parameters.count - 1 {
                parameterTokens = parameterTokens.map { $0.hasSuffix(";") ? $0 : $0 + ";" }
            }
            tokens += parameterTokens
        }
        return try checked(fold(name: name, tokens: tokens))
    }

    /// Creates a field from words that are already valid for the field, such as message IDs or a date,
    /// folding between them.
    ///
    /// - Throws: `HeaderValueError` when a word contains CR, LF or NUL, or is too long for a line.
    public static func structured(_ name: String, words: [String]) throws(HeaderValueError) -> Self {
        try validate(name: name, value: words.joined(separator: " "))
        return try checked(fold(name: name, tokens: words.filter { !$0.isEmpty }))
    }

    // MARK: Helpers

    /// Checks that `mediaType` is `type/subtype` with both parts tokens (RFC 2045 section 5.1).
    static func validate(mediaType: String, fieldName: String) throws(HeaderValueError) {
        let parts = mediaType.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        let isValid = parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(ParameterValue.isTokenCharacter) }
        guard isValid else { throw HeaderValueError(fieldName: fieldName, reason: .invalidMediaType(mediaType)) }
    }

    static func validate(name: String, value: String) throws(HeaderValueError) {
        let nameIsValid = !name.isEmpty && name.utf8.allSatisfy(MailCharacters.isFieldNameText)
        guard nameIsValid else { throw HeaderValueError(fieldName: name, reason: .invalidFieldName) }
        if value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
            throw HeaderValueError(fieldName: name, reason: .lineBreakOrNUL)
        }
    }

    private static func checked(_ field: Self) throws(HeaderValueError) -> Self {
        if field.hasLineLongerThanMaximum {
            throw HeaderValueError(fieldName: field.name, reason: .lineTooLong)
        }
        return field
    }

    /// Whether a line of the field, without its CR LF, is longer than `maximumLineLength`. The last line
    /// has no CR LF in `line`.
    private var hasLineLongerThanMaximum: Bool {
        let lines = line.utf8.split(separator: 10, omittingEmptySubsequences: false)
        return lines.contains { ($0.last == 13 ? $0.count - 1 : $0.count) > Self.maximumLineLength }
    }

    /// Returns a mailbox as words. A domain that is not ASCII is written in A-labels when the local part
    /// is ASCII, so the field stays 7-bit. A local part that is not ASCII needs SMTPUTF8 anyway, so such
    /// an address, and a domain that IDNA rejects, is written as UTF-8 (RFC 6532).
    private static func mailboxTokens(_ address: MailAddress) -> [String] {
        var addrSpec = address.addrSpec
        if address.localPart.utf8.allSatisfy({ $0 < 0x80 }), let asciiDomain = try? IDNA.toASCII(address.domain) {
            addrSpec = address.localPart + "@" + asciiDomain
        }
        guard let displayName = address.displayName else { return [addrSpec] }
        return phraseTokens(displayName, quotedEmpty: false) + ["<" + addrSpec + ">"]
    }

    /// Returns a display name as words: atoms, one quoted string, or encoded words. Encoded words that a
    /// parsed display name kept are decoded first, so they are not encoded twice.
    private static func phraseTokens(_ displayName: String, quotedEmpty: Bool) -> [String] {
        if quotedEmpty && displayName == "\"\"" { return [displayName] }
        let phrase = EncodedWord.decode(displayName)
        let isPrintableASCII = phrase.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        if isPrintableASCII && !phrase.contains("=?") {
            let formatted = MailAddress.formatPhrase(phrase)
            if formatted == phrase {
                return phrase.split(separator: " ").map(String.init)
            }
            // A quoted string is one word, so it must fit in a line with the address after it.
            if formatted.utf8.count <= maximumLineLength / 2 {
                return [formatted]
            }
        }
        return EncodedWord.encode(phrase, context: .phrase)
    }

    /// Joins `tokens` with single spaces, replacing a space by CR LF and a space where the line would pass
    /// 78 characters. A token longer than a line gets a line of its own.
    static func fold(name: String, tokens: [String]) -> Self {
        var result = name + ":"
        var lineLength = result.utf8.count
        var lineHasToken = false
        for token in tokens {
            let length = token.utf8.count
            if lineHasToken && !token.isEmpty && lineLength + 1 + length > preferredLineLength {
                result += "\r\n "
                lineLength = 1
            } else {
                result += " "
                lineLength += 1
            }
            result += token
            lineLength += length
            lineHasToken = lineHasToken || !token.isEmpty
        }
        return Self(name: name, line: result)
    }
}
