import Glibc

/// Conversion between Unicode text and the bytes of a named charset, through glibc's iconv for every
/// charset other than UTF-8, US-ASCII and ISO-8859-1.
public enum Charset {
    /// Returns `text` in the charset `name`, or nil when glibc does not know the charset or when a
    /// character of `text` has no representation in it.
    public static func encode(_ text: String, to name: String) -> [UInt8]? {
        switch normalized(name) {
        case "utf-8", "utf8":
            return Array(text.utf8)
        case "us-ascii", "ascii":
            return text.utf8.allSatisfy { $0 < 0x80 } ? Array(text.utf8) : nil
        default:
            return convert(Array(text.utf8), from: "UTF-8", to: name)
        }
    }

    /// Returns the text of `bytes` in the charset `name`, or nil when glibc does not know the charset or
    /// the bytes are invalid in it. Invalid UTF-8 is decoded with U+FFFD in place of each invalid sequence,
    /// because that is how mail readers show it.
    public static func decode(_ bytes: some Collection<UInt8>, from name: String) -> String? {
        switch normalized(name) {
        case "utf-8", "utf8", "us-ascii", "ascii", "":
            return String(decoding: Array(bytes), as: UTF8.self)
        case "iso-8859-1", "latin1", "iso8859-1":
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        default:
            guard let utf8 = convert(Array(bytes), from: name, to: "UTF-8") else { return nil }
            return String(decoding: utf8, as: UTF8.self)
        }
    }

    /// Returns whether glibc's iconv can convert between UTF-8 and the charset `name`.
    public static func isSupported(_ name: String) -> Bool {
        guard let descriptor = open(from: "UTF-8", to: name) else { return false }
        iconv_close(descriptor)
        return true
    }

    private static func normalized(_ name: String) -> String {
        name.trimmingASCIIWhiteSpace().lowercased()
    }

    private static func open(from source: String, to target: String) -> iconv_t? {
        // Only names of letters, digits and a few punctuation characters reach iconv, so that a name
        // cannot select one of glibc's "//TRANSLIT"-style suffixes.
        let allowed = { (name: String) in
            !name.isEmpty && name.utf8.count <= 40
                && name.utf8.allSatisfy { MailCharacters.isAtomText($0) && $0 != UInt8(ascii: "/") && $0 < 0x80 }
        }
        guard allowed(source), allowed(target) else { return nil }
        let descriptor = iconv_open(target, source)
        guard let descriptor, Int(bitPattern: descriptor) != -1 else { return nil }
        return descriptor
    }

    /// Converts all of `input`, or returns nil when a byte sequence is invalid or has no representation
    /// in the target charset.
    static func convert(_ input: [UInt8], from source: String, to target: String) -> [UInt8]? {
        guard let descriptor = open(from: source, to: target) else { return nil }
        defer { iconv_close(descriptor) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: max(64, input.count * 4))
        var source = input
        let succeeded = source.withUnsafeMutableBufferPointer { inputBuffer -> Bool in
            var inputPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(inputBuffer.baseAddress)?
                .assumingMemoryBound(to: CChar.self)
            var inputLeft = inputBuffer.count
            // A final call with no input writes the shift sequence that stateful charsets such as
            // ISO-2022-JP need at the end.
            var flushed = false
            while true {
                let (result, written) = chunk.withUnsafeMutableBufferPointer { outputBuffer -> (Int, Int) in
                    var outputPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(outputBuffer.baseAddress)?
                        .assumingMemoryBound(to: CChar.self)
                    var outputLeft = outputBuffer.count
                    let result: Int
                    if inputLeft > 0 {
                        result = iconv(descriptor, &inputPointer, &inputLeft, &outputPointer, &outputLeft)
                    } else {
                        result = iconv(descriptor, nil, nil, &outputPointer, &outputLeft)
                    }
                    return (result, outputBuffer.count - outputLeft)
                }
                output += chunk[0..<written]
                if result == -1 {
                    guard errno == E2BIG else { return false }
                    continue
                }
                if inputLeft == 0 {
                    if flushed { return true }
                    flushed = true
                }
            }
        }
        return succeeded ? output : nil
    }
}
