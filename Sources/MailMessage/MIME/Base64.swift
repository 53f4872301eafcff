/// Base64 content transfer encoding (RFC 2045 section 6.8), written in lines of 76 characters that end in
/// CR LF, for input that arrives in chunks of any size.
///
/// Feed the content with `encode(_:into:)` as often as needed, then call `finish(into:)` once. The output
/// ends with CR LF unless the content is empty.
public struct Base64Encoder: Sendable {
    /// Maximum characters per line without the line end, the maximum that RFC 2045 allows.
    public static let lineLength = 76

    /// Input bytes per full output line: 76 characters carry 57 bytes.
    public static let bytesPerLine = lineLength / 4 * 3

    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private var pending: [UInt8] = []
    private var column = 0

    /// Creates an encoder at the start of the content.
    public init() {}

    /// Encodes the bytes of `input` and appends complete groups to `output`. Up to two bytes stay pending
    /// until more input or `finish(into:)` arrives.
    public mutating func encode(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        var input = input[...]
        if !pending.isEmpty {
            while pending.count < 3, let byte = input.first {
                pending.append(byte)
                input = input.dropFirst()
            }
            guard pending.count == 3 else { return }
            let group = pending
            pending.removeAll(keepingCapacity: true)
            group.withUnsafeBytes { encodeGroups(UnsafeRawBufferPointer($0), into: &output) }
        }
        let whole = input.count / 3 * 3
        let rest = UnsafeRawBufferPointer(rebasing: input)
        encodeGroups(UnsafeRawBufferPointer(rebasing: rest[0..<whole]), into: &output)
        pending.append(contentsOf: rest[whole...])
    }

    /// Encodes `input` as `encode(_:into:)` with a buffer pointer does.
    public mutating func encode(_ input: some Collection<UInt8>, into output: inout [UInt8]) {
        if let done: Void = input.withContiguousStorageIfAvailable({ encode(UnsafeRawBufferPointer($0), into: &output) }) {
            return done
        }
        Array(input).withUnsafeBytes { encode($0, into: &output) }
    }

    /// Writes the pending bytes with padding and ends the last line with CR LF.
    public mutating func finish(into output: inout [UInt8]) {
        let alphabet = Self.alphabet
        if !pending.isEmpty {
            let first = pending[0]
            let second = pending.count > 1 ? pending[1] : 0
            output.append(alphabet[Int(first >> 2)])
            output.append(alphabet[Int((first & 0x03) << 4 | second >> 4)])
            output.append(pending.count > 1 ? alphabet[Int((second & 0x0F) << 2)] : UInt8(ascii: "="))
            output.append(UInt8(ascii: "="))
            column += 4
            pending.removeAll()
        }
        if column > 0 {
            output.append(contentsOf: [13, 10])
            column = 0
        }
    }

    /// Returns `content` encoded, in lines of 76 characters.
    public static func encode(_ content: some Collection<UInt8>) -> [UInt8] {
        var encoder = Base64Encoder()
        var output: [UInt8] = []
        output.reserveCapacity(content.count / 57 * 78 + 80)
        encoder.encode(content, into: &output)
        encoder.finish(into: &output)
        return output
    }

    /// Encodes a whole number of 3-byte groups. Because 76 is a multiple of 4, lines end between groups.
    private mutating func encodeGroups(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        let groups = input.count / 3
        guard groups > 0 else { return }
        let maximumLineEnds = (column + groups * 4) / Self.lineLength
        let maximumCount = groups * 4 + maximumLineEnds * 2
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: maximumCount))
        var column = self.column
        Self.alphabet.withUnsafeBufferPointer { alphabet in
            output.withUnsafeMutableBufferPointer { buffer in
                var out = start
                var index = 0
                let end = groups * 3
                while index < end {
                    let b0 = input[index], b1 = input[index + 1], b2 = input[index + 2]
                    buffer[out] = alphabet[Int(b0 >> 2)]
                    buffer[out + 1] = alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)]
                    buffer[out + 2] = alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)]
                    buffer[out + 3] = alphabet[Int(b2 & 0x3F)]
                    out += 4
                    index += 3
                    column += 4
                    if column == Base64Encoder.lineLength {
                        buffer[out] = 13
                        buffer[out + 1] = 10
                        out += 2
                        column = 0
                    }
                }
                precondition(out == start + maximumCount, "base64 output size was computed wrongly")
            }
        }
        self.column = column
    }
}

/// Decoding of base64 bodies, which skips line ends and any other character outside the base64 alphabet,
/// as RFC 2045 section 6.8 requires of decoders, and stops at the first "=".
public enum Base64Decoder {
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in Base64Encoder.alphabet.enumerated() {
            table[Int(character)] = UInt8(index)
        }
        return table
    }()

    /// Returns the decoded bytes of `encoded`. A final group of one character, which carries no whole
    /// byte, is dropped.
    public static func decode(_ encoded: some Collection<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(encoded.count / 4 * 3)
        var accumulator: UInt32 = 0
        var bits = 0
        for character in encoded {
            if character == UInt8(ascii: "=") { break }
            let value = values[Int(character)]
            if value == 0xFF { continue }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return output
    }
}
