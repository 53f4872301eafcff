import COpenSSL
import Foundation

/// The details of an X.509 certificate that users need to recognise it or to trust it on purpose.
public struct CertificateInfo: Sendable, Hashable, CustomStringConvertible {
    /// The subject's distinguished name in RFC 2253 form, such as `CN=mail.example.com,O=Example`.
    public var subject: String
    /// The issuer's distinguished name in RFC 2253 form.
    public var issuer: String
    /// The start of the validity period.
    public var notBefore: Date
    /// The end of the validity period.
    public var notAfter: Date
    /// The SHA-256 digest of the DER certificate as colon-separated upper-case hex, `AB:CD:…`, the form
    /// that `openssl x509 -fingerprint -sha256` prints.
    public var sha256Fingerprint: String
    public var subjectAlternativeNames: [SubjectAlternativeName]

    public init(
        subject: String,
        issuer: String,
        notBefore: Date,
        notAfter: Date,
        sha256Fingerprint: String,
        subjectAlternativeNames: [SubjectAlternativeName]
    ) {
        self.subject = subject
        self.issuer = issuer
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.sha256Fingerprint = sha256Fingerprint
        self.subjectAlternativeNames = subjectAlternativeNames
    }

    /// One line with the subject, issuer, validity in UTC and fingerprint, for error messages and logs.
    public var description: String {
        var text = "subject \"\(subject)\", issuer \"\(issuer)\", "
        text += "valid from \(CertificateInfo.formatUTC(notBefore)) until \(CertificateInfo.formatUTC(notAfter)), "
        if !subjectAlternativeNames.isEmpty {
            let names = subjectAlternativeNames.map(\.description).joined(separator: ", ")
            text += "alternative names \(names), "
        }
        text += "SHA-256 fingerprint \(sha256Fingerprint)"
        return text
    }

    /// Formats `date` as `2026-01-31 23:59:59 UTC`.
    static func formatUTC(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let day = "\(parts.tm_year + 1900)-\(twoDigits(parts.tm_mon + 1))-\(twoDigits(parts.tm_mday))"
        return "\(day) \(twoDigits(parts.tm_hour)):\(twoDigits(parts.tm_min)):\(twoDigits(parts.tm_sec)) UTC"
    }

    private static func twoDigits(_ value: Int32) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }
}

/// One entry of a certificate's subject alternative name extension (RFC 5280 section 4.2.1.6).
public enum SubjectAlternativeName: Sendable, Hashable, CustomStringConvertible {
    case dnsName(String)
    /// An IPv4 or IPv6 address in its usual text form, such as `127.0.0.1` or `::1`.
    case ipAddress(String)
    case email(String)
    case uri(String)
    /// Another kind of name, such as a directory name, with OpenSSL's type number.
    case other(type: Int32)

    /// The `openssl x509 -text` form, such as `DNS:mail.example.com` or `IP:127.0.0.1`.
    public var description: String {
        switch self {
        case let .dnsName(name): "DNS:\(name)"
        case let .ipAddress(address): "IP:\(address)"
        case let .email(address): "email:\(address)"
        case let .uri(uri): "URI:\(uri)"
        case let .other(type): "othername type \(type)"
        }
    }
}

extension CertificateInfo {
    /// Reads the details of an OpenSSL `X509` certificate without taking ownership of it.
    init(certificate: OpaquePointer) {
        self.init(
            subject: CertificateInfo.distinguishedName(X509_get_subject_name(certificate)),
            issuer: CertificateInfo.distinguishedName(X509_get_issuer_name(certificate)),
            notBefore: CertificateInfo.date(X509_get0_notBefore(certificate)),
            notAfter: CertificateInfo.date(X509_get0_notAfter(certificate)),
            sha256Fingerprint: CertificateFingerprint.format(CertificateFingerprint.sha256(of: certificate)),
            subjectAlternativeNames: CertificateInfo.alternativeNames(of: certificate)
        )
    }

    private static func distinguishedName(_ name: OpaquePointer?) -> String {
        guard let name else {
            return ""
        }
        // XN_FLAG_RFC2253 without ASN1_STRFLGS_ESC_MSB, so that UTF-8 names stay readable instead of \XX
        // escapes. Swift does not import the composite macro, so its parts from x509.h are listed here.
        let stringFlags = ASN1_STRFLGS_ESC_2253 | ASN1_STRFLGS_ESC_CTRL | ASN1_STRFLGS_UTF8_CONVERT
            | ASN1_STRFLGS_DUMP_UNKNOWN | ASN1_STRFLGS_DUMP_DER
        let nameFlags = XN_FLAG_SEP_COMMA_PLUS | XN_FLAG_DN_REV | XN_FLAG_FN_SN | XN_FLAG_DUMP_UNKNOWN_FIELDS
        let flags = UInt(stringFlags) | UInt(nameFlags)
        return MemoryBIO.text { bio in
            X509_NAME_print_ex(bio, name, 0, flags)
        }
    }

    /// Converts an ASN1_TIME to a date. A time that OpenSSL cannot parse becomes the Unix epoch.
    private static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date {
        var parts = tm()
        guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else {
            return Date(timeIntervalSince1970: 0)
        }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }

    private static func alternativeNames(of certificate: OpaquePointer) -> [SubjectAlternativeName] {
        guard let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) else {
            return []
        }
        let stack = OpaquePointer(raw)
        defer {
            GENERAL_NAMES_free(stack)
        }

        var names: [SubjectAlternativeName] = []
        for index in 0..<OPENSSL_sk_num(stack) {
            guard let entry = OPENSSL_sk_value(stack, index) else {
                continue
            }
            let generalName = entry.assumingMemoryBound(to: GENERAL_NAME.self).pointee
            names.append(alternativeName(generalName))
        }
        return names
    }

    private static func alternativeName(_ name: GENERAL_NAME) -> SubjectAlternativeName {
        switch name.type {
        case GEN_DNS:
            return .dnsName(stringValue(name.d.dNSName))
        case GEN_EMAIL:
            return .email(stringValue(name.d.rfc822Name))
        case GEN_URI:
            return .uri(stringValue(name.d.uniformResourceIdentifier))
        case GEN_IPADD:
            return .ipAddress(ipAddressText(name.d.iPAddress))
        default:
            return .other(type: name.type)
        }
    }

    private static func bytes(_ string: UnsafeMutablePointer<ASN1_STRING>?) -> [UInt8] {
        guard let string, let data = ASN1_STRING_get0_data(string) else {
            return []
        }
        return Array(UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(string))))
    }

    /// Decodes a name from the certificate, escaping control characters: the certificate comes from
    /// the server, and its names are printed in messages and by `outbox check`, where an escape
    /// sequence could rewrite the user's terminal.
    private static func stringValue(_ string: UnsafeMutablePointer<ASN1_STRING>?) -> String {
        String(decoding: bytes(string), as: UTF8.self).unicodeScalars
            .map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? $0.escaped(asASCII: true) : String($0) }
            .joined()
    }

    /// Formats the 4 or 16 bytes of an IP address entry with inet_ntop(3), or as hex for other lengths.
    private static func ipAddressText(_ string: UnsafeMutablePointer<ASN1_STRING>?) -> String {
        let address = bytes(string)
        let family: Int32
        switch address.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return address.map { String($0, radix: 16) }.joined(separator: ":")
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(family, address, &text, socklen_t(text.count)) != nil else {
            return "invalid address"
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
