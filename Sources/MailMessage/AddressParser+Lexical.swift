/// The lexical tokens of RFC 5322 section 3.2: white space, comments, atoms, quoted strings and domain
/// literals.
extension AddressParser {
    /// A word or a dot, as read by `readWords()`.
    struct Word {
        enum Kind {
            case atom
            case quotedString
            case dot
        }

        let kind: Kind
        /// The atom, the content of the quoted string (unescaped, without quotes) or ".".
        let text: String
        /// Offset of the first byte of the token.
        let offset: Int
        /// Whether folding white space or a comment comes before the token.
        let followsWhiteSpace: Bool
    }

    // FWS = ([*WSP CRLF] 1*WSP) / obs-FWS
    /// Skips folding white space and returns whether there was any.
    /// `init` has checked that each CR starts a CR LF WSP sequence, so the CR LF can be skipped together.
    mutating func skipFoldingWhiteSpace() -> Bool {
        let start = position
        while let byte = peek() {
            if MailCharacters.isWhiteSpace(byte) {
                position += 1
            } else if byte == MailCharacters.carriageReturn {
                position += 2
            } else {
                break
            }
        }
        return position > start
    }

    // CFWS = (1*([FWS] comment) [FWS]) / FWS
    /// Skips comments and folding white space and returns whether there were any.
    mutating func skipCommentsAndWhiteSpace() throws(AddressParseError) -> Bool {
        let start = position
        while true {
            _ = skipFoldingWhiteSpace()
            guard peek() == MailCharacters.openParenthesis else {
                break
            }
            try skipComment()
        }
        return position > start
    }

    // comment = "(" *([FWS] ccontent) [FWS] ")"
    // ccontent = ctext / quoted-pair / comment
    /// Skips the comment that starts at `position`, with the comments nested in it.
    /// Rejects nesting deeper than `maximumCommentDepth`.
    mutating func skipComment() throws(AddressParseError) {
        let start = position
        var depth = 0
        repeat {
            guard let byte = peek() else {
                let startOffset = characterOffset(of: start)
                throw unexpected("\")\" to close the comment that starts at character \(startOffset)")
            }
            switch byte {
            case MailCharacters.openParenthesis:
                depth += 1
                guard depth <= Self.maximumCommentDepth else {
                    throw error(.commentTooDeep(maximumDepth: Self.maximumCommentDepth), at: position)
                }
                position += 1
            case MailCharacters.closeParenthesis:
                depth -= 1
                position += 1
            case MailCharacters.backslash:
                _ = try readQuotedPair()
            case MailCharacters.carriageReturn:
                position += 2
            case _ where MailCharacters.isCommentText(byte) || MailCharacters.isWhiteSpace(byte):
                position += 1
            default:
                throw unexpected("comment text or \")\"")
            }
        } while depth > 0
    }

    // quoted-pair = ("\" (VCHAR / WSP)) / obs-qp
    /// Reads the quoted pair at `position` and returns the range of the escaped character.
    /// obs-qp, which escapes NUL, CR, LF and other control characters, is rejected.
    mutating func readQuotedPair() throws(AddressParseError) -> Range<Int> {
        let escaped = position + 1
        guard escaped < bytes.count else {
            throw unexpected("a character after \"\\\"", at: escaped)
        }
        let byte = bytes[escaped]
        guard MailCharacters.isVisible(byte) || MailCharacters.isWhiteSpace(byte) else {
            throw unexpected("a visible character, space or tab after \"\\\"", at: escaped)
        }
        // The input is valid UTF-8 and "\" is ASCII, so `byte` starts a character.
        let end = escaped + MailCharacters.scalarLength(leadByte: byte)
        position = end
        return escaped..<end
    }

    // atom = [CFWS] 1*atext [CFWS]
    /// Reads a run of atext, without the CFWS around it. Returns nil when `position` is not at atext.
    mutating func readAtomText() -> String? {
        let start = position
        while let byte = peek(), MailCharacters.isAtomText(byte) {
            position += 1
        }
        guard position > start else {
            return nil
        }
        // The run ends at an ASCII byte or at the end, so it cannot split a UTF-8 sequence.
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    // quoted-string = [CFWS] DQUOTE *([FWS] qcontent) [FWS] DQUOTE [CFWS]
    // qcontent = qtext / quoted-pair
    /// Reads the quoted string that starts at `position` (without the CFWS around it) and returns its content
    /// with quoted pairs unescaped and folding line breaks removed. White space inside is kept.
    mutating func readQuotedString() throws(AddressParseError) -> String {
        let start = position
        position += 1
        var content: [UInt8] = []
        while true {
            guard let byte = peek() else {
                let startOffset = characterOffset(of: start)
                throw unexpected("'\"' to close the quoted string that starts at character \(startOffset)")
            }
            switch byte {
            case MailCharacters.quote:
                position += 1
                return String(decoding: content, as: UTF8.self)
            case MailCharacters.backslash:
                content += bytes[try readQuotedPair()]
            case MailCharacters.carriageReturn:
                position += 2
            case _ where MailCharacters.isQuotedText(byte) || MailCharacters.isWhiteSpace(byte):
                content.append(byte)
                position += 1
            default:
                throw unexpected("quoted-string text or '\"'")
            }
        }
    }

    // domain-literal = [CFWS] "[" *([FWS] dtext) [FWS] "]" [CFWS]
    /// Reads the domain literal that starts at `position` (without the CFWS around it) and returns it with its
    /// brackets, folding line breaks removed, and the white space after "[" and before "]" dropped.
    ///
    /// A quoted pair in a domain literal (obs-dtext) is rejected. Unescaping it could put "]" inside the
    /// literal, and keeping it would write an obsolete form that no SMTP address literal allows.
    mutating func readDomainLiteral() throws(AddressParseError) -> String {
        let start = position
        position += 1
        var content: [UInt8] = []
        while true {
            guard let byte = peek() else {
                let startOffset = characterOffset(of: start)
                throw unexpected("\"]\" to close the domain literal that starts at character \(startOffset)")
            }
            if byte == MailCharacters.closeBracket {
                position += 1
                break
            }
            if byte == MailCharacters.carriageReturn {
                position += 2
            } else if MailCharacters.isDomainText(byte) || MailCharacters.isWhiteSpace(byte) {
                content.append(byte)
                position += 1
            } else {
                throw unexpected("domain-literal text or \"]\"")
            }
        }
        let trimmed = content.drop(while: MailCharacters.isWhiteSpace)
        let text = trimmed.reversed().drop(while: MailCharacters.isWhiteSpace).reversed()
        guard !text.isEmpty else {
            throw error(.emptyDomain, at: start)
        }
        return "[" + String(decoding: text, as: UTF8.self) + "]"
    }

    /// Reads the longest run of words (atoms and quoted strings) and dots, with the CFWS around them.
    ///
    /// This one run covers phrase, obs-phrase, dot-atom, local-part and obs-local-part. The token after the run
    /// ("@", "<" or ":") determines which rule applies, and the caller then checks the run against that rule.
    mutating func readWords() throws(AddressParseError) -> [Word] {
        var words: [Word] = []
        while true {
            let followsWhiteSpace = try skipCommentsAndWhiteSpace()
            let start = position
            guard let byte = peek() else {
                break
            }
            if byte == MailCharacters.quote {
                let content = try readQuotedString()
                words.append(Word(kind: .quotedString, text: content, offset: start,
                                  followsWhiteSpace: followsWhiteSpace))
            } else if byte == MailCharacters.dot {
                position += 1
                words.append(Word(kind: .dot, text: ".", offset: start, followsWhiteSpace: followsWhiteSpace))
            } else if let atom = readAtomText() {
                words.append(Word(kind: .atom, text: atom, offset: start, followsWhiteSpace: followsWhiteSpace))
            } else {
                break
            }
        }
        return words
    }
}
