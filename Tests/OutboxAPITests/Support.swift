import Foundation
import Outbox
import OutboxTestSupport

/// Returns a message from sender@example.org whose subject identifies it in a test.
func makeMessage(to recipients: [String] = ["rcpt@example.org"], subject: String = "test") throws -> MessageBuilder {
    var message = MessageBuilder()
    message.from = [try MailAddress(parsing: "sender@example.org")]
    message.to = try recipients.map { try MailAddress(parsing: $0) }
    message.subject = subject
    message.text = "Body of \(subject).\n"
    return message
}

/// Returns an account for a scripted server on loopback, with short timeouts so that a broken test ends soon.
func loopbackAccount(port: UInt16, connections: Int = 4) -> MailAccount {
    var account = MailAccount(host: "127.0.0.1", port: port)
    account.timeouts = .init(all: .seconds(5))
    account.maximumConnections = connections
    return account
}

/// A folder in the temporary directory, removed when the value is released.
final class TemporaryFolder {
    let url: URL

    init(_ prefix: String) {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}

/// Returns the script of one connection that takes one message and then, while idle, sends `farewell`
/// (when given) and closes the connection, as a server with an idle timeout does.
func oneMessageThenClose(farewell: String? = nil) -> [ScriptedServer.Step] {
    var steps: [ScriptedServer.Step] = [
        .send("220 scripted.test ESMTP\r\n"),
        .expectLine(prefix: "EHLO"),
        .send("250-scripted.test\r\n250 ENHANCEDSTATUSCODES\r\n"),
        .expectLine(prefix: "MAIL FROM:"),
        .send("250 2.1.0 OK\r\n"),
        .expectLine(prefix: "RCPT TO:"),
        .send("250 2.1.5 OK\r\n"),
        .expectLine("DATA"),
        .send("354 go ahead\r\n"),
        .readData,
        .send("250 2.0.0 queued\r\n"),
    ]
    // The pause lets the client finish the send and put the connection in the pool first.
    steps.append(.stall(.milliseconds(200)))
    if let farewell {
        steps.append(.send(farewell))
    }
    steps.append(.close)
    return steps
}
