// libFuzzer target for DataEncoder. Built by Fuzz/run.sh together with Sources/SMTPCore.
//
// The input is the message. It is encoded whole, one byte at a time, and in chunks whose sizes come
// from a generator seeded with a hash of the input. Checked properties:
// - All three runs give the same output, or all three fail on the same line.
// - The error is the documented one: `nulCharacter` for the first line with a NUL, `lineTooLong` for
//   the first line over 998 octets, either one for a line with both.
// - The output has no bare CR and no bare LF, and its only CRLF "." CRLF is the final one.
// - Undoing dot-stuffing and removing the final "." line gives the input with every line ending
//   (CRLF, bare CR, bare LF) turned into CRLF, and a CRLF added when the input does not end with one.
// - The statistics match that normalized input.

/// Stops with `message` when `condition` is false. Unlike `precondition`, the message is also printed in
/// optimized builds, so the fuzzer log names the property that failed.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fatalError(message())
    }
}

let cr = UInt8(ascii: "\r")
let lf = UInt8(ascii: "\n")
let dot = UInt8(ascii: ".")
let maxLineLength = 998

/// A small deterministic generator (SplitMix64), so a crashing input reproduces with the same chunks.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// FNV-1a, to seed the chunk sizes from the input.
func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes {
        hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
    }
    return hash
}

func encode(_ chunks: [ArraySlice<UInt8>]) -> Result<(output: [UInt8], statistics: DataEncoder.Statistics), DataEncodingError> {
    var encoder = DataEncoder()
    var output: [UInt8] = []
    do {
        for chunk in chunks {
            try encoder.encode(chunk, into: &output)
        }
    } catch {
        return .failure(error)
    }
    encoder.finish(into: &output)
    return .success((output, encoder.statistics))
}

/// Splits the input into lines at CRLF, bare CR and bare LF. A last line without a line ending counts,
/// an empty one after the last line ending does not.
func splitLines(_ bytes: [UInt8]) -> [[UInt8]] {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    var index = 0
    while index < bytes.count {
        let byte = bytes[index]
        if byte == cr || byte == lf {
            lines.append(current)
            current = []
            index += (byte == cr && index + 1 < bytes.count && bytes[index + 1] == lf) ? 2 : 1
        } else {
            current.append(byte)
            index += 1
        }
    }
    if !current.isEmpty {
        lines.append(current)
    }
    return lines
}

func lineNumber(of error: DataEncodingError) -> Int {
    switch error {
    case .lineTooLong(let lineNumber, let limit):
        require(limit == maxLineLength, "lineTooLong reports limit \(limit)")
        return lineNumber
    case .nulCharacter(let lineNumber):
        return lineNumber
    }
}

/// Checks that `error` names the first line of `lines` with a NUL or more than 998 octets.
func checkError(_ error: DataEncodingError, lines: [[UInt8]]) {
    guard let index = lines.firstIndex(where: { $0.contains(0) || $0.count > maxLineLength }) else {
        fatalError("error \(error) for input without a NUL or a long line")
    }
    let line = lines[index]
    require(lineNumber(of: error) == index + 1, "error \(error), but line \(index + 1) is the first invalid line")
    switch error {
    case .lineTooLong:
        require(line.count > maxLineLength, "lineTooLong for a line of \(line.count) octets")
    case .nulCharacter:
        require(line.contains(0), "nulCharacter for a line without NUL")
    }
}

func checkOutput(_ output: [UInt8], statistics: DataEncoder.Statistics, lines: [[UInt8]]) {
    for (index, byte) in output.enumerated() {
        if byte == cr {
            require(index + 1 < output.count && output[index + 1] == lf, "bare CR at output offset \(index)")
        }
        if byte == lf {
            require(index > 0 && output[index - 1] == cr, "bare LF at output offset \(index)")
        }
    }
    require(output.count >= 3 && output.suffix(3).elementsEqual([dot, cr, lf]), "output does not end with . CRLF")

    // Lines of the output, each without its CRLF. The output ends with CRLF, so the split leaves an empty
    // last element, which is dropped.
    var outputLines = output.split(separator: lf, omittingEmptySubsequences: false).map { $0.dropLast() }
    outputLines.removeLast()
    require(outputLines.last?.elementsEqual([dot]) == true, "last output line is not \".\"")
    outputLines.removeLast()

    // A line of only "." ends the data, so no earlier line may be one. A line that starts with "." must
    // start with "..", because every such line was stuffed.
    var unstuffed: [[UInt8]] = []
    for (index, line) in outputLines.enumerated() {
        if line.first == dot {
            require(line.count >= 2 && line[line.startIndex + 1] == dot, "unstuffed dot on output line \(index + 1)")
            unstuffed.append(Array(line.dropFirst()))
        } else {
            unstuffed.append(Array(line))
        }
    }
    require(unstuffed == lines, "output lines differ from the input lines after normalization")

    let size = lines.reduce(0) { $0 + $1.count + 2 }
    require(statistics.size == size, "statistics.size \(statistics.size), expected \(size)")
    require(statistics.lineCount == lines.count, "statistics.lineCount \(statistics.lineCount), expected \(lines.count)")
    let longest = lines.map(\.count).max() ?? 0
    require(statistics.longestLine == longest, "statistics.longestLine \(statistics.longestLine), expected \(longest)")
    let has8Bit = lines.contains { $0.contains { $0 >= 0x80 } }
    require(statistics.contains8BitData == has8Bit, "statistics.contains8BitData is \(statistics.contains8BitData)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDataEncoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    var generator = SplitMix64(state: fnv1a(bytes))
    var randomChunks: [ArraySlice<UInt8>] = []
    var start = 0
    while start < bytes.count {
        let length = Int(generator.next() % 64) + 1
        let end = min(start + length, bytes.count)
        randomChunks.append(bytes[start..<end])
        start = end
    }
    let byteChunks = bytes.indices.map { bytes[$0...$0] }

    let results = [encode([bytes[...]]), encode(byteChunks), encode(randomChunks)]
    let lines = splitLines(bytes)

    switch results[0] {
    case .success(let first):
        for result in results.dropFirst() {
            guard case .success(let other) = result else {
                fatalError("whole input encoded, but a chunked run failed: \(result)")
            }
            require(other.output == first.output, "output depends on the chunk sizes")
            require(other.statistics == first.statistics, "statistics depend on the chunk sizes")
        }
        require(!lines.contains { $0.contains(0) || $0.count > maxLineLength }, "invalid input encoded")
        checkOutput(first.output, statistics: first.statistics, lines: lines)
    case .failure(let firstError):
        for result in results.dropFirst() {
            guard case .failure(let error) = result else {
                fatalError("whole input failed with \(firstError), but a chunked run succeeded")
            }
            // NOTE: a line with both a NUL and more than 998 octets fails as `nulCharacter` or as
            // `lineTooLong` depending on the chunk sizes, so only the line number is compared.
            require(lineNumber(of: error) == lineNumber(of: firstError), "error \(error) versus \(firstError)")
            checkError(error, lines: lines)
        }
        checkError(firstError, lines: lines)
    }
    return 0
}
