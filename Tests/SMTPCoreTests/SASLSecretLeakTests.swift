import Testing
@testable import SMTPCore

/// Drives every mechanism with known secrets, through success and failure paths, and checks that no
/// description, debug description, dump or error message reveals a secret, its base64 form, or
/// the base64 form of a response that carries it.
struct SASLSecretLeakTests {
    static let password = "Canary-Pa55word-7fQ"
    static let token = "ya29.Canary-Token-9xK"
    static let username = "tim@example.com"
    static let host = "smtp.example.com"
    static let port: UInt16 = 587

    /// Strings that must not appear: the secrets and their base64 at each of the three alignments
    /// (the middle of the encoding, which does not depend on the neighboring bytes), and the
    /// base64 of the PLAIN, XOAUTH2 and OAUTHBEARER responses.
    static let forbidden: [String] = {
        var strings: [String] = []
        for secret in [password, token] {
            strings.append(secret)
            for offset in 0..<3 {
                let encoded = SASLBase64.encode([UInt8](repeating: 0x41, count: offset) + Array(secret.utf8))
                strings.append(String(encoded.dropFirst(4).dropLast(4)))
            }
        }
        strings.append(SASLBase64.encode([0] + Array(username.utf8) + [0] + Array(password.utf8)))
        strings.append(SASLBase64.encode(Array("user=\(username)\u{01}auth=Bearer \(token)\u{01}\u{01}".utf8)))
        strings.append(SASLBase64.encode(Array(
            "n,a=\(username),\u{01}host=\(host)\u{01}port=\(port)\u{01}auth=Bearer \(token)\u{01}\u{01}".utf8)))
        return strings
    }()

    /// Renders a value in every form that a log, a crash report or an error message could show.
    private static func renderings(of value: Any) -> [String] {
        var dumped = ""
        dump(value, to: &dumped)
        return [String(describing: value), String(reflecting: value), dumped]
    }

    /// Returns the `SASLError` that `body` throws, or nil when it throws nothing or another error.
    private static func capture(_ body: () throws -> Void) -> SASLError? {
        do {
            try body()
            return nil
        } catch {
            return error as? SASLError
        }
    }

    /// Runs each mechanism, collecting the mechanisms, the errors and the credentials.
    private static func driveEverything() throws -> (values: [Any], errors: [SASLError]) {
        var values: [Any] = []
        var errors: [SASLError?] = []
        let passwordCredentials = SASLCredentials.password(username: username, password: Secret(password))
        let tokenCredentials = SASLCredentials.oauth2(username: username, token: Secret(token))
        values += [passwordCredentials, tokenCredentials, Secret(password), Secret(token)]

        var plain = try PlainMechanism(username: username, password: Secret(password))
        _ = try plain.initialResponse()
        errors.append(capture { _ = try plain.response(to: []) })
        errors.append(capture { _ = try PlainMechanism(username: username, password: Secret(password + "\0")) })
        values.append(plain)

        var login = LoginMechanism(username: username, password: Secret(password))
        _ = try login.response(to: Array("Username:".utf8))
        _ = try login.response(to: Array("Password:".utf8))
        errors.append(capture { _ = try login.response(to: Array("Password:".utf8)) })
        values.append(login)

        var cram = CRAMMD5Mechanism(username: username, password: Secret(password))
        errors.append(capture { _ = try cram.response(to: []) })
        _ = try cram.response(to: Array("<1.2@example.test>".utf8))
        errors.append(capture { _ = try cram.response(to: Array("<1.2@example.test>".utf8)) })
        values.append(cram)

        for variant in SCRAMMechanism.Variant.allCases {
            let serverFirst = Array("r=abcdefserver,s=QSXCR+Q6sek8bf92,i=4096".utf8)
            func started() throws -> SCRAMMechanism {
                var mechanism = try SCRAMMechanism(
                    variant: variant, username: username, password: Secret(password), clientNonce: "abcdef")
                _ = try mechanism.initialResponse()
                return mechanism
            }
            var forged = try started()
            _ = try forged.response(to: serverFirst)
            errors.append(capture { _ = try forged.response(to: Array("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=".utf8)) })
            errors.append(capture { try forged.verifyCompletion() })
            values.append(forged)

            var rejected = try started()
            _ = try rejected.response(to: serverFirst)
            errors.append(capture { _ = try rejected.response(to: Array("e=invalid-proof".utf8)) })
            values.append(rejected)

            var unverified = try started()
            _ = try unverified.response(to: serverFirst)
            errors.append(capture { try unverified.verifyCompletion() })
            values.append(unverified)

            var hostile = try started()
            let costlyServerFirst = Array("r=abcdefserver,s=QSXCR+Q6sek8bf92,i=99999999".utf8)
            errors.append(capture { _ = try hostile.response(to: costlyServerFirst) })
            errors.append(capture { _ = try hostile.response(to: serverFirst) })
            values.append(hostile)

            errors.append(capture {
                _ = try SCRAMMechanism(variant: variant, username: username, password: Secret(password + "\u{7}"))
            })
        }

        var xoauth2 = try XOAuth2Mechanism(username: username, token: Secret(token))
        _ = try xoauth2.initialResponse()
        _ = try xoauth2.response(to: Array(#"{"status":"401","schemes":"bearer"}"#.utf8))
        errors.append(capture { _ = try xoauth2.response(to: []) })
        errors.append(capture { _ = try XOAuth2Mechanism(username: username, token: Secret(token + " x")) })
        values.append(xoauth2)

        var bearer = try OAuthBearerMechanism(username: username, token: Secret(token), host: host, port: port)
        _ = try bearer.initialResponse()
        _ = try bearer.response(to: Array(#"{"status":"invalid_token"}"#.utf8))
        errors.append(capture { _ = try bearer.response(to: []) })
        errors.append(capture {
            _ = try OAuthBearerMechanism(username: username, token: Secret(token + "\n"), host: host, port: port)
        })
        values.append(bearer)

        errors.append(capture { _ = try selectSASLMechanism(offered: ["PLAIN"], credentials: tokenCredentials) })
        errors.append(capture { _ = try selectSASLMechanism(offered: ["XOAUTH2"], credentials: passwordCredentials) })
        errors.append(capture {
            _ = try selectSASLMechanism(offered: ["PLAIN"], credentials: passwordCredentials, configured: "LOGIN")
        })
        errors.append(capture {
            _ = try selectSASLMechanism(offered: ["PLAIN"], credentials: passwordCredentials, configured: "XOAUTH2")
        })
        for name in ["SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"] {
            values.append(try selectSASLMechanism(offered: [name], credentials: passwordCredentials))
        }
        for name in ["OAUTHBEARER", "XOAUTH2"] {
            values.append(
                try selectSASLMechanism(offered: [name], credentials: tokenCredentials, host: host, port: port))
        }

        let thrown = errors.compactMap { $0 }
        #expect(thrown.count == errors.count, "every failure path threw a SASLError")
        return (values, thrown)
    }

    @Test func forbiddenStringsAreDistinct() {
        #expect(Self.forbidden.allSatisfy { $0.count >= 12 })
    }

    @Test func noRenderingRevealsSecret() throws {
        let (values, errors) = try Self.driveEverything()
        let texts = (values + errors.map { $0 as Any }).flatMap(Self.renderings) + errors.map(\.message)
        #expect(texts.count > 100)
        for text in texts {
            for forbidden in Self.forbidden {
                #expect(!text.contains(forbidden), "a description reveals a secret or its base64 form")
            }
        }
    }
}
