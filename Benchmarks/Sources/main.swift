import Foundation
import MailStore
import SMTPClient
import SMTPCore

// Benchmark helpers, run by hand from Benchmarks/run.sh and Benchmarks/queue.sh:
//
//   outbox-benchmark HOST PORT COUNT [SIZE]
//     Sends COUNT messages of about SIZE octets over one SMTP connection and prints the rate, for
//     comparison with Postfix's smtp-source against the same smtp-sink.
//   outbox-benchmark fill STORE TOTAL [SIZE]
//     Adds messages to the store's Outbox through the MailStore API until it contains TOTAL, and
//     prints the storing rate. Each new message copies the envelope, account and route of the
//     newest Outbox message, which `outbox send --queue-only` must have stored first, so that
//     `outbox queue flush` sends them to that message's server.
//   outbox-benchmark open STORE
//     Opens the store, counts its messages by folder and prints the time each step took.

let usage = """
    Usage: outbox-benchmark HOST PORT COUNT [SIZE]
           outbox-benchmark fill STORE TOTAL [SIZE]
           outbox-benchmark open STORE

    """

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("outbox-benchmark: \(message)\n".utf8))
    exit(status)
}

/// Returns a message of about `size` octets: a few header fields and lines of 72 letters.
func makeMessage(size: Int) -> [UInt8] {
    var text = "From: bench@example.test\r\nTo: sink@example.test\r\nSubject: benchmark\r\n\r\n"
    let line = String(repeating: "abcdefghi", count: 8) + "\r\n"
    while text.utf8.count + line.utf8.count <= size {
        text += line
    }
    return Array(text.utf8)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Sends `count` messages over one connection, pipelined, and prints the rate.
func sendOverOneConnection(host: String, port: UInt16, count: Int, size: Int) async throws {
    let message = try OutgoingMessage(bytes: makeMessage(size: size))
    let envelope = Envelope(sender: "bench@example.test", recipients: ["sink@example.test"])
    let configuration = SMTPClientConfiguration(host: host, port: port, clientName: "bench.example.test")

    let start = ContinuousClock.now
    let connection = try await SMTPConnection.open(configuration)
    let results = await connection.send(Array(repeating: (message, envelope), count: count))
    await connection.quit()
    let failures = results.filter { if case .failure = $0 { true } else { false } }.count
    if failures > 0 {
        fail("\(failures) of \(count) messages failed", status: 75)
    }
    let elapsed = seconds(ContinuousClock.now - start)
    print(String(
        format: "outbox: %d messages of %d octets in %.3f s: %.0f messages/s", count, message.statistics.size, elapsed,
        Double(count) / elapsed))
}

/// Adds messages like the newest Outbox message until the Outbox contains `total`, one `add` call
/// each, and prints the storing rate.
func fill(store path: String, total: Int, size: Int) throws {
    let store = try openExistingStore(path)
    guard let template = try store.messages(in: .outbox).last else {
        fail("the Outbox of \(path) is empty; store one message with 'outbox send --queue-only' first", status: 66)
    }
    let missing = total - (try store.counts()[.outbox] ?? 0)
    guard missing > 0 else {
        print("fill: the Outbox already contains \(total) or more messages")
        return
    }
    let content = makeMessage(size: size)
    let new = NewMessage(
        sender: template.sender, recipients: template.recipients.map { StoredRecipient(address: $0.address) },
        account: template.account, route: template.route, subject: "benchmark")
    let start = ContinuousClock.now
    for _ in 0..<missing {
        _ = try store.add(new, content: content)
    }
    let elapsed = seconds(ContinuousClock.now - start)
    print(String(
        format: "fill: %d messages of %d octets stored in %.3f s: %.0f messages/s", missing, content.count, elapsed,
        Double(missing) / elapsed))
}

/// Opens the store and counts its messages, and prints how long each step took.
func open(store path: String) throws {
    let start = ContinuousClock.now
    let store = try openExistingStore(path)
    let opened = ContinuousClock.now
    let counts = try store.counts()
    let counted = ContinuousClock.now
    let total = counts.values.reduce(0, +)
    print(String(
        format: "open: %.3f ms to open, %.3f ms to count %d messages", seconds(opened - start) * 1000,
        seconds(counted - opened) * 1000, total))
}

/// Opens an existing store. MailStore would create a missing one, which would only hide a
/// mistyped path here.
func openExistingStore(_ path: String) throws -> MailStore {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
        fail("the store folder \(path) was not found; create it with 'outbox send --queue-only --store \(path)'", status: 66)
    }
    return try MailStore(url: URL(fileURLWithPath: path))
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "fill" where arguments.count >= 3:
        guard let total = Int(arguments[2]) else { fail("TOTAL must be a number: \(arguments[2])", status: 64) }
        let size = arguments.count > 3 ? Int(arguments[3]) ?? 2048 : 2048
        try fill(store: arguments[1], total: total, size: size)
    case "open" where arguments.count == 2:
        try open(store: arguments[1])
    default:
        guard arguments.count >= 3, let port = UInt16(arguments[1]), let count = Int(arguments[2]) else {
            FileHandle.standardError.write(Data(usage.utf8))
            exit(64)
        }
        let size = arguments.count > 3 ? Int(arguments[3]) ?? 2048 : 2048
        try await sendOverOneConnection(host: arguments[0], port: port, count: count, size: size)
    }
} catch {
    fail("\(error)", status: 70)
}
