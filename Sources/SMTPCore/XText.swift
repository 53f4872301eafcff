/// The `xtext` encoding of RFC 3461 section 4, used for ORCPT and ENVID:
/// ```
/// xtext = *( xchar / hexchar )
/// xchar = any ASCII CHAR between "!" (33) and "~" (126) inclusive, except for "+" and "="
/// hexchar = "+" 2(%x30-39 / %x41-46)
/// ```
enum XText {
    static func encode(_ value: String) -> String {
        var result = ""
        for byte in value.utf8 {
            if (33...126).contains(byte), byte != UInt8(ascii: "+"), byte != UInt8(ascii: "=") {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                result += "+" + hexDigits(byte)
            }
        }
        return result
    }

    /// The `utf-8-addr-xtext` of RFC 6533 section 3, for an ORCPT address with non-ASCII characters,
    /// sent only with SMTPUTF8:
    /// ```
    /// utf-8-addr-xtext = 1*(QCHAR / EmbeddedUnicodeChar)
    /// QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e / UTF8-2 / UTF8-3 / UTF8-4
    /// EmbeddedUnicodeChar = %x5C.78 "{" HEXPOINT "}"
    /// ```
    static func encodeUTF8Address(_ value: String) -> String {
        var result = ""
        for scalar in value.unicodeScalars {
            let v = scalar.value
            let isQChar = (0x21...0x7E).contains(v) && v != 0x2B && v != 0x3D && v != 0x5C
            if isQChar || v >= 0x80 {
                result.unicodeScalars.append(scalar)
            } else {
                result += "\\x{" + String(v, radix: 16, uppercase: true) + "}"
            }
        }
        return result
    }

    private static func hexDigits(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }
}
