// Shows how to test code that sends mail without a server: the code under test takes a `Mailer`,
// and the test gives it one over an `InMemoryTransport`, then checks what was recorded.
//
// In a test target the checks would be `#expect` or `XCTAssert`. This executable prints each
// check and exits with status 1 when one fails, so that it runs without a test framework.
import Foundation
import Outbox

/// Sends a welcome message to a new user. This is the code under test.
func sendWelcome(to address: String, name: String, mailer: Mailer) async throws -> SendResult {
    var message = MessageBuilder()
    message.from = [try MailAddress(parsing: "Example Service <welcome@example.org>")]
    message.to = [try MailAddress(parsing: address)]
    message.subject = "Welcome, \(name)"
    message.text = "Hello \(name),\n\nyour account is ready.\n"
    return try await mailer.send(message)
}

var failures = 0

@MainActor
func check(_ condition: Bool, _ description: String) {
    print(condition ? "ok: \(description)" : "FAILED: \(description)")
    if !condition { failures += 1 }
}

// A message that goes out.
let transport = InMemoryTransport()
let mailer = Mailer(transport: transport)
let result = try await sendWelcome(to: "new.user@example.org", name: "Ada", mailer: mailer)
check(result.accepted.map(\.address) == ["new.user@example.org"], "the recipient accepted the message")
check(transport.sentMessages.count == 1, "one message was recorded")
let sent = transport.sentMessages.first
check(sent?.envelope.sender == "welcome@example.org", "the envelope sender is the From address")
check(sent?.text.contains("Subject: Welcome, Ada\r\n") == true, "the subject names the user")
check(sent?.text.contains("your account is ready.") == true, "the body is in the message")

// A recipient the server rejects: the error names it and reports that retrying will not help.
transport.reset()
transport.reject("nobody@example.org")
do {
    _ = try await sendWelcome(to: "nobody@example.org", name: "Nobody", mailer: mailer)
    check(false, "a rejected recipient throws")
} catch let error as MailError {
    check(error.kind == .rejected, "the error's kind is rejected")
    check(!error.isRetryable, "a permanent rejection is not retryable")
    check(error.recipients.map(\.address) == ["nobody@example.org"], "the error names the recipient")
}
check(transport.sentMessages.isEmpty, "nothing was recorded for the rejected message")

exit(failures == 0 ? 0 : 1)
