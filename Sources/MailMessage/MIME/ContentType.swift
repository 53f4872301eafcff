/// A parsed Content-Type or Content-Disposition value: the type (or disposition) and its parameters,
/// with RFC 2231 continuations joined and charsets decoded.
public struct ParameterizedValue: Sendable, Hashable {
    /// The value before the first ";", lowercased, such as `text/plain` or `attachment`.
    public let value: String
    /// Parameters in order, with lowercased names and decoded values. A name appears once: RFC 2231
    /// sections are joined under the name without `*` and section number.
    public let parameters: [(name: String, value: String)]

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.value == rhs.value && lhs.parameters.elementsEqual(rhs.parameters) { $0 == $1 }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(value)
        for (name, value) in parameters {
            hasher.combine(name)
            hasher.combine(value)
        }
    }

    /// Returns the value of the parameter `name`, compared without case, or nil.
    public func parameter(_ name: String) -> String? {
        let lower = name.lowercased()
        return parameters.first { $0.name == lower }?.value
    }

    /// Parses a header field value such as `text/plain; charset="utf-8"`.
    ///
    /// Parsing is lenient, as readers of real mail must be: comments are skipped, a parameter without a
    /// value is dropped, and a quoted value that contains RFC 2047 encoded words is decoded, which RFC 2047
    /// forbids but many mailers write. Sections of RFC 2231 (`name*0*=`, `name*1=`) are joined in number
    /// order and decoded from the charset of section 0, with U+FFFD for bytes that charset cannot decode.
    public init(parsing text: some Collection<UInt8>) {
        var scanner = ParameterScanner(bytes: Array(text))
        value = String(decoding: scanner.scanUntilSemicolon(), as: UTF8.self).trimmingASCIIWhiteSpace().lowercased()
        var plain: [(String, String)] = []
        var sections: [String: [(number: Int, encoded: Bool, value: [UInt8])]] = [:]
        var order: [String] = []
        while scanner.skipSemicolon() {
            guard let (rawName, rawValue, _) = scanner.scanParameter() else { continue }
            let name = rawName.lowercased()
            if let star = name.firstIndex(of: "*") {
                let base = String(name[..<star])
                let rest = name[name.index(after: star)...]
                let encoded = rest.hasSuffix("*") || rest.isEmpty
                let numberText = rest.hasSuffix("*") ? rest.dropLast() : rest
                let number = numberText.isEmpty ? 0 : Int(numberText) ?? 0
                if sections[base] == nil { order.append(base) }
                // A quoted extended value is invalid in RFC 2231, but mailers write it and readers decode it.
                sections[base, default: []].append((number, encoded, rawValue))
            } else {
                if !order.contains(name) { order.append(name) }
                var text = String(decoding: rawValue, as: UTF8.self)
                if text.contains("=?") { text = EncodedWord.decode(text) }
                plain.append((name, text))
            }
        }
        var result: [(name: String, value: String)] = []
        for name in order {
            if let parts = sections[name] {
                result.append((name, Self.joinSections(parts.sorted { $0.number < $1.number })))
            } else if let value = plain.first(where: { $0.0 == name })?.1 {
                result.append((name, value))
            }
        }
        parameters = result
    }

    /// Joins RFC 2231 sections: percent-decodes the encoded ones and converts from the charset named
    /// before the first "'" of section 0.
    private static func joinSections(_ sections: [(number: Int, encoded: Bool, value: [UInt8])]) -> String {
        var charset = "us-ascii"
        var bytes: [UInt8] = []
        for (index, section) in sections.enumerated() {
            var value = section.value[...]
            if index == 0 && section.encoded {
                let quotes = value.indices.filter { value[$0] == UInt8(ascii: "'") }
                if quotes.count >= 2 {
                    charset = String(decoding: value[..<quotes[0]], as: UTF8.self)
                    value = value[(quotes[1] + 1)...]
                }
            }
            bytes += section.encoded ? percentDecode(value) : Array(value)
        }
        return Charset.decode(bytes, from: charset.isEmpty ? "us-ascii" : charset) ?? String(decoding: bytes, as: UTF8.self)
    }

    private static func percentDecode(_ value: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        var index = value.startIndex
        while index < value.endIndex {
            if value[index] == UInt8(ascii: "%"), index + 2 < value.endIndex,
               let high = QuotedPrintableDecoder.hexValue(value[index + 1]),
               let low = QuotedPrintableDecoder.hexValue(value[index + 2])
            {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(value[index])
                index += 1
            }
        }
        return output
    }
}

/// A scanner over the bytes of a parameterized header value.
private struct ParameterScanner {
    let bytes: [UInt8]
    var index = 0

    mutating func skipWhiteSpaceAndComments() {
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 32 || byte == 9 || byte == 13 || byte == 10 {
                index += 1
            } else if byte == UInt8(ascii: "(") {
                var depth = 0
                while index < bytes.count {
                    let current = bytes[index]
                    if current == UInt8(ascii: "\\") { index += 2; continue }
                    if current == UInt8(ascii: "(") { depth += 1 }
                    if current == UInt8(ascii: ")") { depth -= 1 }
                    index += 1
                    if depth == 0 { break }
                }
            } else {
                return
            }
        }
    }

    mutating func scanUntilSemicolon() -> [UInt8] {
        var result: [UInt8] = []
        while index < bytes.count && bytes[index] != UInt8(ascii: ";") {
            if bytes[index] == UInt8(ascii: "(") {
                skipWhiteSpaceAndComments()
                continue
            }
            result.append(bytes[index])
            index += 1
        }
        return result
    }

    mutating func skipSemicolon() -> Bool {
        skipWhiteSpaceAndComments()
        guard index < bytes.count else { return false }
        if bytes[index] == UInt8(ascii: ";") { index += 1 }
        return true
    }

    /// Scans `name = value`, returning nil and skipping to the next ";" when it is malformed.
    mutating func scanParameter() -> (String, [UInt8], Bool)? {
        skipWhiteSpaceAndComments()
        var name: [UInt8] = []
        while index < bytes.count, bytes[index] != UInt8(ascii: "="), bytes[index] != UInt8(ascii: ";"),
              !MailCharacters.isWhiteSpace(bytes[index])
        {
            name.append(bytes[index])
            index += 1
        }
        skipWhiteSpaceAndComments()
        guard !name.isEmpty, index < bytes.count, bytes[index] == UInt8(ascii: "=") else {
            _ = scanUntilSemicolon()
            return nil
        }
        index += 1
        skipWhiteSpaceAndComments()

        var value: [UInt8] = []
        var quoted = false
        if index < bytes.count && bytes[index] == UInt8(ascii: "\"") {
            quoted = true
            index += 1
            while index < bytes.count && bytes[index] != UInt8(ascii: "\"") {
                if bytes[index] == UInt8(ascii: "\\") && index + 1 < bytes.count { index += 1 }
                if bytes[index] != 13 && bytes[index] != 10 { value.append(bytes[index]) }
                index += 1
            }
            index += 1
        } else {
            while index < bytes.count, bytes[index] != UInt8(ascii: ";"), !MailCharacters.isWhiteSpace(bytes[index]),
                  bytes[index] != 13, bytes[index] != 10
            {
                value.append(bytes[index])
                index += 1
            }
        }
        _ = scanUntilSemicolon()
        return (String(decoding: name, as: UTF8.self), value, quoted)
    }
}
