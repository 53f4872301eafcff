/// uuencode, the encoding that mail used before MIME, for the legacy mode that puts attachments in the
/// text body. Output is a `begin MODE NAME` line, lines of at most 45 bytes each (61 characters), a line
/// with only a backquote and an `end` line, all ending in CR LF. Zero values are written as a backquote,
/// not a space, so that no line has white space at its end.
public struct UUEncoder: Sendable {
    /// Input bytes per full line.
    public static let bytesPerLine = 45

    private var pending: [UInt8] = []

    /// Creates an encoder and appends the `begin` line for `fileName` with the permission bits `mode`,
    /// written in octal. Line ends in `fileName` would break the format, so CR, LF and NUL become "_".
    public init(fileName: String, mode: Int = 0o644, into output: inout [UInt8]) {
        let safeName = fileName.utf8.map { [0, 10, 13].contains($0) ? UInt8(ascii: "_") : $0 }
        output.append(contentsOf: "begin \(String(mode, radix: 8)) ".utf8)
        output.append(contentsOf: safeName)
        output.append(contentsOf: [13, 10])
    }

    /// Encodes `input` and appends complete lines to `output`.
    public mutating func encode(_ input: some Sequence<UInt8>, into output: inout [UInt8]) {
        for byte in input {
            pending.append(byte)
            if pending.count == Self.bytesPerLine {
                Self.encodeLine(pending, into: &output)
                pending.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Writes the last data line, the empty line and the `end` line.
    public mutating func finish(into output: inout [UInt8]) {
        if !pending.isEmpty {
            Self.encodeLine(pending, into: &output)
            pending.removeAll()
        }
        output.append(contentsOf: Array("`\r\nend\r\n".utf8))
    }

    /// Returns `content` uuencoded as the file `fileName`.
    public static func encode(_ content: some Sequence<UInt8>, fileName: String, mode: Int = 0o644) -> [UInt8] {
        var output: [UInt8] = []
        var encoder = UUEncoder(fileName: fileName, mode: mode, into: &output)
        encoder.encode(content, into: &output)
        encoder.finish(into: &output)
        return output
    }

    private static func character(_ value: UInt8) -> UInt8 {
        value == 0 ? UInt8(ascii: "`") : value + 32
    }

    private static func encodeLine(_ bytes: [UInt8], into output: inout [UInt8]) {
        output.append(character(UInt8(bytes.count)))
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index]
            let b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            output.append(character(b0 >> 2))
            output.append(character((b0 & 0x03) << 4 | b1 >> 4))
            output.append(character((b1 & 0x0F) << 2 | b2 >> 6))
            output.append(character(b2 & 0x3F))
            index += 3
        }
        output.append(contentsOf: [13, 10])
    }
}
