/// MIME parameter values (RFC 2045 section 5.1) with the extensions of RFC 2231: charset and
/// continuations.
public enum ParameterValue {
    /// Maximum characters of one `name*N*=value` section, so that it fits on a folded line of 78.
    static let sectionLength = 70

    /// Returns the `name=value` words for one parameter, in one of three forms: a token, a quoted string,
    /// or RFC 2231 percent-encoded UTF-8 in numbered sections split between grapheme clusters, or between
    /// Unicode scalars inside a cluster too long for one section.
    /// Every word but the last ends with ";".
    static func encode(name: String, value: String) -> [String] {
        let bytes = Array(value.utf8)
        let isPrintableASCII = bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        // A value with "=?" takes the RFC 2231 form too, because some readers decode RFC 2047 words in
        // quoted parameter values, which would change it.
        let looksEncoded = value.contains("=?")
        if isPrintableASCII && !looksEncoded && name.utf8.count + bytes.count + 3 <= sectionLength {
            if !bytes.isEmpty && bytes.allSatisfy(isTokenCharacter) {
                return ["\(name)=\(value)"]
            }
            return ["\(name)=" + MailCharacters.quoted(value)]
        }
        let capacity = sectionLength - name.utf8.count - 5
        var sections: [String] = []
        var current = "UTF-8''"
        for piece in encodedPieces(of: value, capacity: capacity) {
            if current.utf8.count + piece.utf8.count > capacity && current != "UTF-8''" && !current.isEmpty {
                sections.append(current)
                current = ""
            }
            current += piece
        }
        sections.append(current)
        if sections.count == 1 {
            return ["\(name)*=\(sections[0])"]
        }
        return sections.enumerated().map { index, section in
            "\(name)*\(index)*=\(section)" + (index < sections.count - 1 ? ";" : "")
        }
    }

    /// Returns the percent-encoded pieces that a section break may not split. Each grapheme cluster is one
    /// piece, so a reader that decodes sections one at a time still shows whole characters. A cluster can
    /// have any number of combining marks, so one too long for a section is split into its Unicode scalars.
    private static func encodedPieces(of value: String, capacity: Int) -> [String] {
        var pieces: [String] = []
        for cluster in value {
            let piece = percentEncode(Array(String(cluster).utf8))
            if piece.utf8.count <= capacity {
                pieces.append(piece)
            } else {
                pieces += cluster.unicodeScalars.map { percentEncode(Array(String($0).utf8)) }
            }
        }
        return pieces
    }

    /// Returns whether `byte` may appear in a token (RFC 2045 section 5.1): printable ASCII other than tspecials.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F && !"()<>@,;:\\\"/[]?=".utf8.contains(byte)
    }

    /// Returns whether `byte` may appear unencoded in an RFC 2231 extended value (attribute-char).
    static func isAttributeCharacter(_ byte: UInt8) -> Bool {
        isTokenCharacter(byte) && byte != UInt8(ascii: "*") && byte != UInt8(ascii: "'") && byte != UInt8(ascii: "%")
    }

    private static func percentEncode(_ bytes: [UInt8]) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var output: [UInt8] = []
        for byte in bytes {
            if isAttributeCharacter(byte) {
                output.append(byte)
            } else {
                output += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}
