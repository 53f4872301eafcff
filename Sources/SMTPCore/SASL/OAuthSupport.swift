import Foundation

// Checks shared by XOAUTH2 and OAUTHBEARER, whose responses separate fields with the byte 0x01.

/// Throws unless the token is non-empty visible ASCII. Bearer tokens are `b64token`s (RFC 6750
/// section 2.1), and a space, line break or 0x01 inside one would end the field early.
func validateBearerToken(_ token: Secret, mechanism: String) throws(SASLError) {
    guard !token.value.isEmpty else {
        throw SASLError(mechanism: mechanism, message: "the OAuth 2.0 token is empty. Obtain an access token first")
    }
    guard token.value.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) }) else {
        throw SASLError(
            mechanism: mechanism,
            message: "the OAuth 2.0 token contains a space, line break or other character that is not visible ASCII. "
                + "Pass the access token alone, without \"Bearer \" or surrounding whitespace")
    }
}

/// Throws when `value` contains a control character, which would break the 0x01-separated fields.
func validateOAuthField(_ value: String, field: String, mechanism: String) throws(SASLError) {
    if let scalar = value.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
        throw SASLError(
            mechanism: mechanism,
            message: "the \(field) contains the control character \(codePointLabel(scalar)), which \(mechanism) "
                + "cannot send")
    }
}

/// Decodes the error a server sends as a challenge after rejecting a token: JSON such as
/// `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}` for XOAUTH2, or the
/// error of RFC 7628 section 3.2.2 for OAUTHBEARER. Returns the text as sent, with control
/// characters replaced so that it prints on one line, or nil when the challenge is empty.
func oauthServerErrorText(_ challenge: [UInt8]) -> String? {
    let text = String(decoding: challenge, as: UTF8.self)
    var cleaned = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\t", "\r", "\n": cleaned.append(" ")
        default: cleaned.append(scalar.properties.generalCategory == .control ? "?" : scalar)
        }
    }
    let trimmed = String(cleaned).trimmingCharacters(in: .whitespaces)
    return trimmed.isEmpty ? nil : trimmed
}
