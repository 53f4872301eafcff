import Foundation
import SMTPCore

/// The keys a configuration file may set, and the check of each value.
enum ConfigKeys {
    enum Kind {
        case text
        case host
        case port
        case boolean
        case path
        case seconds
        case timeout
        case auth
        case fingerprint
        case trustFile
        case logfile
        case syslog
        case setFromHeader
        case dsnNotify
        case dsnReturn
        case queueMode
        case parallel
        case nonEmpty
    }

    static let kinds: [String: Kind] = [
        // msmtp's keys.
        "host": .host, "port": .port, "from": .nonEmpty, "from_full_name": .text, "user": .text,
        "password": .text, "passwordeval": .nonEmpty, "auth": .auth, "tls": .boolean, "tls_starttls": .boolean,
        "tls_trust_file": .trustFile, "tls_fingerprint": .fingerprint, "tls_certcheck": .boolean,
        "tls_cert_file": .path, "tls_key_file": .path, "domain": .host, "timeout": .timeout,
        "logfile": .logfile, "syslog": .syslog, "aliases": .path, "set_from_header": .setFromHeader,
        "remove_bcc_headers": .boolean, "undisclosed_recipients": .boolean, "dsn_notify": .dsnNotify,
        "dsn_return": .dsnReturn, "auto_from": .boolean, "maildomain": .host, "protocol": .text,
        // Outbox's own keys.
        "queue": .queueMode, "store": .path, "retry_delay": .seconds, "retry_max_delay": .seconds,
        "max_queue_time": .seconds, "parallel": .parallel, "bounce_from": .nonEmpty,
        "allow_plaintext_auth": .boolean, "tls_min_version": .text,
    ]

    /// msmtp keys that Outbox does not implement: a file that sets one is rejected rather than sent
    /// with a setting silently dropped.
    static let unsupportedMsmtpKeys: Set<String> = [
        "tls_crl_file", "tls_host_override", "tls_priorities", "tls_min_dh_prime_bits", "ntlmdomain",
        "source_ip", "proxy_host", "proxy_port", "socket", "eval", "add_missing_from_header",
        "add_missing_date_header", "allow_from_override", "logfile_time_format",
    ]

    /// Checks a value and returns it normalized: booleans as `on` or `off`, file names with `~`
    /// expanded.
    static func validate(
        _ key: String, _ value: String, home: String?, fail: (String) -> ConfigError
    ) throws(ConfigError) -> String {
        guard let kind = kinds[key] else {
            if unsupportedMsmtpKeys.contains(key) {
                throw fail("The msmtp setting '\(key)' is not supported by outbox. Remove the line.")
            }
            throw fail("Unknown setting '\(key)'. See 'man outbox' for the settings.")
        }
        func invalid(_ expected: String) -> ConfigError {
            fail("Invalid value \"\(value)\" for '\(key)': expected \(expected).")
        }
        switch kind {
        case .text:
            if key == "protocol", value != "smtp" {
                throw fail("Only 'protocol smtp' is supported, not \"\(value)\".")
            }
            if key == "tls_min_version", !["1.2", "1.3"].contains(value) { throw invalid("1.2 or 1.3") }
            return value
        case .nonEmpty:
            guard !value.isEmpty else { throw invalid("a value") }
            if key == "from", value.contains("%") {
                throw fail("The substitutions of msmtp's 'from' (%U, %H, %C, %M) are not supported: write the address.")
            }
            return value
        case .host:
            guard !value.isEmpty, !value.contains(where: { $0.isWhitespace }) else { throw invalid("a host name") }
            return value
        case .port:
            guard let port = UInt16(value), port > 0 else { throw invalid("a port number from 1 to 65535") }
            return String(port)
        case .boolean:
            switch value {
            case "", "on": return "on"
            case "off": return "off"
            default: throw invalid("on or off")
            }
        case .path:
            guard !value.isEmpty else { throw invalid("a file name") }
            return expandTilde(value, home: home)
        case .trustFile:
            return value.isEmpty || value == "system" ? "system" : expandTilde(value, home: home)
        case .logfile:
            return value.isEmpty || value == "-" ? value : expandTilde(value, home: home)
        case .seconds:
            guard let number = Double(value), number > 0, number <= 10_000_000 else {
                throw invalid("a number of seconds from 0 to 10000000")
            }
            return value
        case .timeout:
            if value == "off" { return value }
            guard let number = Int(value), number > 0, number <= 10_000_000 else {
                throw invalid("off or a number of seconds")
            }
            return value
        case .auth:
            let lowered = value.lowercased()
            if ["", "on"].contains(lowered) { return "on" }
            if lowered == "off" { return "off" }
            guard SASLMechanismName(rawValue: value.uppercased()) != nil else {
                let known = SASLMechanismName.allCases.map { $0.rawValue.lowercased() }.joined(separator: ", ")
                throw invalid("on, off or one of \(known)")
            }
            return value.uppercased()
        case .fingerprint:
            let hex = value.filter { $0 != ":" }
            guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else {
                throw invalid("a SHA-256 fingerprint of 64 hex digits, colons optional")
            }
            return value
        case .syslog:
            if ["", "on"].contains(value) { return "LOG_USER" }
            if value == "off" || syslogFacilities[value] != nil { return value }
            throw invalid("on, off, LOG_USER, LOG_MAIL or LOG_LOCAL0 to LOG_LOCAL7")
        case .setFromHeader:
            guard ["auto", "on", "off"].contains(value) else { throw invalid("auto, on or off") }
            return value
        case .dsnNotify:
            guard value == "off" || DSNOptions.notify(value) != nil else {
                throw invalid("off, never, or a comma-separated list of success, failure and delay")
            }
            return value
        case .dsnReturn:
            guard value == "off" || DSNOptions.returnContent(value) != nil else { throw invalid("off, full or headers") }
            return value
        case .queueMode:
            guard ["on", "off", "only", "hold"].contains(value) else { throw invalid("on, off, only or hold") }
            return value
        case .parallel:
            guard let number = Int(value), (1...64).contains(number) else { throw invalid("a number from 1 to 64") }
            return value
        }
    }

    /// The syslog facilities that `syslog` accepts, by name, with their values from syslog.h.
    static let syslogFacilities: [String: Int32] = [
        "LOG_USER": 1 << 3, "LOG_MAIL": 2 << 3,
        "LOG_LOCAL0": 16 << 3, "LOG_LOCAL1": 17 << 3, "LOG_LOCAL2": 18 << 3, "LOG_LOCAL3": 19 << 3,
        "LOG_LOCAL4": 20 << 3, "LOG_LOCAL5": 21 << 3, "LOG_LOCAL6": 22 << 3, "LOG_LOCAL7": 23 << 3,
    ]

    private static func expandTilde(_ path: String, home: String?) -> String {
        guard path == "~" || path.hasPrefix("~/"), let home, !home.isEmpty else { return path }
        return home + path.dropFirst()
    }
}
