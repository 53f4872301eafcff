import Foundation

/// A writer of part trees as bytes in chunks of about `chunkSize`, so that content from files passes
/// through bounded memory. Files are read 57 KiB at a time (whole base64 lines), and the encoded bytes go
/// to the sink whenever the buffer is full.
struct MessageWriter {
    /// Bytes read from a file per read, a multiple of 57 so that base64 lines stay whole.
    static let readSize = 57 * 1024

    let chunkSize: Int
    let sink: ([UInt8]) throws -> Void
    private var buffer: [UInt8] = []

    init(chunkSize: Int, sink: @escaping ([UInt8]) throws -> Void) {
        self.chunkSize = max(1024, chunkSize)
        self.sink = sink
        buffer.reserveCapacity(self.chunkSize + Self.readSize * 2)
    }

    mutating func append(_ bytes: some Sequence<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= chunkSize { try flush() }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try sink(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes the content fields, an empty line and the body of `part`.
    mutating func writePart(_ part: MIMEPart, leadingFields: [OutgoingHeaderField] = []) throws {
        for field in leadingFields + (try part.contentFields()) {
            try append(field.bytes)
        }
        try append([13, 10])
        try writeBody(part)
    }

    private mutating func writeBody(_ part: MIMEPart) throws {
        switch part.body {
        case .multipart(let children):
            for child in children {
                try append(Array("--\(part.boundary)\r\n".utf8))
                try writePart(child)
                try append([13, 10])
            }
            try append(Array("--\(part.boundary)--\r\n".utf8))
        case .content(let segments):
            var encoder = ContentEncoder(encoding: part.transferEncoding, isText: part.isText)
            for segment in segments {
                try writeSegment(segment, encoder: &encoder)
            }
            var output: [UInt8] = []
            encoder.finish(into: &output)
            try append(output)
        }
    }

    private mutating func writeSegment(_ segment: MIMEPart.Segment, encoder: inout ContentEncoder) throws {
        switch segment {
        case .bytes(let bytes):
            var output: [UInt8] = []
            encoder.encode(bytes, into: &output)
            try append(output)
        case .file(let path):
            try Self.readFile(path) { chunk in
                var output: [UInt8] = []
                output.reserveCapacity(chunk.count * 4 / 3 + chunk.count / 38 + 8)
                encoder.encode(chunk, into: &output)
                try append(output)
            }
        case .uuencoded(let source, let fileName):
            var output: [UInt8] = []
            var uuencoder = UUEncoder(fileName: fileName, into: &output)
            switch source {
            case .bytes(let bytes):
                uuencoder.encode(bytes, into: &output)
            case .file(let path):
                try Self.readFile(path) { chunk in
                    uuencoder.encode(chunk, into: &output)
                    if output.count >= Self.readSize {
                        encoder.encode(output, into: &buffer)
                        output.removeAll(keepingCapacity: true)
                        if buffer.count >= chunkSize { try flush() }
                    }
                }
            case .uuencoded:
                preconditionFailure("uuencoded segments do not nest")
            }
            uuencoder.finish(into: &output)
            var encoded: [UInt8] = []
            encoder.encode(output, into: &encoded)
            try append(encoded)
        }
    }

    /// Calls `body` with successive chunks of the file at `path`.
    static func readFile(_ path: String, _ body: ([UInt8]) throws -> Void) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw MessageBuildError.fileUnreadable(path: path, reason: "it cannot be opened")
        }
        defer { try? handle.close() }
        while true {
            let data: Data?
            do {
                data = try handle.read(upToCount: readSize)
            } catch {
                throw MessageBuildError.fileUnreadable(path: path, reason: error.localizedDescription)
            }
            guard let data, !data.isEmpty else { return }
            try body(Array(data))
        }
    }
}

/// A transfer encoder for one part's content, with line ends of text normalized to CR LF first.
struct ContentEncoder {
    private enum State {
        case identity
        case base64(Base64Encoder)
        case quotedPrintable(QuotedPrintableEncoder)
    }

    private var state: State
    private let normalizesLineEnds: Bool
    private var previousWasCarriageReturn = false
    private var lastByte: UInt8?

    init(encoding: ContentTransferEncoding, isText: Bool) {
        switch encoding {
        case .base64: state = .base64(Base64Encoder())
        case .quotedPrintable: state = .quotedPrintable(QuotedPrintableEncoder(mode: isText ? .text : .binary))
        case .sevenBit, .eightBit, .binary: state = .identity
        }
        // Quoted-printable text handles line ends itself, and binary content keeps its bytes.
        normalizesLineEnds = isText && encoding != .quotedPrintable && encoding != .binary
    }

    mutating func encode(_ input: [UInt8], into output: inout [UInt8]) {
        guard let last = input.last else { return }
        let bytes = normalizesLineEnds ? normalize(input) : input
        lastByte = last
        switch state {
        case .identity:
            output += bytes
        case .base64(var encoder):
            encoder.encode(bytes, into: &output)
            state = .base64(encoder)
        case .quotedPrintable(var encoder):
            encoder.encode(bytes, into: &output)
            state = .quotedPrintable(encoder)
        }
    }

    /// Ends the content. Text that ends in a bare CR gets its LF. Content in 7bit or 8bit that does not
    /// end with a line end gets CR LF, because the boundary or the end of the message needs one.
    mutating func finish(into output: inout [UInt8]) {
        if normalizesLineEnds && previousWasCarriageReturn {
            previousWasCarriageReturn = false
            encode([10], into: &output)
        }
        switch state {
        case .identity:
            if let lastByte, lastByte != 10 {
                output += [13, 10]
            }
        case .base64(var encoder):
            encoder.finish(into: &output)
            state = .base64(encoder)
        case .quotedPrintable(var encoder):
            encoder.finish(into: &output)
            state = .quotedPrintable(encoder)
        }
    }

    /// Turns a bare LF into CR LF and a bare CR into CR LF, across chunk boundaries.
    private mutating func normalize(_ input: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(input.count + input.count / 32)
        for byte in input {
            if previousWasCarriageReturn && byte != 10 {
                result.append(10)
            }
            if byte == 10 && !previousWasCarriageReturn {
                result.append(13)
            }
            result.append(byte)
            previousWasCarriageReturn = byte == 13
        }
        return result
    }
}
