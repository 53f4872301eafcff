// Sends one message with a text attachment over SMTP and prints each recipient's outcome.
//
// Environment:
//   OUTBOX_EXAMPLE_HOST      the server; default 127.0.0.1
//   OUTBOX_EXAMPLE_PORT      its port; default 2525
//   OUTBOX_EXAMPLE_USER      a login name; with OUTBOX_EXAMPLE_PASSWORD, logs in
//   OUTBOX_EXAMPLE_PASSWORD
//   OUTBOX_EXAMPLE_FROM, OUTBOX_EXAMPLE_TO   default sender@example.org and recipient@example.org
//
// Try it against `outbox capture`, which prints its port:
//   outbox capture --port 2525 &
//   swift run SendWithAttachmentExample
//
// Exit status: 0 when every recipient accepted the message, 75 when a later try may succeed,
// 1 otherwise.
import Foundation
import Outbox

let environment = ProcessInfo.processInfo.environment
let host = environment["OUTBOX_EXAMPLE_HOST"] ?? "127.0.0.1"
let port = UInt16(environment["OUTBOX_EXAMPLE_PORT"] ?? "2525") ?? 2525

var credentials: SASLCredentials?
if let user = environment["OUTBOX_EXAMPLE_USER"], let password = environment["OUTBOX_EXAMPLE_PASSWORD"] {
    credentials = .password(username: user, password: Secret(password))
}
// With the default TLS mode, a server on loopback is reached without TLS and any other server
// must offer STARTTLS with a certificate that verifies.
let mailer = Mailer(account: MailAccount(host: host, port: port, credentials: credentials))

var message = MessageBuilder()
do {
    message.from = [try MailAddress(parsing: environment["OUTBOX_EXAMPLE_FROM"] ?? "Example Sender <sender@example.org>")]
    message.to = [try MailAddress(parsing: environment["OUTBOX_EXAMPLE_TO"] ?? "recipient@example.org")]
} catch {
    print("Invalid address: \(error)")
    exit(1)
}
message.subject = "The report you asked for"
message.text = "Hello,\n\nthe report is attached.\n"
message.attachments = [
    Attachment(data: Array("date,count\n2026-12-01,3\n2026-12-02,5\n".utf8), fileName: "report.csv", mediaType: "text/csv"),
]

do {
    let result = try await mailer.send(message)
    print("Sent \(result.messageID ?? "the message"): \(result.reply.map(String.init(describing:)) ?? "")")
    for recipient in result.recipients {
        print("  \(recipient)")
    }
    await mailer.shutdown()
    exit(result.rejected.isEmpty ? 0 : 1)
} catch {
    print("Not sent: \(error)")
    if let reply = error.reply {
        print("  reply code \(reply.code), enhanced code \(reply.enhancedCode.map(String.init(describing:)) ?? "none")")
    }
    for recipient in error.recipients {
        print("  \(recipient)")
    }
    await mailer.shutdown()
    exit(error.isRetryable ? 75 : 1)
}
