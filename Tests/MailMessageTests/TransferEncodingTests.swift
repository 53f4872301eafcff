import Foundation
import MailMessage
import Testing

/// Deterministic pseudo-random bytes, so that a failure can be reproduced.
struct SeededBytes {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    mutating func next() -> UInt8 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state >> 24)
    }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in next() } }
}

private func lines(_ encoded: [UInt8]) -> [ArraySlice<UInt8>] {
    var result = encoded.split(separator: 10, omittingEmptySubsequences: false)
    if result.last?.isEmpty == true { result.removeLast() }
    return result
}

struct Base64EncoderTests {
    @Test func rfc4648Vectors() {
        let cases = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (input, expected) in cases {
            let encoded = String(decoding: Base64Encoder.encode(Array(input.utf8)), as: UTF8.self)
            #expect(encoded == (expected.isEmpty ? "" : expected + "\r\n"), "input \(input)")
        }
    }

    @Test func linesAre76CharactersWithCRLF() {
        var random = SeededBytes(seed: 1)
        let data = random.bytes(57 * 10 + 5)
        let encoded = Base64Encoder.encode(data)
        let encodedLines = lines(encoded)
        #expect(encodedLines.count == 11)
        for line in encodedLines.dropLast() {
            #expect(line.count == 77)
            #expect(line.last == 13)
        }
        #expect(Base64Decoder.decode(encoded) == data)
    }

    @Test func chunkSizesGiveSameOutput() {
        var random = SeededBytes(seed: 2)
        let data = random.bytes(5000)
        let whole = Base64Encoder.encode(data)
        for chunkSize in [1, 2, 3, 4, 56, 57, 58, 1000] {
            var encoder = Base64Encoder()
            var output: [UInt8] = []
            var index = 0
            while index < data.count {
                let end = min(index + chunkSize, data.count)
                encoder.encode(data[index..<end], into: &output)
                index = end
            }
            encoder.finish(into: &output)
            #expect(output == whole, "chunk size \(chunkSize)")
        }
    }

    @Test func coreutilsAndOpenSSLDecode() throws {
        var random = SeededBytes(seed: 3)
        for count in [0, 1, 2, 3, 56, 57, 58, 4096] {
            let data = random.bytes(count)
            let encoded = Base64Encoder.encode(data)
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("b64-\(UUID().uuidString)")
            try Data(encoded).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let decoded = try PythonOracle.runProcess(URL(fileURLWithPath: "/usr/bin/base64"), ["-d", "-i", file.path])
            #expect(decoded == data, "\(count) bytes")
            let openssl = URL(fileURLWithPath: "/usr/bin/openssl")
            if FileManager.default.isExecutableFile(atPath: openssl.path) {
                let opensslDecoded = try PythonOracle.runProcess(openssl, ["base64", "-d", "-in", file.path])
                #expect(opensslDecoded == data, "openssl, \(count) bytes")
            }
        }
    }
}

@Suite(.enabled(if: PythonOracle.isAvailable, "needs /usr/bin/python3"))
struct QuotedPrintableTests {
    /// Python's quopri decoder, which follows RFC 2045 section 6.7.
    static let decodeScript = "import sys, quopri; sys.stdout.buffer.write(quopri.decodestring(open(sys.argv[1],'rb').read()))"

    private func checkLines(_ encoded: [UInt8], _ label: String) {
        for line in lines(encoded) {
            #expect(line.last == 13, "\(label): line without CR LF")
            let content = line.dropLast()
            #expect(content.count <= 76, "\(label): line of \(content.count) characters")
            #expect(!(content.last == 32 || content.last == 9), "\(label): white space at the end of a line")
            #expect(!content.elementsEqual(".".utf8), "\(label): a lone dot line")
            #expect(!content.starts(with: "From ".utf8), "\(label): a line starting with From")
            #expect(content.allSatisfy { $0 == 9 || (32...126).contains($0) }, "\(label): a byte outside printable ASCII")
            // A soft line break never splits a triplet: every "=" is followed by two hex digits or ends the line.
            var index = content.startIndex
            while index < content.endIndex {
                if content[index] == UInt8(ascii: "=") {
                    let remaining = content.endIndex - index
                    #expect(remaining == 1 || remaining >= 3, "\(label): split =XX")
                    index += 3
                } else {
                    index += 1
                }
            }
        }
    }

    @Test func rfcExampleRoundTrips() throws {
        let text = "Now's the time for all folk to come to the aid of their country.  \n"
            + String(repeating: "x", count: 200) + "\nMünchen = Grüße\t\n.\nFrom here\n\n. \n"
        let encoded = QuotedPrintableEncoder.encode(Array(text.utf8))
        checkLines(encoded, "mixed text")
        let decoded = try PythonOracle.run(Self.decodeScript, input: encoded)
        #expect(decoded == Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8))
    }

    @Test func hostileTextCases() throws {
        let cases: [String] = [
            ".", "..", "From ", "From me", "x From y", String(repeating: "=", count: 100),
            String(repeating: " ", count: 80), String(repeating: "a", count: 74) + " ",
            String(repeating: "a", count: 75) + "\t", String(repeating: "é", count: 50),
            String(repeating: "a", count: 73) + "ü", "a\rb", "end with CR\r", "",
            String(repeating: "a", count: 75) + ".", String(repeating: "a", count: 75) + "From x",
        ]
        for text in cases {
            let input = Array((text + "\n").utf8)
            let encoded = QuotedPrintableEncoder.encode(input)
            checkLines(encoded, text)
            let decoded = try PythonOracle.run(Self.decodeScript, input: encoded)
            let expected = Array((text + "\n").utf8).lfToCRLF()
            #expect(decoded == expected, "\(text.debugDescription)")
            #expect(QuotedPrintableDecoder.decode(encoded) == expected, "own decoder: \(text.debugDescription)")
        }
    }

    @Test func binaryModeKeepsEveryByte() throws {
        var random = SeededBytes(seed: 4)
        let data = random.bytes(3000) + [13, 10, 10, 13, 32, 13, 10, 46, 13, 10]
        let encoded = QuotedPrintableEncoder.encode(data, mode: .binary)
        checkLines(encoded, "binary")
        #expect(try PythonOracle.run(Self.decodeScript, input: encoded) == data)
    }

    @Test func randomTextWithChunks() throws {
        var random = SeededBytes(seed: 5)
        let alphabet = Array(" \t.=aFrom\nxé".utf8)
        let data = (0..<4000).map { _ in alphabet[Int(random.next()) % alphabet.count] }
        var encoder = QuotedPrintableEncoder()
        var encoded: [UInt8] = []
        for chunk in stride(from: 0, to: data.count, by: 7) {
            encoder.encode(data[chunk..<min(chunk + 7, data.count)], into: &encoded)
        }
        encoder.finish(into: &encoded)
        #expect(encoded == QuotedPrintableEncoder.encode(data))
        checkLines(encoded, "random")
        let expected = data.lfToCRLF()
        #expect(try PythonOracle.run(Self.decodeScript, input: encoded) == expected)
    }
}

@Suite(.enabled(if: PythonOracle.isAvailable, "needs /usr/bin/python3"))
struct UUEncoderTests {
    @Test func pythonDecodes() throws {
        var random = SeededBytes(seed: 6)
        for count in [0, 1, 44, 45, 46, 1000] {
            let data = random.bytes(count)
            let encoded = UUEncoder.encode(data, fileName: "file name.bin")
            let script = """
                import sys, binascii
                lines = open(sys.argv[1], 'rb').read().split(b'\\r\\n')
                assert lines[0] == b'begin 644 file name.bin', lines[0]
                end = lines.index(b'end')
                sys.stdout.buffer.write(b''.join(binascii.a2b_uu(line) for line in lines[1:end]))
                """
            #expect(try PythonOracle.run(script, input: encoded) == data, "\(count) bytes")
            for line in lines(encoded) {
                #expect(line.count <= 63)
                #expect(!line.dropLast().contains(32) || line.starts(with: "begin".utf8))
            }
        }
    }
}

struct TransferEncodingChoiceTests {
    @Test func choosesByContent() {
        let ascii = Array("Hello\r\nworld\n".utf8)
        let utf8 = Array("Grüße aus München\n".utf8)
        let cjk = Array(String(repeating: "你好世界", count: 20).utf8)
        let longLine = Array(String(repeating: "a", count: 999).utf8)
        #expect(ContentTransferEncoding.choose(for: ascii, isText: true) == .sevenBit)
        #expect(ContentTransferEncoding.choose(for: utf8, isText: true) == .quotedPrintable)
        #expect(ContentTransferEncoding.choose(for: utf8, isText: true, allows8bit: true) == .eightBit)
        #expect(ContentTransferEncoding.choose(for: cjk, isText: true) == .base64)
        #expect(ContentTransferEncoding.choose(for: longLine, isText: true) == .quotedPrintable)
        #expect(ContentTransferEncoding.choose(for: longLine, isText: true, allows8bit: true) == .quotedPrintable)
        #expect(ContentTransferEncoding.choose(for: Array("a\rb".utf8), isText: true) == .quotedPrintable)
        #expect(ContentTransferEncoding.choose(for: Array("a\0b".utf8), isText: true) == .quotedPrintable)
        #expect(ContentTransferEncoding.choose(for: ascii, isText: false) == .base64)
    }
}

extension Array where Element == UInt8 {
    /// Replaces every bare LF with CR LF.
    func lfToCRLF() -> [UInt8] {
        var result: [UInt8] = []
        for (index, byte) in enumerated() {
            if byte == 10 && (index == 0 || self[index - 1] != 13) { result.append(13) }
            result.append(byte)
        }
        return result
    }
}

struct RiskyLineTests {
    @Test func loneDotAndFromLinesNeedQuotedPrintable() {
        #expect(ContentTransferEncoding.choose(for: Array("a\n.\nb\n".utf8), isText: true) == .quotedPrintable)
        #expect(ContentTransferEncoding.choose(for: Array("a\r\n.".utf8), isText: true) == .quotedPrintable)
        #expect(ContentTransferEncoding.choose(for: Array("a\nFrom me\n".utf8), isText: true) == .quotedPrintable)
        #expect(ContentTransferEncoding.choose(for: Array("a\n..\n.b\n From\nFrom\n".utf8), isText: true) == .sevenBit)
    }
}
