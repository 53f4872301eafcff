import Testing
@testable import SMTPCore

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// An XOAUTH2 error challenge: JSON with status, schemes and scope.
private let googleErrorJSON = #"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#

/// An error with the members that RFC 7628 defines for it: status, scope and openid-configuration.
private let rfc7628ErrorJSON =
    #"{"status":"invalid_token","scope":"example_scope","#
    + #""openid-configuration":"https://example.com/.well-known/openid-configuration"}"#

struct SASLXOAuth2Tests {
    /// The initial client response from Google's XOAUTH2 documentation, with ^A written as 0x01.
    @Test func googleExample() throws {
        var mechanism = try XOAuth2Mechanism(
            username: "someuser@example.com", token: Secret("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"))
        let response = try mechanism.initialResponse()
        #expect(response == bytes(
            "user=someuser@example.com\u{01}auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\u{01}\u{01}"))
        #expect(mechanism.name == "XOAUTH2")
    }

    @Test func errorChallengeGetsEmptyResponse() throws {
        var mechanism = try XOAuth2Mechanism(username: "someuser@example.com", token: Secret("ya29.token"))
        _ = try mechanism.initialResponse()
        let response = try mechanism.response(to: bytes(googleErrorJSON))
        #expect(response.isEmpty)
        #expect(mechanism.serverError == googleErrorJSON)
    }

    @Test func secondChallengeFails() throws {
        var mechanism = try XOAuth2Mechanism(username: "someuser@example.com", token: Secret("ya29.token"))
        _ = try mechanism.response(to: bytes(googleErrorJSON))
        #expect(throws: SASLError.self) { try mechanism.response(to: bytes(googleErrorJSON)) }
    }

    @Test func serverErrorNilWithoutChallenge() throws {
        let mechanism = try XOAuth2Mechanism(username: "someuser@example.com", token: Secret("ya29.token"))
        #expect(mechanism.serverError == nil)
    }

    @Test func serverErrorControlCharactersReplaced() throws {
        var mechanism = try XOAuth2Mechanism(username: "someuser@example.com", token: Secret("ya29.token"))
        _ = try mechanism.response(to: bytes("{\n  \"status\": \"400\"\u{1B}[2J\n}"))
        #expect(mechanism.serverError == "{   \"status\": \"400\"?[2J }")
    }

    @Test("invalid token rejected", arguments: ["", "ya29 token", "ya29.token\n", "Bearer\u{01}x", "tökén"])
    func invalidTokenRejected(token: String) {
        #expect(throws: SASLError.self) { try XOAuth2Mechanism(username: "someuser@example.com", token: Secret(token)) }
    }

    @Test func controlCharacterInUsernameRejected() {
        #expect(throws: SASLError.self) {
            try XOAuth2Mechanism(username: "user\u{01}auth=x", token: Secret("ya29.token"))
        }
    }
}

struct SASLOAuthBearerTests {
    /// RFC 7628 section 4.1, with ^A written as 0x01, and the base64 form the RFC shows.
    @Test func rfc7628Example() throws {
        var mechanism = try OAuthBearerMechanism(
            username: "user@example.com", token: Secret("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="),
            host: "server.example.com", port: 143)
        let response = try #require(try mechanism.initialResponse())
        #expect(response == bytes(
            "n,a=user@example.com,\u{01}host=server.example.com\u{01}port=143\u{01}"
                + "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\u{01}\u{01}"))
        #expect(SASLBase64.encode(response)
            == "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1"
                + "dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB")
        #expect(mechanism.name == "OAUTHBEARER")
    }

    @Test func hostAndPortOmittedWhenUnknown() throws {
        var mechanism = try OAuthBearerMechanism(username: "user", token: Secret("token"), host: "", port: 0)
        let response = try mechanism.initialResponse()
        #expect(response == bytes("n,a=user,\u{01}auth=Bearer token\u{01}\u{01}"))
    }

    @Test func usernameEncodedAsSaslname() throws {
        var mechanism = try OAuthBearerMechanism(username: "a=b,c", token: Secret("token"), host: "", port: 0)
        let response = try mechanism.initialResponse()
        #expect(response == bytes("n,a=a=3Db=2Cc,\u{01}auth=Bearer token\u{01}\u{01}"))
    }

    /// RFC 7628 section 3.2.3: the client responds to an error challenge with a single 0x01.
    @Test func errorChallengeGetsKvsepResponse() throws {
        var mechanism = try OAuthBearerMechanism(
            username: "user@example.com", token: Secret("token"), host: "server.example.com", port: 587)
        _ = try mechanism.initialResponse()
        let response = try mechanism.response(to: bytes(rfc7628ErrorJSON))
        #expect(response == [0x01])
        #expect(mechanism.serverError == rfc7628ErrorJSON)
    }

    @Test func secondChallengeFails() throws {
        var mechanism = try OAuthBearerMechanism(username: "user", token: Secret("token"), host: "h", port: 1)
        _ = try mechanism.response(to: bytes(rfc7628ErrorJSON))
        #expect(throws: SASLError.self) { try mechanism.response(to: bytes(rfc7628ErrorJSON)) }
    }

    @Test func controlCharacterInHostRejected() {
        #expect(throws: SASLError.self) {
            try OAuthBearerMechanism(username: "user", token: Secret("token"), host: "h\u{01}auth=x", port: 1)
        }
    }

    @Test("invalid token rejected", arguments: ["", "a b", "a\u{01}b", "a\r\nb"])
    func invalidTokenRejected(token: String) {
        #expect(throws: SASLError.self) {
            try OAuthBearerMechanism(username: "user", token: Secret(token), host: "h", port: 1)
        }
    }

    @Test func reportsServerErrorToSession() throws {
        var mechanism: any SASLMechanism = try OAuthBearerMechanism(
            username: "user", token: Secret("token"), host: "h", port: 1)
        _ = try mechanism.response(to: bytes(rfc7628ErrorJSON))
        let reporting = mechanism as? any SASLServerErrorReporting
        #expect(reporting?.serverError == rfc7628ErrorJSON)
    }
}
