import Foundation

/// SASLprep (RFC 4013), the stringprep profile (RFC 3454) that SCRAM applies to user names and
/// passwords before hashing, so that the same text typed on different systems gives the same bytes.
///
/// Done:
/// - Non-ASCII spaces (table C.1.2) become U+0020, and the characters of table B.1, such as the
///   soft hyphen, are removed.
/// - NFKC normalization.
/// - The characters of tables C.1.2 and C.2.1 to C.9 are rejected: control, private use,
///   non-characters, surrogates, tagging and display-changing characters.
/// - Unassigned code points pass, because RFC 4013 section 2.5 allows them in queries, and a
///   client's strings are queries.
///
/// NOTE: Not done: the bidirectional check of RFC 3454 section 6, which needs the Unicode bidi
/// tables D.1 and D.2. A string that mixes right-to-left and left-to-right letters passes here,
/// though a strict server rejects it. NFKC comes from Foundation and follows the Unicode version
/// of the installed toolchain, not Unicode 3.2 as RFC 3454 fixes, so characters added to Unicode
/// since 3.2 may normalize differently from a server that follows the RFC to the letter.
enum SASLPrep {
    /// A character that SASLprep prohibits in its output.
    struct ProhibitedCharacterError: Error, Sendable, Hashable {
        let scalar: Unicode.Scalar
    }

    static func prepare(_ string: String) throws(ProhibitedCharacterError) -> String {
        var mapped = String.UnicodeScalarView()
        for scalar in string.unicodeScalars {
            if contains(mappedToNothing, scalar) {
                continue
            }
            mapped.append(contains(nonASCIISpaces, scalar) ? " " : scalar)
        }
        let normalized = String(mapped).precomposedStringWithCompatibilityMapping
        if let scalar = normalized.unicodeScalars.first(where: isProhibited) {
            throw ProhibitedCharacterError(scalar: scalar)
        }
        return normalized
    }

    static func isProhibited(_ scalar: Unicode.Scalar) -> Bool {
        // Table C.4: U+FFFE and U+FFFF in every plane are non-characters.
        if scalar.value & 0xFFFE == 0xFFFE {
            return true
        }
        return contains(nonASCIISpaces, scalar) || contains(prohibited, scalar)
    }

    private static func contains(_ table: [ClosedRange<UInt32>], _ scalar: Unicode.Scalar) -> Bool {
        table.contains { $0.contains(scalar.value) }
    }

    /// RFC 3454 table B.1, "commonly mapped to nothing".
    private static let mappedToNothing: [ClosedRange<UInt32>] = [
        0x00AD...0x00AD, 0x034F...0x034F, 0x1806...0x1806, 0x180B...0x180D, 0x200B...0x200D,
        0x2060...0x2060, 0xFE00...0xFE0F, 0xFEFF...0xFEFF,
    ]

    /// RFC 3454 table C.1.2, non-ASCII space characters. U+200B is also in table B.1, which
    /// removes it first.
    private static let nonASCIISpaces: [ClosedRange<UInt32>] = [
        0x00A0...0x00A0, 0x1680...0x1680, 0x2000...0x200B, 0x202F...0x202F, 0x205F...0x205F,
        0x3000...0x3000,
    ]

    /// RFC 3454 tables C.2.1 to C.9, except the non-characters U+nFFFE and U+nFFFF of table C.4,
    /// which `isProhibited` tests arithmetically.
    private static let prohibited: [ClosedRange<UInt32>] = [
        // C.2.1 ASCII control characters.
        0x0000...0x001F, 0x007F...0x007F,
        // C.2.2 Non-ASCII control characters.
        0x0080...0x009F, 0x06DD...0x06DD, 0x070F...0x070F, 0x180E...0x180E, 0x200C...0x200D,
        0x2028...0x2029, 0x2060...0x2063, 0x206A...0x206F, 0xFEFF...0xFEFF, 0xFFF9...0xFFFC,
        0x1D173...0x1D17A,
        // C.3 Private use.
        0xE000...0xF8FF, 0xF0000...0xFFFFD, 0x100000...0x10FFFD,
        // C.4 Non-character code points (the rest are the U+nFFFE and U+nFFFF pairs).
        0xFDD0...0xFDEF,
        // C.5 Surrogate codes, which a Swift string cannot contain but the table lists.
        0xD800...0xDFFF,
        // C.6 Inappropriate for plain text.
        0xFFF9...0xFFFD,
        // C.7 Inappropriate for canonical representation.
        0x2FF0...0x2FFB,
        // C.8 Change display properties or are deprecated.
        0x0340...0x0341, 0x200E...0x200F, 0x202A...0x202E, 0x206A...0x206F,
        // C.9 Tagging characters.
        0xE0001...0xE0001, 0xE0020...0xE007F,
    ]
}

/// Encodes a user name as a SCRAM and GS2 `saslname` (RFC 5802 section 7): "=" becomes "=3D" and
/// "," becomes "=2C", because both delimit attributes.
func saslName(_ name: String) -> String {
    var encoded = ""
    for character in name.unicodeScalars {
        switch character {
        case "=": encoded += "=3D"
        case ",": encoded += "=2C"
        default: encoded.unicodeScalars.append(character)
        }
    }
    return encoded
}

/// Formats a scalar as U+XXXX for error messages.
func codePointLabel(_ scalar: Unicode.Scalar) -> String {
    let hex = String(scalar.value, radix: 16, uppercase: true)
    return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}
