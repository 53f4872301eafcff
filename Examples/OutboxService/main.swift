// Queues a message in a durable outbox and runs the sender service until it is sent, printing the
// progress that the service reports.
//
// Environment:
//   OUTBOX_EXAMPLE_HOST    the server; default 127.0.0.1
//   OUTBOX_EXAMPLE_PORT    its port; default 2525
//   OUTBOX_EXAMPLE_STORE   the store's folder; default a new folder in the temporary directory
//
// A program would start `outbox.run()` once at launch and keep it running; messages queued while
// the server is down wait in the store and go out when it is back, even after a restart.
import Foundation
import Outbox

let environment = ProcessInfo.processInfo.environment
let host = environment["OUTBOX_EXAMPLE_HOST"] ?? "127.0.0.1"
let port = UInt16(environment["OUTBOX_EXAMPLE_PORT"] ?? "2525") ?? 2525
let storeURL = environment["OUTBOX_EXAMPLE_STORE"].map { URL(fileURLWithPath: $0) }
    ?? FileManager.default.temporaryDirectory.appendingPathComponent("outbox-example-\(UUID().uuidString)")

let outbox: OutboxService
do {
    outbox = try OutboxService(storeDirectory: storeURL, account: MailAccount(host: host, port: port))
} catch {
    print("Cannot open the outbox: \(error)")
    exit(1)
}

// Subscribe before the service starts, so that no update is missed.
let updates = outbox.progressUpdates()
let service = Task { await outbox.run(pollInterval: .seconds(2)) }

var message = MessageBuilder()
message.from = [try MailAddress(parsing: "sender@example.org")]
message.to = [try MailAddress(parsing: "recipient@example.org")]
message.subject = "Queued first, sent after"
message.text = "This message was on disk before any connection was made.\n"

let id: String
do {
    id = try await outbox.enqueue(message)
    print("Queued as \(id) in \(storeURL.path)")
} catch {
    print("Not queued: \(error)")
    exit(1)
}

// The first flush may start before the message is stored, so wait for a flush that finished it.
for await progress in updates {
    print("\(progress.activity): \(progress.sent) sent, \(progress.deferred) deferred, \(progress.pending) pending")
    if let stored = try outbox.message(id: id), stored.folder != .outbox || stored.attempts > 0 {
        break
    }
}
service.cancel()
await service.value

guard let stored = try outbox.message(id: id) else { exit(1) }
print("Message \(id) is in \(stored.folder)")
for recipient in stored.recipients {
    print("  <\(recipient.address)>: \(recipient.state) \(recipient.reply.map(String.init(describing:)) ?? "")")
}
exit(stored.folder == .sent ? 0 : 1)
