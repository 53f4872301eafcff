import Testing
@testable import SMTPCore

/// Encodes `input` in chunks of `chunkSize` bytes and returns the whole output.
private func encode(_ input: [UInt8], chunkSize: Int? = nil) throws -> [UInt8] {
    var encoder = DataEncoder()
    var output: [UInt8] = []
    let size = chunkSize ?? max(input.count, 1)
    for start in stride(from: 0, to: input.count, by: size) {
        try encoder.encode(input[start..<min(start + size, input.count)], into: &output)
    }
    encoder.finish(into: &output)
    return output
}

private func encode(_ input: String, chunkSize: Int? = nil) throws -> String {
    String(decoding: try encode(Array(input.utf8), chunkSize: chunkSize), as: UTF8.self)
}

/// Undoes dot-stuffing and removes the end-of-data line, as a server does.
private func decode(_ data: [UInt8]) -> [UInt8] {
    var lines = split(data)
    #expect(lines.last == [UInt8(ascii: ".")])
    lines.removeLast()
    var result: [UInt8] = []
    for line in lines {
        result += line.first == UInt8(ascii: ".") ? Array(line.dropFirst()) : line
        result += [13, 10]
    }
    return result
}

/// Splits CRLF-terminated data into lines, asserting that every CR is followed by LF and no LF is alone.
private func split(_ data: [UInt8]) -> [[UInt8]] {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    var index = 0
    while index < data.count {
        if data[index] == 13 {
            #expect(index + 1 < data.count, "CR at the end of the data, at \(index)")
            #expect(index + 1 >= data.count || data[index + 1] == 10, "bare CR at \(index)")
            lines.append(current)
            current = []
            index += 2
            continue
        }
        #expect(data[index] != 10, "bare LF at \(index)")
        current.append(data[index])
        index += 1
    }
    #expect(current.isEmpty, "data does not end with CRLF")
    return lines
}

/// Normalizes line endings as the encoder promises: CRLF, bare CR and bare LF each become CRLF, and a
/// last line without an ending gets one.
private func normalize(_ input: [UInt8]) -> [UInt8] {
    var result: [UInt8] = []
    var index = 0
    while index < input.count {
        let byte = input[index]
        if byte == 13 {
            result += [13, 10]
            if index + 1 < input.count, input[index + 1] == 10 {
                index += 1
            }
        } else if byte == 10 {
            result += [13, 10]
        } else {
            result.append(byte)
        }
        index += 1
    }
    if let last = result.last, last != 10 {
        result += [13, 10]
    }
    return result
}

struct DataEncoderTests {
    @Test("line endings normalized", arguments: [
        ("a\r\nb\r\n", "a\r\nb\r\n.\r\n"),
        ("a\nb\n", "a\r\nb\r\n.\r\n"),
        ("a\rb\r", "a\r\nb\r\n.\r\n"),
        ("a\r\r\nb", "a\r\n\r\nb\r\n.\r\n"),
        ("a\n\rb", "a\r\n\r\nb\r\n.\r\n"),
        ("no ending", "no ending\r\n.\r\n"),
        ("", ".\r\n"),
    ])
    func lineEndingsNormalized(input: String, expected: String) throws {
        #expect(try encode(input) == expected)
        #expect(try encode(input, chunkSize: 1) == expected)
    }

    @Test("leading dots stuffed", arguments: [
        (".\r\n", "..\r\n.\r\n"),
        (".hidden\r\n..two\r\n", "..hidden\r\n...two\r\n.\r\n"),
        ("a\n.\nb", "a\r\n..\r\nb\r\n.\r\n"),
        ("mid.dle\r\n", "mid.dle\r\n.\r\n"),
    ])
    func leadingDotsStuffed(input: String, expected: String) throws {
        #expect(try encode(input) == expected)
        #expect(try encode(input, chunkSize: 1) == expected)
    }

    /// End-of-data look-alikes used in SMTP smuggling: each must arrive as text, never end the data.
    static let smugglingVariants = [
        "\n.\n", "\n.\r\n", "\r.\r", "\r.\n", "\r\n.\r", "\r\n.\n", "\n.\r", "\r.\r\n", "\r\n.\r\r\n",
    ]

    @Test("smuggling sequences neutralized", arguments: smugglingVariants)
    func smugglingNeutralized(sequence: String) throws {
        let input = Array("Subject: x\r\n\r\nbefore\(sequence)MAIL FROM:<evil@example.test>\r\n".utf8)
        let output = try encode(input)
        let terminator: [UInt8] = [13, 10, 46, 13, 10]
        let positions = (0...(output.count - terminator.count)).filter { Array(output[$0..<$0 + terminator.count]) == terminator }
        #expect(positions == [output.count - terminator.count])
        #expect(decode(output) == normalize(input))
    }

    @Test func chunkSplitsGiveSameOutput() throws {
        let input = Array("From: a\r\n.x\r\n\r\n.\n\r.\rend".utf8)
        let whole = try encode(input)
        for size in 1...7 {
            #expect(try encode(input, chunkSize: size) == whole, "chunk size \(size)")
        }
    }

    @Test func randomInputRoundTrips() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [13, 10, 46, 65, 32, 0xC3, 0xA9, 9]
        for _ in 0..<300 {
            let length = Int.random(in: 0..<200, using: &generator)
            let input = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            let output = try encode(input, chunkSize: Int.random(in: 1...16, using: &generator))
            #expect(output == (try encode(input)))
            #expect(decode(output) == normalize(input))
        }
    }

    @Test func statisticsCountNormalizedSize() throws {
        let statistics = try DataEncoder.scan([Array("ab\n.c\r\n".utf8)])
        #expect(statistics.size == 8)
        #expect(statistics.lineCount == 2)
        #expect(!statistics.contains8BitData)
        #expect(statistics.longestLine == 2)
    }

    @Test func statisticsSee8Bit() throws {
        let statistics = try DataEncoder.scan([Array("caf".utf8) + [0xC3, 0xA9, 10]])
        #expect(statistics.contains8BitData)
    }

    @Test("NUL rejected with its line", arguments: [1, 3, 100])
    func nulRejected(chunkSize: Int) {
        let input = Array("Subject: x\r\n\r\n".utf8) + [0, UInt8(ascii: "."), 13, 10]
        #expect(throws: DataEncodingError.nulCharacter(lineNumber: 3)) {
            _ = try encode(input, chunkSize: chunkSize)
        }
    }

    @Test func lineOf998Accepted() throws {
        let line = String(repeating: "x", count: 998)
        #expect(try encode(line + "\r\n") == line + "\r\n.\r\n")
    }

    @Test func lineOf999RejectedWithNumber() {
        let input = "one\r\ntwo\n" + String(repeating: "x", count: 999) + "\r\n"
        #expect(throws: DataEncodingError.lineTooLong(lineNumber: 3, limit: 998)) {
            _ = try encode(input, chunkSize: 5)
        }
    }

    @Test func stuffedDotNotCountedInLength() throws {
        let line = "." + String(repeating: "x", count: 997)
        #expect(try encode(line) == "." + line + "\r\n.\r\n")
    }
}
