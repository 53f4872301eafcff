import Testing
@testable import SMTPCore

struct SASLPlainTests {
    /// The two examples of RFC 4616 section 4.
    @Test("RFC 4616 examples", arguments: [
        ("", "tim", "tanstaaftanstaaf", "\0tim\0tanstaaftanstaaf"),
        ("Ursel", "Kurt", "xipj3plmq", "Ursel\0Kurt\0xipj3plmq"),
    ])
    func rfcExamples(authorizationIdentity: String, username: String, password: String, expected: String) throws {
        var mechanism = try PlainMechanism(
            username: username, password: Secret(password), authorizationIdentity: authorizationIdentity)
        let response = try mechanism.initialResponse()
        #expect(response == Array(expected.utf8))
    }

    @Test func utf8NamesAndPassword() throws {
        var mechanism = try PlainMechanism(username: "jörg@bücher.example", password: Secret("pässwörd€"))
        let response = try mechanism.initialResponse()
        #expect(response == [0] + Array("jörg@bücher.example".utf8) + [0] + Array("pässwörd€".utf8))
    }

    @Test("NUL rejected before sending", arguments: ["authorization identity", "user name", "password"])
    func nulRejected(field: String) {
        let authorizationIdentity = field == "authorization identity" ? "ad\0min" : ""
        let username = field == "user name" ? "us\0er" : "user"
        let password = field == "password" ? "pass\0word" : "password"
        let error = #expect(throws: SASLError.self) {
            _ = try PlainMechanism(
                username: username, password: Secret(password), authorizationIdentity: authorizationIdentity)
        }
        #expect(error?.message.contains("the \(field) contains a NUL character") == true)
    }

    @Test func challengeAfterInitialResponseFails() throws {
        var mechanism = try PlainMechanism(username: "tim", password: Secret("tanstaaftanstaaf"))
        _ = try mechanism.initialResponse()
        #expect(throws: SASLError.self) { try mechanism.response(to: []) }
    }

    @Test func nameIsPLAIN() throws {
        let mechanism = try PlainMechanism(username: "tim", password: Secret("x"))
        #expect(mechanism.name == "PLAIN")
    }
}

struct SASLLoginTests {
    /// "Username:" and "Password:" as draft-murchison-sasl-login-00 shows them, and the other
    /// prompts that some servers send instead.
    @Test("responds by challenge order", arguments: [
        ("Username:", "Password:"),
        ("User Name\0", "Password\0"),
        ("login:", "secret:"),
        ("", ""),
    ])
    func respondsByChallengeOrder(firstPrompt: String, secondPrompt: String) throws {
        var mechanism = LoginMechanism(username: "tim", password: Secret("tanstaaftanstaaf"))
        let initial = try mechanism.initialResponse()
        let first = try mechanism.response(to: Array(firstPrompt.utf8))
        let second = try mechanism.response(to: Array(secondPrompt.utf8))
        #expect(initial == nil)
        #expect(first == Array("tim".utf8))
        #expect(second == Array("tanstaaftanstaaf".utf8))
    }

    @Test func thirdChallengeFails() throws {
        var mechanism = LoginMechanism(username: "tim", password: Secret("tanstaaftanstaaf"))
        _ = try mechanism.response(to: Array("Username:".utf8))
        _ = try mechanism.response(to: Array("Password:".utf8))
        #expect(throws: SASLError.self) { try mechanism.response(to: Array("Password:".utf8)) }
    }

    @Test func utf8Password() throws {
        var mechanism = LoginMechanism(username: "jörg", password: Secret("pässwörd"))
        _ = try mechanism.response(to: Array("Username:".utf8))
        let password = try mechanism.response(to: Array("Password:".utf8))
        #expect(password == Array("pässwörd".utf8))
    }
}

struct SASLCRAMMD5Tests {
    /// The example of RFC 2195 section 2.
    @Test func rfc2195Example() throws {
        var mechanism = CRAMMD5Mechanism(username: "tim", password: Secret("tanstaaftanstaaf"))
        let initial = try mechanism.initialResponse()
        let response = try mechanism.response(to: Array("<1896.697170952@postoffice.reston.mci.net>".utf8))
        #expect(initial == nil)
        #expect(String(decoding: response, as: UTF8.self) == "tim b913a602c7eda7a495b4e6e7334d3890")
    }

    @Test func emptyChallengeFails() {
        var mechanism = CRAMMD5Mechanism(username: "tim", password: Secret("tanstaaftanstaaf"))
        #expect(throws: SASLError.self) { try mechanism.response(to: []) }
    }

    @Test func secondChallengeFails() throws {
        var mechanism = CRAMMD5Mechanism(username: "tim", password: Secret("tanstaaftanstaaf"))
        _ = try mechanism.response(to: Array("<1.2@example.test>".utf8))
        #expect(throws: SASLError.self) { try mechanism.response(to: Array("<1.2@example.test>".utf8)) }
    }

    /// HMAC keys longer than the MD5 block of 64 bytes are hashed first (RFC 2104 section 2), which
    /// OpenSSL does. This checks only that such a key works and changes the digest.
    @Test func longPasswordIsAccepted() throws {
        let challenge = Array("<1896.697170952@postoffice.reston.mci.net>".utf8)
        var long = CRAMMD5Mechanism(username: "tim", password: Secret(String(repeating: "x", count: 100)))
        var short = CRAMMD5Mechanism(username: "tim", password: Secret("x"))
        let longResponse = try long.response(to: challenge)
        let shortResponse = try short.response(to: challenge)
        #expect(longResponse.count == "tim ".count + 32)
        #expect(longResponse != shortResponse)
    }
}
