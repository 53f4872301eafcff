// libFuzzer target for Capabilities(ehloReply:). Built by Fuzz/run.sh together with Sources/SMTPCore.
//
// The input is read two ways: as bytes from the server through ReplyParser (each reply is an EHLO
// reply), and as raw reply lines split at LF, which also reaches text that ReplyParser would clean.
// Checked properties:
// - Parsing does not crash or trip AddressSanitizer (libFuzzer reports either as a finding).
// - For the first word of every line after the first (AUTH for `AUTH=...`), `supports` returns true
//   for the word as sent, upper-cased, lower-cased and with the case of each ASCII letter swapped.
// - The server domain is the first word of the first line; the SIZE limit is nil or positive; the
//   AUTH mechanisms are upper-cased and without duplicates.

/// Stops with `message` when `condition` is false. Unlike `precondition`, the message is also printed in
/// optimized builds, so the fuzzer log names the property that failed.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fatalError(message())
    }
}

func asciiCaseVariants(_ word: String) -> [String] {
    func mapLetters(_ transform: (UInt8) -> UInt8) -> String {
        String(decoding: word.utf8.map(transform), as: UTF8.self)
    }
    let isUpper = { (byte: UInt8) in (0x41...0x5A).contains(byte) }
    let isLower = { (byte: UInt8) in (0x61...0x7A).contains(byte) }
    return [
        word,
        mapLetters { isLower($0) ? $0 - 0x20 : $0 },
        mapLetters { isUpper($0) ? $0 + 0x20 : $0 },
        mapLetters { isUpper($0) ? $0 + 0x20 : isLower($0) ? $0 - 0x20 : $0 },
    ]
}

func checkCapabilities(_ reply: SMTPReply) {
    let capabilities = Capabilities(ehloReply: reply)
    for line in reply.lines.dropFirst() {
        guard let first = line.split(separator: " ").first.map(String.init) else { continue }
        let keyword = first.uppercased().hasPrefix("AUTH=") ? "AUTH" : first
        for variant in asciiCaseVariants(keyword) {
            require(capabilities.supports(variant), "keyword \(keyword) sent, supports(\(variant)) is false")
        }
    }
    let expectedDomain = reply.lines.first?.split(separator: " ").first.map(String.init) ?? ""
    require(capabilities.serverDomain == expectedDomain, "server domain \(capabilities.serverDomain)")
    if let size = capabilities.maximumMessageSize {
        require(size > 0, "maximum message size \(size)")
    }
    let mechanisms = capabilities.authenticationMechanisms
    require(Set(mechanisms).count == mechanisms.count, "duplicate AUTH mechanisms \(mechanisms)")
    for mechanism in mechanisms {
        require(mechanism == mechanism.uppercased(), "AUTH mechanism \(mechanism) not upper-cased")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCapabilities(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    var parser = ReplyParser()
    parser.append(bytes)
    while let reply = try? parser.nextReply() {
        checkCapabilities(reply)
    }

    let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    checkCapabilities(SMTPReply(code: 250, lines: lines))
    return 0
}
