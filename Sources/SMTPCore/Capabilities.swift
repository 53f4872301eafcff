/// The service extensions a server advertised in its reply to EHLO (RFC 5321 section 4.1.1.1).
///
/// ```
/// ehlo-ok-rsp  = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
///              / ( "250-" Domain [ SP ehlo-greet ] CRLF
///                  *( "250-" ehlo-line CRLF )
///                  "250" SP ehlo-line CRLF )
/// ehlo-line    = ehlo-keyword *( SP ehlo-param )
/// ```
/// Keywords are matched without regard to case. The pre-standard form `AUTH=LOGIN PLAIN`, which older
/// servers send beside or instead of `AUTH LOGIN PLAIN`, is read as AUTH.
public struct Capabilities: Sendable, Hashable {
    /// Each advertised keyword, upper-cased, with its parameters as sent.
    public let extensions: [String: [String]]

    /// The domain the server named on the first line of its EHLO reply.
    public let serverDomain: String

    /// Capabilities of a server that replied to HELO, or that has not been asked yet: no extensions.
    public static let none = Capabilities(extensions: [:], serverDomain: "")

    public init(extensions: [String: [String]], serverDomain: String) {
        self.extensions = extensions
        self.serverDomain = serverDomain
    }

    /// Reads the capabilities from a positive reply to EHLO.
    public init(ehloReply reply: SMTPReply) {
        var extensions: [String: [String]] = [:]
        for line in reply.lines.dropFirst() {
            var words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard !words.isEmpty else { continue }
            var keyword = words.removeFirst().uppercased()
            if keyword.hasPrefix("AUTH=") {
                words.insert(String(keyword.dropFirst("AUTH=".count)), at: 0)
                keyword = "AUTH"
            }
            extensions[keyword, default: []].append(contentsOf: words.filter { !$0.isEmpty })
        }
        let domain = reply.lines.first?.split(separator: " ").first.map(String.init) ?? ""
        self.init(extensions: extensions, serverDomain: domain)
    }

    /// Returns whether the server advertised the keyword, in any case.
    public func supports(_ keyword: String) -> Bool {
        extensions[keyword.uppercased()] != nil
    }

    public var supportsPipelining: Bool { supports("PIPELINING") }
    public var supports8BitMIME: Bool { supports("8BITMIME") }
    public var supportsSMTPUTF8: Bool { supports("SMTPUTF8") }
    public var supportsDSN: Bool { supports("DSN") }
    public var supportsEnhancedStatusCodes: Bool { supports("ENHANCEDSTATUSCODES") }
    public var supportsStartTLS: Bool { supports("STARTTLS") }

    /// Whether the server advertised SIZE, with or without a limit.
    public var supportsSize: Bool { supports("SIZE") }

    /// The largest message the server accepts, in octets, or nil when it states no limit.
    /// RFC 1870: `SIZE 0` or SIZE without a number means no fixed limit.
    public var maximumMessageSize: Int? {
        guard let value = extensions["SIZE"]?.first, let limit = Int(value), limit > 0 else { return nil }
        return limit
    }

    /// The SASL mechanisms offered with AUTH, upper-cased, in the server's order.
    public var authenticationMechanisms: [String] {
        var seen = Set<String>()
        return (extensions["AUTH"] ?? []).map { $0.uppercased() }.filter { seen.insert($0).inserted }
    }
}
