import Testing
@testable import SMTPCore

private let password = SASLCredentials.password(username: "tim", password: Secret("tanstaaftanstaaf"))
private let token = SASLCredentials.oauth2(username: "tim@example.com", token: Secret("ya29.token"))

struct SASLSelectionTests {
    @Test("password preference order", arguments: [
        (["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"], "SCRAM-SHA-256"),
        (["PLAIN", "LOGIN", "SCRAM-SHA-1"], "SCRAM-SHA-1"),
        (["LOGIN", "PLAIN", "CRAM-MD5"], "CRAM-MD5"),
        (["LOGIN", "PLAIN"], "PLAIN"),
        (["XOAUTH2", "LOGIN"], "LOGIN"),
        (["SCRAM-SHA-256-PLUS", "PLAIN"], "PLAIN"),
        (["plain", "login"], "PLAIN"),
    ])
    func passwordPreference(offered: [String], expected: String) throws {
        let mechanism = try selectSASLMechanism(offered: offered, credentials: password)
        #expect(mechanism.name == expected)
    }

    @Test("token preference order", arguments: [
        (["XOAUTH2", "OAUTHBEARER", "PLAIN"], "OAUTHBEARER"),
        (["PLAIN", "XOAUTH2"], "XOAUTH2"),
    ])
    func tokenPreference(offered: [String], expected: String) throws {
        let mechanism = try selectSASLMechanism(offered: offered, credentials: token)
        #expect(mechanism.name == expected)
    }

    @Test func configuredMechanismUsedInAnyCase() throws {
        let mechanism = try selectSASLMechanism(
            offered: ["SCRAM-SHA-256", "PLAIN"], credentials: password, configured: "plain")
        #expect(mechanism.name == "PLAIN")
    }

    @Test func configuredNotOfferedNamesBothLists() {
        let error = #expect(throws: SASLError.self) {
            try selectSASLMechanism(offered: ["PLAIN", "LOGIN"], credentials: password, configured: "CRAM-MD5")
        }
        let message = error?.message ?? ""
        #expect(message.contains("CRAM-MD5 is not offered"))
        #expect(message.contains("offers PLAIN, LOGIN"))
        #expect(message.contains("SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN"))
    }

    @Test func configuredUnknownRejected() {
        let error = #expect(throws: SASLError.self) {
            try selectSASLMechanism(offered: ["DIGEST-MD5"], credentials: password, configured: "DIGEST-MD5")
        }
        #expect(error?.message.contains("\"DIGEST-MD5\" is not supported") == true)
    }

    @Test func configuredForOtherCredentialsRejected() {
        let error = #expect(throws: SASLError.self) {
            try selectSASLMechanism(offered: ["XOAUTH2", "PLAIN"], credentials: password, configured: "XOAUTH2")
        }
        let message = error?.message ?? ""
        #expect(message.contains("XOAUTH2 cannot use a password for tim"))
        #expect(message.contains("the server offers XOAUTH2, PLAIN"))
    }

    @Test func noCommonMechanismNamesBothLists() {
        let error = #expect(throws: SASLError.self) {
            try selectSASLMechanism(offered: ["PLAIN", "LOGIN"], credentials: token)
        }
        let message = error?.message ?? ""
        #expect(message.contains("the server offers PLAIN, LOGIN"))
        #expect(message.contains("OAUTHBEARER, XOAUTH2"))
    }

    @Test func nothingOffered() {
        let error = #expect(throws: SASLError.self) { try selectSASLMechanism(offered: [], credentials: password) }
        #expect(error?.message.contains("the server offers no AUTH mechanism on this connection") == true)
        #expect(error?.message.contains("STARTTLS") == true)
    }

    @Test func eachSelectionIsNewInstance() throws {
        var first = try selectSASLMechanism(offered: ["SCRAM-SHA-256"], credentials: password)
        var second = try selectSASLMechanism(offered: ["SCRAM-SHA-256"], credentials: password)
        let firstResponse = try first.initialResponse()
        let secondResponse = try second.initialResponse()
        #expect(firstResponse != secondResponse)
    }

    @Test func oauthBearerGetsHostAndPort() throws {
        var mechanism = try selectSASLMechanism(
            offered: ["OAUTHBEARER"], credentials: token, host: "smtp.example.com", port: 587)
        let response = try #require(try mechanism.initialResponse())
        let text = String(decoding: response, as: UTF8.self)
        #expect(text.contains("\u{01}host=smtp.example.com\u{01}port=587\u{01}"))
    }

    @Test("every name makes its mechanism", arguments: SASLMechanismName.allCases)
    func makesEachMechanism(name: SASLMechanismName) throws {
        let credentials = SASLMechanismName.preferenceOrder(for: password).contains(name) ? password : token
        let mechanism = try name.makeMechanism(credentials: credentials, host: "h", port: 25)
        #expect(mechanism.name == name.rawValue)
    }

    @Test func mechanismErrorPropagates() {
        let credentials = SASLCredentials.password(username: "tim", password: Secret("pass\0word"))
        let error = #expect(throws: SASLError.self) {
            try selectSASLMechanism(offered: ["PLAIN"], credentials: credentials)
        }
        #expect(error?.mechanism == "PLAIN")
    }
}
