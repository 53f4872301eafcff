/// The DATA transparency transform as a stream (RFC 5321 sections 4.5.2 and 2.3.8).
///
/// Feed the message in chunks of any size and write what comes out. The encoder
/// - turns CRLF, a bare CR and a bare LF each into one CRLF, so the server receives no lone CR or LF
///   that it might read as the end of data (the "SMTP smuggling" attacks rely on such bytes);
/// - doubles a "." at the start of every line, after that normalization;
/// - fails on a line longer than `maxLineLength` octets, or on a NUL octet, naming the line;
/// - ends the data with CRLF "." CRLF, adding the CRLF first when the message does not end with one.
///
/// It also counts what a client must know before MAIL: the message size for SIZE and whether the
/// message holds 8-bit bytes for BODY=8BITMIME.
public struct DataEncoder: Sendable {
    /// Figures about the message, after line endings are normalized and before dot-stuffing.
    public struct Statistics: Sendable, Hashable {
        /// The size in octets with CRLF line endings, without the stuffed dots and the final "." line,
        /// which is how RFC 1870 defines the size declared with SIZE=.
        public var size = 0
        /// The number of lines, a last line without a line ending included.
        public var lineCount = 0
        /// Whether any octet is 0x80 or above, which needs BODY=8BITMIME.
        public var contains8BitData = false
        /// The length of the longest line in octets, without its line ending.
        public var longestLine = 0
    }

    /// The maximum line length, in octets without CRLF: 998 by RFC 5322 section 2.1.1.
    public let maxLineLength: Int

    public private(set) var statistics = Statistics()

    private var lineLength = 0
    private var pendingCR = false
    private var finished = false

    public init(maxLineLength: Int = 998) {
        self.maxLineLength = maxLineLength
    }

    /// Encodes a chunk of the message and appends the result to `output`.
    ///
    /// - Throws: `DataEncodingError.lineTooLong` as soon as a line exceeds `maxLineLength`. The data
    ///   written so far must then not be ended with "." but the connection closed, so that the server
    ///   discards the partial message.
    public mutating func encode(
        _ chunk: some Collection<UInt8>, into output: inout [UInt8]
    ) throws(DataEncodingError) {
        precondition(!finished, "DataEncoder used after finish")
        output.reserveCapacity(output.count + chunk.count + chunk.count / 64 + 4)
        let failure = chunk.withContiguousStorageIfAvailable { buffer in
            encode(buffer: buffer, into: &output)
        }
        if let failure {
            if let failure { throw failure }
            return
        }
        if let failure = Array(chunk).withUnsafeBufferPointer({ encode(buffer: $0, into: &output) }) {
            throw failure
        }
    }

    /// Encodes contiguous bytes, copying runs of ordinary bytes in bulk. Returns the error, if any,
    /// because the closures that call it cannot throw a typed error.
    private mutating func encode(buffer: UnsafeBufferPointer<UInt8>, into output: inout [UInt8]) -> DataEncodingError? {
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        var index = 0
        while index < buffer.count {
            let byte = buffer[index]
            if pendingCR {
                pendingCR = false
                endLine(into: &output)
                if byte == lf {
                    index += 1
                    continue
                }
            }
            if byte == cr {
                pendingCR = true
                index += 1
                continue
            }
            if byte == lf {
                endLine(into: &output)
                index += 1
                continue
            }
            if lineLength == 0, byte == UInt8(ascii: ".") {
                output.append(UInt8(ascii: "."))
            }
            var end = index
            while end < buffer.count {
                let next = buffer[end]
                if next == cr || next == lf { break }
                if next >= 0x80 {
                    statistics.contains8BitData = true
                } else if next == 0 {
                    return .nulCharacter(lineNumber: statistics.lineCount + 1)
                }
                end += 1
            }
            let runLength = end - index
            if lineLength + runLength > maxLineLength {
                return .lineTooLong(lineNumber: statistics.lineCount + 1, limit: maxLineLength)
            }
            lineLength += runLength
            statistics.size += runLength
            output.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<end]))
            index = end
        }
        return nil
    }

    /// Ends the data: a CRLF if the last line lacks one, then "." CRLF.
    public mutating func finish(into output: inout [UInt8]) {
        precondition(!finished, "DataEncoder finished twice")
        if pendingCR || lineLength > 0 {
            pendingCR = false
            endLine(into: &output)
        }
        output.append(contentsOf: [UInt8(ascii: "."), UInt8(ascii: "\r"), UInt8(ascii: "\n")])
        finished = true
    }

    private mutating func endLine(into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\r"))
        output.append(UInt8(ascii: "\n"))
        statistics.size += 2
        statistics.lineCount += 1
        statistics.longestLine = max(statistics.longestLine, lineLength)
        lineLength = 0
    }

    /// Runs the message through the encoder without keeping the output, to learn its statistics before
    /// the transaction starts.
    public static func scan<Chunks: Sequence>(
        _ chunks: Chunks, maxLineLength: Int = 998
    ) throws(DataEncodingError) -> Statistics where Chunks.Element: Collection<UInt8> {
        var encoder = DataEncoder(maxLineLength: maxLineLength)
        var scratch: [UInt8] = []
        for chunk in chunks {
            scratch.removeAll(keepingCapacity: true)
            try encoder.encode(chunk, into: &scratch)
        }
        scratch.removeAll(keepingCapacity: true)
        encoder.finish(into: &scratch)
        return encoder.statistics
    }
}

/// Message content that cannot be sent as SMTP DATA.
public enum DataEncodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A line is longer than the limit. Lines are numbered from 1, header lines included.
    case lineTooLong(lineNumber: Int, limit: Int)
    /// A line contains a NUL octet, which RFC 5321 (section 4.5.2) and RFC 6152 do not allow in
    /// message data: a receiver that drops it could read what follows as the end of the data.
    case nulCharacter(lineNumber: Int)

    public var description: String {
        switch self {
        case .lineTooLong(let lineNumber, let limit):
            "Line \(lineNumber) of the message is longer than \(limit) octets, the most SMTP allows "
                + "(RFC 5322 section 2.1.1). Encode the content, for example as quoted-printable or base64."
        case .nulCharacter(let lineNumber):
            "Line \(lineNumber) of the message contains a NUL character, which SMTP does not allow in "
                + "message data. Encode binary content, for example as base64."
        }
    }
}
