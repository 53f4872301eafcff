// Logs in with an OAuth 2.0 access token that a credentials provider returns when a connection
// opens, so that a token that expired is replaced without restarting the program.
//
// Environment:
//   OUTBOX_EXAMPLE_HOST   the server; default 127.0.0.1
//   OUTBOX_EXAMPLE_PORT   its port; default 2525
//   OUTBOX_EXAMPLE_USER   the account; default sender@example.org
//   OUTBOX_EXAMPLE_TOKEN  the access token this example hands out; default a placeholder
//
// A real program fetches the token from its identity provider's token endpoint with a refresh
// token; `TokenCache.fetchToken()` marks the spot.
import Foundation
import Outbox

let environment = ProcessInfo.processInfo.environment
let host = environment["OUTBOX_EXAMPLE_HOST"] ?? "127.0.0.1"
let port = UInt16(environment["OUTBOX_EXAMPLE_PORT"] ?? "2525") ?? 2525
let user = environment["OUTBOX_EXAMPLE_USER"] ?? "sender@example.org"

/// An access token and when it expires, fetched again shortly before that.
actor TokenCache {
    private var token: Secret?
    private var expiry = ContinuousClock.now

    func currentToken() async throws -> Secret {
        if let token, ContinuousClock.now < expiry - .seconds(60) {
            return token
        }
        let (fresh, lifetime) = try await fetchToken()
        token = fresh
        expiry = .now + lifetime
        return fresh
    }

    /// Returns a new access token and its lifetime. Replace this with a request to the token endpoint.
    private func fetchToken() async throws -> (Secret, Duration) {
        (Secret(environment["OUTBOX_EXAMPLE_TOKEN"] ?? "example-access-token"), .seconds(3600))
    }
}

let tokens = TokenCache()
var account = MailAccount(host: host, port: port, credentialsProvider: {
    .oauth2(username: user, token: try await tokens.currentToken())
})
// XOAUTH2 is what Gmail and Microsoft 365 take; nil would pick OAUTHBEARER when the server offers it.
account.authenticationMechanism = "XOAUTH2"
let mailer = Mailer(account: account)

var message = MessageBuilder()
message.from = [try MailAddress(parsing: user)]
message.to = [try MailAddress(parsing: "recipient@example.org")]
message.subject = "Sent with an OAuth 2.0 token"
message.text = "The login used a bearer token, not a password.\n"

do {
    let result = try await mailer.send(message)
    print("Sent to \(result.accepted.map(\.address).joined(separator: ", "))")
    await mailer.shutdown()
} catch {
    // An expired or revoked token shows as kind .authenticationFailed with the server's reply.
    print("Not sent (\(error.kind)): \(error)")
    await mailer.shutdown()
    exit(error.isRetryable ? 75 : 1)
}
