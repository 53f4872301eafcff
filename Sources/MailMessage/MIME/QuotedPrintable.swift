/// Quoted-printable content transfer encoding (RFC 2045 section 6.7) for input that arrives in chunks.
///
/// Every output line has at most 76 characters including a soft line break "=", and a soft line break
/// never splits an `=XX` triplet. White space before a line end is encoded. A "." at the start of a line
/// is written as `=2E`, so no line can be a lone ".", and a line that would start with `From ` starts
/// with `=46rom ` instead, so that mbox readers do not mangle it. Output lines end in CR LF.
public struct QuotedPrintableEncoder: Sendable {
    /// The treatment of line ends in the input.
    public enum Mode: Sendable {
        /// Text: CR LF and a bare LF are line ends and become CR LF. A bare CR is encoded as `=0D`.
        case text
        /// Binary data: every CR and LF is encoded, so the decoded bytes are exactly the input.
        case binary
    }

    /// Maximum characters per output line, including a soft line break.
    public static let lineLength = 76

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    private let mode: Mode
    /// The current output line, at most 75 characters, so that a soft line break always fits.
    private var line: [UInt8] = []
    private var pendingCarriageReturn = false

    /// Creates an encoder at the start of the content.
    public init(mode: Mode = .text) {
        self.mode = mode
        line.reserveCapacity(Self.lineLength + 4)
    }

    /// Encodes `input` and appends complete output lines to `output`. The current line stays pending
    /// until a line end, more input or `finish(into:)` arrives.
    public mutating func encode(_ input: some Sequence<UInt8>, into output: inout [UInt8]) {
        for byte in input {
            if mode == .text {
                if pendingCarriageReturn {
                    pendingCarriageReturn = false
                    if byte == 10 {
                        endLine(into: &output)
                        continue
                    }
                    appendEncoded(13, into: &output)
                }
                if byte == 13 {
                    pendingCarriageReturn = true
                    continue
                }
                if byte == 10 {
                    endLine(into: &output)
                    continue
                }
            }
            append(byte, into: &output)
        }
    }

    /// Writes the pending line. Content that does not end with a line end gets a soft line break, so the
    /// output ends with CR LF unless it is empty, and decodes to exactly the content.
    public mutating func finish(into output: inout [UInt8]) {
        if pendingCarriageReturn {
            pendingCarriageReturn = false
            appendEncoded(13, into: &output)
        }
        if !line.isEmpty {
            softBreak(into: &output)
        }
    }

    /// Returns `content` encoded.
    public static func encode(_ content: some Sequence<UInt8>, mode: Mode = .text) -> [UInt8] {
        var encoder = QuotedPrintableEncoder(mode: mode)
        var output: [UInt8] = []
        encoder.encode(content, into: &output)
        encoder.finish(into: &output)
        return output
    }

    private mutating func append(_ byte: UInt8, into output: inout [UInt8]) {
        let isLiteral = (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "="))
            || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
        let startsLine = line.isEmpty || line.count + 1 > Self.lineLength - 1
        if !isLiteral || (byte == UInt8(ascii: ".") && startsLine) {
            appendEncoded(byte, into: &output)
            return
        }
        if line.count + 1 > Self.lineLength - 1 {
            softBreak(into: &output)
        }
        line.append(byte)
        if byte == UInt8(ascii: " ") && line.count == 5 && line.elementsEqual("From ".utf8) {
            line.replaceSubrange(0..<1, with: Self.triplet(UInt8(ascii: "F")))
        }
    }

    private mutating func appendEncoded(_ byte: UInt8, into output: inout [UInt8]) {
        if line.count + 3 > Self.lineLength - 1 {
            softBreak(into: &output)
        }
        line.append(contentsOf: Self.triplet(byte))
    }

    private mutating func softBreak(into output: inout [UInt8]) {
        output.append(contentsOf: line)
        output.append(contentsOf: [UInt8(ascii: "="), 13, 10])
        line.removeAll(keepingCapacity: true)
    }

    /// Ends the line with a hard line break, encoding white space at its end first.
    private mutating func endLine(into output: inout [UInt8]) {
        if let last = line.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
            line.removeLast()
            // The triplet makes the line 2 characters longer, which may need a soft break first.
            if line.count + 3 > Self.lineLength {
                softBreak(into: &output)
            }
            line.append(contentsOf: Self.triplet(last))
        }
        output.append(contentsOf: line)
        output.append(contentsOf: [13, 10])
        line.removeAll(keepingCapacity: true)
    }

    private static func triplet(_ byte: UInt8) -> [UInt8] {
        [UInt8(ascii: "="), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]]
    }
}

/// Decoding of quoted-printable bodies, as RFC 2045 section 6.7 describes it for robust decoders.
public enum QuotedPrintableDecoder {
    /// Returns the decoded bytes of `encoded`.
    ///
    /// White space at the end of a line is dropped, as the encoder must have encoded any that belonged to
    /// the content. A soft line break ("=" at the end of a line) joins two lines, and a hard line end is
    /// kept as it is, CR LF or LF. An "=" followed by anything other than two hexadecimal digits is kept as it is.
    public static func decode(_ encoded: some Collection<UInt8>) -> [UInt8] {
        let bytes = Array(encoded)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count && bytes[lineEnd] != 10 { lineEnd += 1 }
            let hasLineEnd = lineEnd < bytes.count
            var contentEnd = lineEnd
            let hasCarriageReturn = hasLineEnd && contentEnd > lineStart && bytes[contentEnd - 1] == 13
            if hasCarriageReturn { contentEnd -= 1 }
            while contentEnd > lineStart && (bytes[contentEnd - 1] == 32 || bytes[contentEnd - 1] == 9) {
                contentEnd -= 1
            }
            var softBreak = false
            if contentEnd > lineStart && bytes[contentEnd - 1] == UInt8(ascii: "=") {
                softBreak = true
                contentEnd -= 1
            }
            decodeLine(bytes[lineStart..<contentEnd], into: &output)
            if hasLineEnd && !softBreak {
                output.append(contentsOf: hasCarriageReturn ? [13, 10] : [10])
            }
            lineStart = lineEnd + 1
        }
        return output
    }

    private static func decodeLine(_ line: ArraySlice<UInt8>, into output: inout [UInt8]) {
        var index = line.startIndex
        while index < line.endIndex {
            let byte = line[index]
            if byte == UInt8(ascii: "="),
               let high = hexValue(line[safe: index + 1]), let low = hexValue(line[safe: index + 2])
            {
                output.append(high << 4 | low)
                index += 3
                continue
            }
            output.append(byte)
            index += 1
        }
    }

    static func hexValue(_ byte: UInt8?) -> UInt8? {
        guard let byte else { return nil }
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}

extension ArraySlice {
    subscript(safe index: Int) -> Element? {
        indices.contains(index) ? self[index] : nil
    }
}
