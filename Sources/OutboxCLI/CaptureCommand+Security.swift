import SMTPClient
import SMTPCore

/// The TLS and AUTH options of `outbox capture`.
extension CaptureCommand {
    static let securityOptions: [ArgumentParser.Option] = [
        .init(names: ["--tls-cert"], takesValue: true),
        .init(names: ["--tls-key"], takesValue: true),
        .init(names: ["--print-fingerprint"], takesValue: false),
        .init(names: ["--implicit-tls"], takesValue: false),
        .init(names: ["--no-tls"], takesValue: false),
        .init(names: ["--auth"], takesValue: true),
        .init(names: ["--auth-user"], takesValue: true),
        .init(names: ["--auth-password-file"], takesValue: true),
        .init(names: ["--auth-password-env"], takesValue: true),
        .init(names: ["--auth-required"], takesValue: false),
        .init(names: ["--allow-plaintext-auth"], takesValue: false),
    ]

    /// The host names and addresses of the generated certificate.
    static let generatedCertificateNames = ["localhost", "127.0.0.1", "::1"]

    /// The TLS and AUTH settings from the command line.
    struct SecurityOptions {
        var usesTLS = true
        var usesImplicitTLS = false
        /// The PEM certificate and key files, or nil to generate a certificate.
        var certificateFiles: (certificatePath: String, keyPath: String)?
        var printsFingerprint = false
        /// Whether AUTH accepts any credentials, as with `--auth any`.
        var acceptsAnyCredentials = false
        /// The only user name that AUTH accepts, and where its password comes from.
        var user: (name: String, passwordSource: SecretSource)?
        var requiresAuthentication = false
        var allowsPlaintextAuthentication = false

        var offersAuthentication: Bool {
            acceptsAnyCredentials || user != nil
        }
    }

    /// A failure while preparing TLS or AUTH, with the exit status it ends the command with.
    struct SetupFailure: Error {
        let message: String
        let exitCode: ExitCode
    }

    static func securityOptions(_ parsed: ArgumentParser.Result) throws(UsageError) -> SecurityOptions {
        var options = SecurityOptions()
        options.usesTLS = !parsed.flag("--no-tls")
        options.usesImplicitTLS = parsed.flag("--implicit-tls")
        options.printsFingerprint = parsed.flag("--print-fingerprint")
        switch (parsed.value("--tls-cert"), parsed.value("--tls-key")) {
        case (let certificatePath?, let keyPath?):
            options.certificateFiles = (certificatePath, keyPath)
        case (nil, nil):
            break
        default:
            throw UsageError("--tls-cert and --tls-key go together.", command: "capture")
        }
        if !options.usesTLS {
            let conflicting = ["--tls-cert", "--tls-key", "--print-fingerprint", "--implicit-tls"]
                .filter { parsed.flag($0) }
            if let option = conflicting.first {
                throw UsageError("\(option) needs TLS, which --no-tls turns off.", command: "capture")
            }
        }

        if let mode = parsed.value("--auth") {
            guard mode.lowercased() == "any" else {
                throw UsageError(
                    "--auth takes \"any\", not \"\(mode)\". To accept one user only, use --auth-user.",
                    command: "capture")
            }
            options.acceptsAnyCredentials = true
        }
        options.user = try authenticationUser(parsed)
        if options.acceptsAnyCredentials && options.user != nil {
            throw UsageError("Choose one of --auth any and --auth-user.", command: "capture")
        }
        options.requiresAuthentication = parsed.flag("--auth-required")
        options.allowsPlaintextAuthentication = parsed.flag("--allow-plaintext-auth")
        if !options.offersAuthentication {
            for option in ["--auth-required", "--allow-plaintext-auth"] where parsed.flag(option) {
                throw UsageError("\(option) needs --auth any or --auth-user.", command: "capture")
            }
        }
        if options.offersAuthentication && !options.usesTLS && !options.allowsPlaintextAuthentication {
            throw UsageError(
                "With --no-tls, AUTH is never offered unless --allow-plaintext-auth is given too.", command: "capture")
        }
        return options
    }

    private static func authenticationUser(
        _ parsed: ArgumentParser.Result
    ) throws(UsageError) -> (name: String, passwordSource: SecretSource)? {
        let sources: [SecretSource] = [
            parsed.value("--auth-password-file").map(SecretSource.file),
            parsed.value("--auth-password-env").map(SecretSource.environment),
        ].compactMap { $0 }
        guard let name = parsed.value("--auth-user") else {
            if !sources.isEmpty {
                throw UsageError("A password source needs --auth-user.", command: "capture")
            }
            return nil
        }
        guard !name.isEmpty, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw UsageError("The --auth-user name is empty or contains a control character.", command: "capture")
        }
        guard sources.count == 1, let source = sources.first else {
            throw UsageError(
                "--auth-user needs exactly one of --auth-password-file and --auth-password-env.", command: "capture")
        }
        return (name, source)
    }

    /// Loads or generates the certificate, reads the password and sets both in `configuration`.
    /// Returns the certificate's SHA-256 fingerprint, or nil without TLS.
    static func configureSecurity(
        _ configuration: inout CaptureServer.Configuration, options: SecurityOptions,
        environment: [String: String], console: Console
    ) throws(SetupFailure) -> String? {
        var fingerprint: String?
        if options.usesTLS {
            let context = try makeTLSContext(options)
            configuration.tls = context
            configuration.usesImplicitTLS = options.usesImplicitTLS
            fingerprint = context.certificateInfo?.sha256Fingerprint
        }

        if options.acceptsAnyCredentials {
            configuration.security.credentials = .any
        } else if let user = options.user {
            do {
                let password = try user.passwordSource.read(environment: environment) { console.printError($0) }
                configuration.security.credentials = .user(user.name, password: password)
            } catch let failure as SendCommand.Failure {
                throw SetupFailure(message: failure.message, exitCode: failure.exitCode)
            } catch {
                throw SetupFailure(message: "Reading the password failed: \(error)", exitCode: .configuration)
            }
        }
        if !SASLServerExchange.isCRAMMD5Available {
            configuration.security.mechanisms.removeAll { $0 == "CRAM-MD5" }
        }
        configuration.security.requiresAuthentication = options.requiresAuthentication
        configuration.security.allowsPlaintextAuthentication = options.allowsPlaintextAuthentication
        return fingerprint
    }

    private static func makeTLSContext(_ options: SecurityOptions) throws(SetupFailure) -> TLSServerContext {
        if let files = options.certificateFiles {
            do {
                return try TLSServerContext(certificatePath: files.certificatePath, keyPath: files.keyPath)
            } catch {
                throw SetupFailure(
                    message: "Loading the TLS certificate \(files.certificatePath) and key \(files.keyPath) failed: "
                        + "\(error). Give PEM files, the key unencrypted and matching the certificate.",
                    exitCode: .configuration)
            }
        }
        do {
            let certificate = try SelfSignedCertificate.generate(
                commonName: "localhost", alternativeNames: generatedCertificateNames)
            return try TLSServerContext(
                certificatePEM: certificate.certificatePEM, privateKeyPEM: certificate.privateKeyPEM)
        } catch {
            throw SetupFailure(message: "Generating the TLS certificate failed: \(error)", exitCode: .software)
        }
    }
}
