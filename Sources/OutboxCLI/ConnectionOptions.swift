import Foundation
import SMTPClient
import SMTPCore

/// The options that choose a server and how to reach it, shared by the commands that connect:
/// host and port, timeouts, TLS and authentication.
enum ConnectionOptions {
    static let options: [ArgumentParser.Option] = [
        .init(names: ["--host"], takesValue: true),
        .init(names: ["--port"], takesValue: true),
        .init(names: ["--helo"], takesValue: true),
        .init(names: ["--timeout"], takesValue: true),
        .init(names: ["--deadline"], takesValue: true),
        .init(names: ["--no-pipelining"], takesValue: false),
        .init(names: ["--tls"], takesValue: true),
        .init(names: ["--tls-trust-file"], takesValue: true),
        .init(names: ["--tls-fingerprint"], takesValue: true),
        .init(names: ["--tls-certcheck"], takesValue: true),
        .init(names: ["--tls-cert-file"], takesValue: true),
        .init(names: ["--tls-key-file"], takesValue: true),
        .init(names: ["--tls-min-version"], takesValue: true),
        .init(names: ["--user"], takesValue: true),
        .init(names: ["--auth"], takesValue: true),
        .init(names: ["--password-command"], takesValue: true),
        .init(names: ["--password-env"], takesValue: true),
        .init(names: ["--password-file"], takesValue: true),
        .init(names: ["--allow-plaintext-auth"], takesValue: false),
    ]

    static let help = """
        Server:
          --host HOST        The SMTP server's host name or address. Default: localhost.
          --port PORT        The server's TCP port. Default: 25, or 465 with --tls implicit.
          --helo NAME        The name sent with EHLO. Default: this machine's host name
                             if it is fully qualified, else the local address as a literal.
          --timeout SECONDS  Wait at most this long at each step, instead of the RFC 5321
                             timeouts (5 minutes for most replies, 10 after the message).
                             Each 64 KiB block of the message must be sent within it
                             (3 minutes by default, so at least 364 octets/s).
          --deadline SECONDS Give up on the whole session after this long. Default: none.
          --no-pipelining    Send one command at a time even if the server offers PIPELINING.

        TLS:
          --tls MODE         off, opportunistic (STARTTLS when offered), starttls (STARTTLS
                             required) or implicit (TLS from the start, as on port 465).
                             Default: implicit on port 465, off for a loopback address,
                             starttls for every other server; any other --tls- option
                             turns TLS on for a loopback address too. The certificate
                             is verified in every mode, opportunistic included.
          --tls-trust-file PATH
                             Trust the CA certificates in this PEM file instead of the
                             system's CA store.
          --tls-fingerprint SHA256
                             Trust exactly the server certificate with this SHA-256
                             fingerprint (hex, colons optional), whatever its chain or name.
          --tls-certcheck off
                             Do not verify the server's certificate at all. The connection
                             is encrypted but anyone on the path can intercept it.
          --tls-cert-file PATH, --tls-key-file PATH
                             A client certificate and its key (PEM), if the server asks.
          --tls-min-version VERSION
                             1.2 or 1.3. Default: 1.2.

        Authentication:
          --user NAME        Log in as NAME. The password comes from one of:
          --password-command COMMAND
                             the first line printed by a shell command (for example
                             'pass show mail'),
          --password-env VARIABLE
                             an environment variable, or
          --password-file PATH
                             the first line of a file, which should be readable only by you.
                             A password is never taken from the command line itself.
          --auth MECHANISM   The SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN,
                             LOGIN, or XOAUTH2 and OAUTHBEARER, for which the password source
                             gives an OAuth 2.0 access token. Default: the strongest that the
                             server offers.
          --allow-plaintext-auth
                             Allow sending credentials over an unencrypted connection to a
                             server that is not on this machine.
        """

    /// Builds the client configuration from the options.
    ///
    /// - Parameters:
    ///   - password: a password from the configuration file, used when no password option is given.
    ///   - warn: receives warnings, such as a password file that others can read.
    static func configuration(
        _ options: ArgumentParser.Result, command: String, environment: [String: String], password: String? = nil,
        warn: (String) -> Void
    ) throws -> SMTPClientConfiguration {
        let host = options.value("--host") ?? "localhost"
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw UsageError("The host \"\(host)\" is not a valid host name.", command: command)
        }
        let tlsMode = try self.tlsMode(options, command: command)
        var port: UInt16 = tlsMode == .implicit ? 465 : 25
        if let text = options.value("--port") {
            guard let value = UInt16(text), value > 0 else {
                throw UsageError("The port \"\(text)\" is not a number from 1 to 65535.", command: command)
            }
            port = value
        }

        var configuration = SMTPClientConfiguration(host: host, port: port)
        configuration.tls = try tls(options, command: command)
        // A trust setting or a client certificate only makes sense over TLS, so it turns TLS on where
        // the default for a loopback server would leave it off.
        let tlsOptionGiven = ["--tls-trust-file", "--tls-fingerprint", "--tls-certcheck", "--tls-cert-file",
                              "--tls-min-version"].contains { options.value($0) != nil }
        if let tlsMode {
            configuration.tlsMode = tlsMode
        } else if tlsOptionGiven {
            configuration.tlsMode = port == 465 ? .implicit : .requiredStartTLS
        }

        if let helo = options.value("--helo") {
            do {
                _ = try SMTPCommand.ehlo(domain: helo).encoded()
            } catch {
                throw UsageError("The --helo name is invalid: \(error)", command: command)
            }
            configuration.clientName = helo
        }
        if let timeout = try seconds(options, "--timeout", command: command) {
            configuration.timeouts = .init(all: timeout)
        }
        configuration.sessionDeadline = try seconds(options, "--deadline", command: command)
        configuration.usePipelining = !options.flag("--no-pipelining")
        configuration.authentication = try authentication(
            options, command: command, environment: environment, password: password, warn: warn)
        return configuration
    }

    private static func tlsMode(_ options: ArgumentParser.Result, command: String) throws -> TLSMode? {
        guard let text = options.value("--tls") else { return nil }
        guard let mode = TLSMode(rawValue: text.lowercased()) else {
            let choices = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageError("The TLS mode \"\(text)\" is not one of \(choices).", command: command)
        }
        return mode
    }

    private static func tls(_ options: ArgumentParser.Result, command: String) throws -> TLSConfiguration {
        var tls = TLSConfiguration()
        let trustChoices = [options.value("--tls-trust-file"), options.value("--tls-fingerprint"),
                            options.value("--tls-certcheck")].compactMap { $0 }
        if trustChoices.count > 1 {
            throw UsageError(
                "Choose one of --tls-trust-file, --tls-fingerprint and --tls-certcheck off.", command: command)
        }
        if let path = options.value("--tls-trust-file") {
            try requireReadableFile(path, option: "--tls-trust-file", command: command)
            tls.trust = .certificateFile(path)
        } else if let fingerprint = options.value("--tls-fingerprint") {
            let hex = fingerprint.filter { $0 != ":" }
            guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else {
                throw UsageError(
                    "The fingerprint \"\(fingerprint)\" is not a SHA-256 fingerprint: 64 hex digits, colons optional.",
                    command: command)
            }
            tls.trust = .pinnedSHA256Fingerprint(fingerprint)
        } else if let check = options.value("--tls-certcheck") {
            switch check.lowercased() {
            case "off": tls.trust = .insecureNoVerification
            case "on": break
            default: throw UsageError("--tls-certcheck takes on or off, not \"\(check)\".", command: command)
            }
        }
        switch (options.value("--tls-cert-file"), options.value("--tls-key-file")) {
        case (let certificate?, let key?):
            try requireReadableFile(certificate, option: "--tls-cert-file", command: command)
            try requireReadableFile(key, option: "--tls-key-file", command: command)
            tls.clientCertificate = .init(certificatePath: certificate, keyPath: key)
        case (nil, nil):
            break
        default:
            throw UsageError("--tls-cert-file and --tls-key-file go together.", command: command)
        }
        if let version = options.value("--tls-min-version") {
            switch version {
            case "1.2": tls.minimumVersion = .tls1_2
            case "1.3": tls.minimumVersion = .tls1_3
            default: throw UsageError("--tls-min-version takes 1.2 or 1.3, not \"\(version)\".", command: command)
            }
        }
        return tls
    }

    private static func authentication(
        _ options: ArgumentParser.Result, command: String, environment: [String: String], password: String?,
        warn: (String) -> Void
    ) throws -> AuthenticationConfiguration? {
        var sources: [SecretSource] = [
            options.value("--password-command").map(SecretSource.command),
            options.value("--password-env").map(SecretSource.environment),
            options.value("--password-file").map(SecretSource.file),
        ].compactMap { $0 }
        if sources.isEmpty, let password {
            sources = [.configured(password)]
        }
        guard let user = options.value("--user") else {
            if !sources.isEmpty || options.value("--auth") != nil {
                throw UsageError("A password source or --auth needs --user.", command: command)
            }
            return nil
        }
        guard sources.count == 1, let source = sources.first else {
            throw UsageError(
                sources.isEmpty
                    ? "--user needs a password source: --password-command, --password-env or --password-file."
                    : "Choose one password source.",
                command: command)
        }
        if user.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw UsageError("The user name \"\(UsageError.printable(user))\" contains a control character.", command: command)
        }
        let mechanism = options.value("--auth")?.uppercased()
        if let mechanism, SASLMechanismName(rawValue: mechanism) == nil {
            let known = SASLMechanismName.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageError("The mechanism \"\(UsageError.printable(mechanism))\" is not one of \(known).", command: command)
        }
        let secret = try source.read(environment: environment, warn: warn)
        let credentials: SASLCredentials = ["XOAUTH2", "OAUTHBEARER"].contains(mechanism ?? "")
            ? .oauth2(username: user, token: secret) : .password(username: user, password: secret)
        return AuthenticationConfiguration(
            credentials: credentials, mechanism: mechanism, allowUnencrypted: options.flag("--allow-plaintext-auth"))
    }

    private static func requireReadableFile(_ path: String, option: String, command: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
              FileManager.default.isReadableFile(atPath: path)
        else {
            throw UsageError("The file \(path) given with \(option) does not exist or cannot be read.", command: command)
        }
    }

    static func seconds(_ options: ArgumentParser.Result, _ name: String, command: String) throws -> Duration? {
        guard let text = options.value(name) else { return nil }
        // The upper bound, about 115 days, keeps the conversion to milliseconds from overflowing.
        guard let value = Double(text), value > 0, value <= 10_000_000 else {
            throw UsageError(
                "The value of \(name), \"\(UsageError.printable(text))\", is not a number of seconds above 0 and at most 10000000.",
                command: command)
        }
        return .milliseconds(Int64(value * 1000))
    }
}
