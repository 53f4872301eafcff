/// MIME parameter values (RFC 2045 section 5.1) with the extensions of RFC 2231: charset and
/// continuations.
public enum ParameterValue {
    /// Maximum characters of one `name*N*=value` section, so that it fits on a folded line of 78.
    static let sectionLength = 70

    /// Returns the `name=value` words for one parameter, in one of three forms: a token, a quoted string,
    /// or RFC 2231 percent-encoded UTF-8 in numbered sections split between grapheme clusters.
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
        var sections: [String] = []
        var current = "UTF-8''"
        for cluster in value {
            let piece = percentEncode(Array(String(cluster).utf8))
            if current.utf8.count + piece.utf8.count > sectionLength - name.utf8.count - 5 && current != "UTF-8''" && !current.isEmpty {
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
