import Foundation
import SMTPCore

/// The credentials that `outbox capture` accepts with AUTH.
enum CaptureCredentials: Sendable {
    /// Any user name with any password, for clients whose login is not what is being tested.
    case any
    /// Only this user name with this password.
    case user(String, password: Secret)
}

/// The server side of one SASL exchange of SMTP AUTH (RFC 4954), without I/O or base64.
///
/// PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login-00) and CRAM-MD5 (RFC 2195) are supported.
/// `start(initialResponse:)` begins the exchange, and `receive(_:)` takes each decoded response to a
/// challenge until the step is no longer `.challenge`.
struct SASLServerExchange {
    /// The server's next action.
    enum Step: Equatable {
        /// Send 334 with these bytes, base64-encoded, and pass the client's next line to `receive(_:)`.
        case challenge([UInt8])
        /// The credentials are valid: reply 235.
        case success(user: String)
        /// The credentials are invalid: reply 535.
        case failure
        /// The response does not have the mechanism's syntax: reply 501 with this text.
        case malformed(String)
    }

    /// The mechanisms in the order that EHLO offers them.
    static let mechanisms = ["PLAIN", "LOGIN", "CRAM-MD5"]

    private enum State {
        case started
        case plainResponse
        case loginUsername
        case loginPassword(username: String)
        case cramMD5Response(challenge: [UInt8])
    }

    let mechanism: String
    private let credentials: CaptureCredentials
    private let serverName: String
    private var state = State.started

    /// Returns nil for a mechanism that is not in `offeredMechanisms`.
    init?(mechanism: String, offeredMechanisms: [String], credentials: CaptureCredentials, serverName: String) {
        guard offeredMechanisms.contains(mechanism) else {
            return nil
        }
        self.mechanism = mechanism
        self.credentials = credentials
        self.serverName = serverName
    }

    /// Returns the first step for the AUTH command, whose initial response is nil when the client sent
    /// none and empty when it sent "=".
    mutating func start(initialResponse: [UInt8]?) -> Step {
        switch mechanism {
        case "PLAIN":
            guard let initialResponse else {
                state = .plainResponse
                return .challenge([])
            }
            return checkPlain(initialResponse)
        case "LOGIN":
            // Some clients send the user name as an initial response, which the LOGIN draft allows.
            guard let initialResponse else {
                state = .loginUsername
                return .challenge(Array("Username:".utf8))
            }
            return receiveLoginUsername(initialResponse)
        default:
            guard initialResponse == nil else {
                return .malformed("CRAM-MD5 takes no initial response")
            }
            // RFC 2195 section 2: a challenge in the form of a message ID, unique for each exchange.
            let challenge = Array("<\(UInt64.random(in: 0...UInt64.max)).\(Int(Date().timeIntervalSince1970))@\(serverName)>".utf8)
            state = .cramMD5Response(challenge: challenge)
            return .challenge(challenge)
        }
    }

    /// Returns the step after a decoded response to the last challenge.
    mutating func receive(_ response: [UInt8]) -> Step {
        switch state {
        case .started:
            preconditionFailure("SASLServerExchange.receive called before start")
        case .plainResponse:
            return checkPlain(response)
        case .loginUsername:
            return receiveLoginUsername(response)
        case .loginPassword(let username):
            guard let password = String(validating: response, as: UTF8.self) else {
                return .malformed("The password is not valid UTF-8")
            }
            return check(username: username, password: password)
        case .cramMD5Response(let challenge):
            return checkCRAMMD5(response, challenge: challenge)
        }
    }

    private mutating func receiveLoginUsername(_ response: [UInt8]) -> Step {
        guard !response.isEmpty, let username = String(validating: response, as: UTF8.self) else {
            return .malformed("The user name is empty or not valid UTF-8")
        }
        state = .loginPassword(username: username)
        return .challenge(Array("Password:".utf8))
    }

    /// Checks a PLAIN message: authorization identity, NUL, user name, NUL, password (RFC 4616 section 2).
    private func checkPlain(_ message: [UInt8]) -> Step {
        let parts = message.split(separator: 0, omittingEmptySubsequences: false)
        guard parts.count == 3,
              let authorizationIdentity = String(validating: parts[0], as: UTF8.self),
              let username = String(validating: parts[1], as: UTF8.self), !username.isEmpty,
              let password = String(validating: parts[2], as: UTF8.self)
        else {
            return .malformed("The PLAIN response is not authorization identity, NUL, user name, NUL, password")
        }
        // Capture has no users who may act for others, so an authorization identity must name the user.
        guard authorizationIdentity.isEmpty || authorizationIdentity == username else {
            return .failure
        }
        return check(username: username, password: password)
    }

    /// Checks a CRAM-MD5 response: the user name, a space and 32 lower-case hex digits (RFC 2195 section 2).
    private func checkCRAMMD5(_ response: [UInt8], challenge: [UInt8]) -> Step {
        guard let space = response.lastIndex(of: UInt8(ascii: " ")),
              let username = String(validating: response[..<space], as: UTF8.self), !username.isEmpty,
              response.count - space - 1 == 32
        else {
            return .malformed("The CRAM-MD5 response is not a user name, a space and a 32-digit digest")
        }
        switch credentials {
        case .any:
            return .success(user: username)
        case .user(let expectedUser, let password):
            var mechanism = CRAMMD5Mechanism(username: expectedUser, password: password)
            // The expected response is the one that the project's client computes with the right password.
            guard let expected = try? mechanism.response(to: challenge),
                  Self.constantTimeEqual(Array(response), expected)
            else {
                return .failure
            }
            return .success(user: username)
        }
    }

    private func check(username: String, password: String) -> Step {
        switch credentials {
        case .any:
            return .success(user: username)
        case .user(let expectedUser, let expectedPassword):
            // Both comparisons run, so the time taken does not show which of the two was wrong.
            let userMatches = Self.constantTimeEqual(Array(username.utf8), Array(expectedUser.utf8))
            let passwordMatches = Self.constantTimeEqual(Array(password.utf8), Array(expectedPassword.value.utf8))
            return userMatches && passwordMatches ? .success(user: username) : .failure
        }
    }

    /// Compares two byte strings in a time that depends on their lengths only.
    static func constantTimeEqual(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        guard left.count == right.count else {
            return false
        }
        var difference: UInt8 = 0
        for index in left.indices {
            difference |= left[index] ^ right[index]
        }
        return difference == 0
    }

    /// Returns whether OpenSSL can compute HMAC-MD5, which CRAM-MD5 needs. It cannot when only the FIPS
    /// provider is loaded.
    static var isCRAMMD5Available: Bool {
        var mechanism = CRAMMD5Mechanism(username: "check", password: Secret("check"))
        return (try? mechanism.response(to: Array("<check>".utf8))) != nil
    }
}
