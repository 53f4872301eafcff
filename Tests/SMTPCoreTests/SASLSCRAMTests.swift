import Testing
@testable import SMTPCore

/// One SCRAM exchange as an RFC prints it, for user "user" and password "pencil".
struct SCRAMExample: Sendable, CustomTestStringConvertible {
    let variant: SCRAMMechanism.Variant
    let clientNonce: String
    let clientFirst: String
    let serverFirst: String
    let clientFinal: String
    let serverFinal: String

    var testDescription: String { variant.rawValue }

    /// RFC 5802 section 5.
    static let rfc5802 = SCRAMExample(
        variant: .sha1,
        clientNonce: "fyko+d2lbbFgONRv9qkxdawL",
        clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")

    /// RFC 7677 section 3.
    static let rfc7677 = SCRAMExample(
        variant: .sha256,
        clientNonce: "rOprNGfwEbeRWgbNEkqO",
        clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            + "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")

    static let all = [rfc5802, rfc7677]

    func makeMechanism(
        password: String = "pencil", maximumIterationCount: Int = 1_000_000
    ) throws(SASLError) -> SCRAMMechanism {
        try SCRAMMechanism(
            variant: variant, username: "user", password: Secret(password), clientNonce: clientNonce,
            maximumIterationCount: maximumIterationCount)
    }

    /// Creates a mechanism that has sent the client-first-message and waits for the server-first.
    func startedMechanism(
        password: String = "pencil", maximumIterationCount: Int = 1_000_000
    ) throws -> SCRAMMechanism {
        var mechanism = try makeMechanism(password: password, maximumIterationCount: maximumIterationCount)
        _ = try mechanism.initialResponse()
        return mechanism
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
private func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

struct SASLSCRAMTests {
    @Test("RFC example exchange", arguments: SCRAMExample.all)
    func rfcExampleExchange(example: SCRAMExample) throws {
        var mechanism = try example.makeMechanism()
        let clientFirst = try mechanism.initialResponse()
        let clientFinal = try mechanism.response(to: bytes(example.serverFirst))
        let finalResponse = try mechanism.response(to: bytes(example.serverFinal))
        #expect(mechanism.name == example.variant.rawValue)
        #expect(text(clientFirst) == example.clientFirst)
        #expect(text(clientFinal) == example.clientFinal)
        #expect(finalResponse.isEmpty)
        #expect(throws: Never.self) { try mechanism.verifyCompletion() }
    }

    @Test("server signature mismatch fails", arguments: SCRAMExample.all)
    func serverSignatureMismatch(example: SCRAMExample) throws {
        var mechanism = try example.startedMechanism()
        _ = try mechanism.response(to: bytes(example.serverFirst))
        // The other example's signature: valid base64, wrong value and, for SHA-256, wrong length.
        let forged = example.variant == .sha1 ? "v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=" : SCRAMExample.rfc5802.serverFinal
        let error = #expect(throws: SASLError.self) { try mechanism.response(to: bytes(forged)) }
        #expect(error?.message.contains("signature does not match") == true)
        #expect(throws: SASLError.self) { try mechanism.verifyCompletion() }
    }

    @Test("wrong password fails the signature check", arguments: SCRAMExample.all)
    func wrongPassword(example: SCRAMExample) throws {
        var mechanism = try example.startedMechanism(password: "pencil2")
        let clientFinal = try mechanism.response(to: bytes(example.serverFirst))
        #expect(text(clientFinal) != example.clientFinal)
        #expect(throws: SASLError.self) { try mechanism.response(to: bytes(example.serverFinal)) }
    }

    @Test func serverErrorReported() throws {
        var mechanism = try SCRAMExample.rfc7677.startedMechanism()
        _ = try mechanism.response(to: bytes(SCRAMExample.rfc7677.serverFirst))
        let error = #expect(throws: SASLError.self) { try mechanism.response(to: bytes("e=invalid-proof")) }
        #expect(error?.message.contains("\"invalid-proof\"") == true)
        #expect(error?.message.contains("Check the user name and password") == true)
        #expect(throws: SASLError.self) { try mechanism.verifyCompletion() }
    }

    @Test func completionWithoutSignatureFails() throws {
        var mechanism = try SCRAMExample.rfc7677.startedMechanism()
        _ = try mechanism.response(to: bytes(SCRAMExample.rfc7677.serverFirst))
        let error = #expect(throws: SASLError.self) { try mechanism.verifyCompletion() }
        #expect(error?.message.contains("without proving") == true)
    }

    @Test func completionBeforeExchangeFails() throws {
        let mechanism = try SCRAMExample.rfc7677.makeMechanism()
        #expect(throws: SASLError.self) { try mechanism.verifyCompletion() }
    }

    @Test func challengeAfterSignatureFails() throws {
        var mechanism = try SCRAMExample.rfc7677.startedMechanism()
        _ = try mechanism.response(to: bytes(SCRAMExample.rfc7677.serverFirst))
        _ = try mechanism.response(to: bytes(SCRAMExample.rfc7677.serverFinal))
        #expect(throws: SASLError.self) { try mechanism.response(to: []) }
    }

    @Test func exchangeStopsAfterFailure() throws {
        var mechanism = try SCRAMExample.rfc7677.startedMechanism()
        #expect(throws: SASLError.self) { try mechanism.response(to: bytes("r=other,s=QSXCR+Q6sek8bf92,i=4096")) }
        // The correct server-first no longer helps: the exchange is over.
        #expect(throws: SASLError.self) { try mechanism.response(to: bytes(SCRAMExample.rfc7677.serverFirst)) }
    }

    @Test func nonceNotExtendingClientNonceFails() throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism()
        let error = #expect(throws: SASLError.self) {
            try mechanism.response(to: bytes("r=XXXX+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"))
        }
        #expect(error?.message.contains("does not start with the client nonce") == true)
    }

    /// Malformed server-first-messages, each after the RFC 5802 client nonce.
    @Test("malformed server-first fails", arguments: [
        "m=ext,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096,s=QSXCR+Q6sek8bf92",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=not base64!,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawL3r\u{7F}c,s=QSXCR+Q6sek8bf92,i=4096",
        "",
    ])
    func malformedServerFirst(serverFirst: String) throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism()
        #expect(throws: SASLError.self) { try mechanism.response(to: bytes(serverFirst)) }
    }

    @Test func serverFirstNotUTF8Fails() throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism()
        #expect(throws: SASLError.self) { try mechanism.response(to: [0x72, 0x3D, 0xFF, 0xFE]) }
    }

    @Test("iteration count outside limits fails", arguments: [
        "0", "1", "4095", "1000001", "99999999999999999999999", "-4096", "+4096", "4096.0", "abc", "",
    ])
    func iterationCountOutsideLimits(count: String) throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism()
        let serverFirst = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=\(count)"
        #expect(throws: SASLError.self) { try mechanism.response(to: bytes(serverFirst)) }
    }

    @Test func iterationCountAtMaximumAccepted() throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism(maximumIterationCount: 4096)
        let clientFinal = try mechanism.response(to: bytes(SCRAMExample.rfc5802.serverFirst))
        #expect(text(clientFinal) == SCRAMExample.rfc5802.clientFinal)
    }

    @Test func iterationCountAboveConfiguredMaximumFails() throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism(maximumIterationCount: 4096)
        let serverFirst = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4097"
        let error = #expect(throws: SASLError.self) { try mechanism.response(to: bytes(serverFirst)) }
        #expect(error?.message.contains("maximum of 4096") == true)
    }

    @Test func maximumBelowMinimumRejected() {
        #expect(throws: SASLError.self) { try SCRAMExample.rfc5802.makeMechanism(maximumIterationCount: 4095) }
    }

    @Test func serverFinalExtensionsIgnored() throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism()
        _ = try mechanism.response(to: bytes(SCRAMExample.rfc5802.serverFirst))
        let response = try mechanism.response(to: bytes(SCRAMExample.rfc5802.serverFinal + ",x=extension"))
        #expect(response.isEmpty)
        #expect(throws: Never.self) { try mechanism.verifyCompletion() }
    }

    @Test("user name encoded as saslname", arguments: [
        ("a=b", "n=a=3Db"), ("a,b", "n=a=2Cb"), ("=,", "n==3D=2C"), ("jörg", "n=jörg"),
    ])
    func usernameEncoded(username: String, expected: String) throws {
        var mechanism = try SCRAMMechanism(
            variant: .sha256, username: username, password: Secret("pencil"), clientNonce: "abc")
        let clientFirst = try mechanism.initialResponse()
        #expect(text(clientFirst) == "n,,\(expected),r=abc")
    }

    /// SASLprep removes the soft hyphen, so the RFC 5802 proof for "pencil" comes out.
    @Test func passwordPreparedWithSASLprep() throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism(password: "pen\u{00AD}cil")
        let clientFinal = try mechanism.response(to: bytes(SCRAMExample.rfc5802.serverFirst))
        #expect(text(clientFinal) == SCRAMExample.rfc5802.clientFinal)
    }

    @Test func prohibitedPasswordCharacterRejected() {
        #expect(throws: SASLError.self) { try SCRAMExample.rfc5802.makeMechanism(password: "pen\u{0007}cil") }
    }

    @Test func prohibitedUsernameCharacterRejected() {
        let error = #expect(throws: SASLError.self) {
            try SCRAMMechanism(variant: .sha1, username: "us\u{0007}er", password: Secret("pencil"), clientNonce: "abc")
        }
        #expect(error?.message.contains("U+0007") == true)
    }

    @Test("invalid injected nonce rejected", arguments: ["", "a,b", "a b", "nonce\u{00E9}"])
    func invalidClientNonceRejected(nonce: String) {
        #expect(throws: SASLError.self) {
            try SCRAMMechanism(variant: .sha1, username: "user", password: Secret("pencil"), clientNonce: nonce)
        }
    }

    @Test func generatedNoncesDiffer() throws {
        var first = try SCRAMMechanism(variant: .sha256, username: "user", password: Secret("pencil"))
        var second = try SCRAMMechanism(variant: .sha256, username: "user", password: Secret("pencil"))
        let firstMessage = try #require(text(try first.initialResponse()))
        let secondMessage = try #require(text(try second.initialResponse()))
        let nonce = firstMessage.split(separator: ",").last.map { String($0.dropFirst(2)) } ?? ""
        #expect(firstMessage.hasPrefix("n,,n=user,r="))
        #expect(nonce.count == 24)
        #expect(nonce.unicodeScalars.allSatisfy { (0x21...0x7E).contains($0.value) })
        #expect(!nonce.contains(","))
        #expect(firstMessage != secondMessage)
    }

    @Test func initialResponseTwiceFails() throws {
        var mechanism = try SCRAMExample.rfc5802.startedMechanism()
        #expect(throws: SASLError.self) { try mechanism.initialResponse() }
    }
}

struct SASLPrepTests {
    /// The examples of RFC 4013 section 3 that do not fail.
    @Test("RFC 4013 examples", arguments: [
        ("I\u{00AD}X", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u{00AA}", "a"),
        ("\u{2168}", "IX"),
    ])
    func rfcExamples(input: String, expected: String) throws {
        #expect(try SASLPrep.prepare(input) == expected)
    }

    @Test("non-ASCII spaces mapped to SPACE", arguments: ["\u{00A0}", "\u{1680}", "\u{2003}", "\u{3000}"])
    func nonASCIISpaceMapped(space: String) throws {
        #expect(try SASLPrep.prepare("a\(space)b") == "a b")
    }

    @Test("mapped-to-nothing characters removed", arguments: ["\u{200B}", "\u{FEFF}", "\u{FE0F}", "\u{034F}"])
    func mappedToNothingRemoved(character: String) throws {
        #expect(try SASLPrep.prepare("a\(character)b") == "ab")
    }

    /// RFC 4013 example 6 (U+0007), then one character of each other prohibition table.
    @Test("prohibited characters rejected", arguments: [
        0x0007, 0x007F, 0x0085, 0x2028, 0xE000, 0x10FFFD, 0xFDD0, 0xFFFF, 0x1FFFE, 0xFFFD, 0x2FF0, 0x200E, 0x202E,
        0xE0001, 0xE0041,
    ] as [UInt32])
    func prohibitedRejected(codePoint: UInt32) throws {
        let scalar = try #require(Unicode.Scalar(codePoint))
        let error = #expect(throws: SASLPrep.ProhibitedCharacterError.self) {
            try SASLPrep.prepare("a" + String(Character(scalar)) + "b")
        }
        #expect(error?.scalar == scalar)
    }

    /// RFC 4013 example 7: U+0627 (an Arabic letter, RandALCat) followed by "1" must fail the bidi
    /// check of RFC 3454 section 6, which is not implemented.
    @Test func bidiCheckNotImplemented() {
        withKnownIssue("SASLprep skips the RFC 3454 bidirectional check") {
            #expect(throws: SASLPrep.ProhibitedCharacterError.self) { try SASLPrep.prepare("\u{0627}1") }
        }
    }
}
