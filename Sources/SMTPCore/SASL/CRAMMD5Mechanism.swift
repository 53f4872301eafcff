/// CRAM-MD5 (RFC 2195): the server sends a challenge, and the client responds with the user name, a
/// space and the lower-case hex HMAC-MD5 of the challenge keyed with the password.
///
/// The password is not sent, but a recorded exchange allows an offline dictionary attack, and the
/// server must store the password or an equivalent. Prefer SCRAM when the server offers it.
public struct CRAMMD5Mechanism: SASLMechanism, CustomReflectable {
    public let name = "CRAM-MD5"
    public let username: String
    private let password: Secret
    private var respondedToChallenge = false

    public init(username: String, password: Secret) {
        self.username = username
        self.password = password
    }

    public mutating func initialResponse() throws(SASLError) -> [UInt8]? {
        nil
    }

    public mutating func response(to challenge: [UInt8]) throws(SASLError) -> [UInt8] {
        guard !respondedToChallenge else {
            throw SASLError(
                mechanism: name,
                message: "the server sent a second challenge, but CRAM-MD5 responds to exactly one")
        }
        guard !challenge.isEmpty else {
            throw SASLError(
                mechanism: name, message: "the server's challenge is empty, but RFC 2195 requires a timestamp")
        }
        respondedToChallenge = true
        guard let digest = SASLCrypto.hmac(.md5, key: Array(password.value.utf8), message: challenge) else {
            throw SASLError(
                mechanism: name,
                message: "OpenSSL could not compute HMAC-MD5. MD5 is unavailable when only the FIPS provider is "
                    + "loaded, so configure another mechanism")
        }
        return Array(username.utf8) + [UInt8(ascii: " ")] + Array(lowercaseHex(digest).utf8)
    }

    public var description: String { "CRAM-MD5 for \(username)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}

private func lowercaseHex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}
