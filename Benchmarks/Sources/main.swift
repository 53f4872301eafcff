import Foundation
import SMTPClient
import SMTPCore

// Sends many small messages over one SMTP connection and prints the rate, for comparison with
// Postfix's smtp-source against the same smtp-sink. See Benchmarks/run.sh.
//
// Usage: outbox-benchmark HOST PORT COUNT [SIZE]

let arguments = CommandLine.arguments
guard arguments.count >= 4, let port = UInt16(arguments[2]), let count = Int(arguments[3]) else {
    FileHandle.standardError.write(Data("Usage: outbox-benchmark HOST PORT COUNT [SIZE]\n".utf8))
    exit(64)
}
let size = arguments.count > 4 ? Int(arguments[4]) ?? 2048 : 2048

/// Returns a message of about `size` octets: a few header fields and lines of 72 letters.
func makeMessage(size: Int) -> [UInt8] {
    var text = "From: bench@example.test\r\nTo: sink@example.test\r\nSubject: benchmark\r\n\r\n"
    let line = String(repeating: "abcdefghi", count: 8) + "\r\n"
    while text.utf8.count + line.utf8.count <= size {
        text += line
    }
    return Array(text.utf8)
}

let message = try OutgoingMessage(bytes: makeMessage(size: size))
let envelope = Envelope(sender: "bench@example.test", recipients: ["sink@example.test"])
let configuration = SMTPClientConfiguration(host: arguments[1], port: port, clientName: "bench.example.test")

let start = ContinuousClock.now
let connection = try await SMTPConnection.open(configuration)
let results = await connection.send(Array(repeating: (message, envelope), count: count))
await connection.quit()
let failures = results.filter { if case .failure = $0 { true } else { false } }.count
if failures > 0 {
    FileHandle.standardError.write(Data("\(failures) of \(count) messages failed\n".utf8))
    exit(75)
}
let elapsed = ContinuousClock.now - start
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
print(String(format: "outbox: %d messages of %d octets in %.3f s: %.0f messages/s", count, message.statistics.size, seconds, Double(count) / seconds))
