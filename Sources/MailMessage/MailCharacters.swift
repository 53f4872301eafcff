/// Byte constants and the character classes of the RFC 5322 grammar.
///
/// RFC 6532 adds UTF8-non-ascii to atext, qtext, ctext, dtext and VCHAR, so every byte of 0x80 or above
/// counts as text here. The predicates look at one byte, so callers must check that the input is valid
/// UTF-8 before they rely on them.
enum MailCharacters {
    static let tab = UInt8(ascii: "\t")
    static let lineFeed = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let openParenthesis = UInt8(ascii: "(")
    static let closeParenthesis = UInt8(ascii: ")")
    static let comma = UInt8(ascii: ",")
    static let dot = UInt8(ascii: ".")
    static let colon = UInt8(ascii: ":")
    static let semicolon = UInt8(ascii: ";")
    static let lessThan = UInt8(ascii: "<")
    static let greaterThan = UInt8(ascii: ">")
    static let at = UInt8(ascii: "@")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let hyphen = UInt8(ascii: "-")

    /// WSP = SP / HTAB
    static func isWhiteSpace(_ byte: UInt8) -> Bool {
        byte == space || byte == tab
    }

    /// atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "/" / "=" / "?" / "^" /
    ///         "_" / "`" / "{" / "|" / "}" / "~" / UTF8-non-ascii
    static func isAtomText(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), 0x80...0xFF:
            return true
        default:
            return "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
        }
    }

    /// qtext = %d33 / %d35-91 / %d93-126 / UTF8-non-ascii (without obs-qtext)
    static func isQuotedText(_ byte: UInt8) -> Bool {
        byte == 33 || (35...91).contains(byte) || (93...126).contains(byte) || byte >= 0x80
    }

    /// ctext = %d33-39 / %d42-91 / %d93-126 / UTF8-non-ascii (without obs-ctext)
    static func isCommentText(_ byte: UInt8) -> Bool {
        (33...39).contains(byte) || (42...91).contains(byte) || (93...126).contains(byte) || byte >= 0x80
    }

    /// dtext = %d33-90 / %d94-126 / UTF8-non-ascii (without obs-dtext)
    static func isDomainText(_ byte: UInt8) -> Bool {
        (33...90).contains(byte) || (94...126).contains(byte) || byte >= 0x80
    }

    /// VCHAR = %x21-7E / UTF8-non-ascii
    static func isVisible(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) || byte >= 0x80
    }

    /// ftext = %d33-57 / %d59-126, the bytes of a field name.
    static func isFieldNameText(_ byte: UInt8) -> Bool {
        (33...57).contains(byte) || (59...126).contains(byte)
    }

    /// Returns the length of the UTF-8 sequence that starts with `leadByte`, or 1 for an ASCII byte.
    static func scalarLength(leadByte: UInt8) -> Int {
        switch leadByte {
        case 0xF0...0xFF: return 4
        case 0xE0...0xEF: return 3
        case 0xC0...0xDF: return 2
        default: return 1
        }
    }

    /// Returns whether two byte strings are equal when ASCII letters are compared without case.
    /// Other bytes must match exactly, so no Unicode case mapping can make two different names equal.
    static func equalsIgnoringASCIICase(_ first: some Collection<UInt8>, _ second: some Collection<UInt8>) -> Bool {
        guard first.count == second.count else {
            return false
        }
        return zip(first, second).allSatisfy { lowercasedASCII($0) == lowercasedASCII($1) }
    }

    private static func lowercasedASCII(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }

    /// Returns whether `text` is a dot-atom-text: atoms of atext joined by single dots.
    static func isDotAtom(_ text: String) -> Bool {
        let atoms = text.utf8.split(separator: dot, omittingEmptySubsequences: false)
        return atoms.allSatisfy { atom in !atom.isEmpty && atom.allSatisfy(isAtomText) }
    }

    /// Returns `text` as a quoted-string, with a backslash before each `"` and `\`.
    ///
    /// The result is a valid RFC 5322 quoted-string when `text` has no control characters other than tab,
    /// and a valid RFC 5321 Quoted-string when it has none at all.
    static func quoted(_ text: String) -> String {
        // Scalars, not Characters, because a combining mark after `"` would hide it from a Character test.
        var result = String.UnicodeScalarView()
        result.append("\"")
        for scalar in text.unicodeScalars {
            if scalar == "\"" || scalar == "\\" {
                result.append("\\")
            }
            result.append(scalar)
        }
        result.append("\"")
        return String(result)
    }
}
