import Foundation
import SMTPClient
import SMTPCore

/// `outbox check`: connects to a server and shows what it offers, the TLS session and certificate,
/// and whether the login works. It sends no mail.
enum CheckCommand {
    static let help = """
        Usage: outbox check [OPTIONS]

        Connect to an SMTP server and show its greeting, the extensions it offers before
        and after TLS, the TLS version, cipher and certificate, the AUTH mechanisms, and,
        when a user is given, whether the login succeeds. No mail is sent; the session
        ends with QUIT.

        Options:
          --debug            Print the SMTP conversation to standard error, with
                             credentials redacted.
          -a, --account NAME Check the account NAME of the configuration file. Default:
                             the account named default.
          -C, --config FILE  Read the configuration from FILE; see 'outbox send --help'.
          -h, --help         Show this help.

        \(ConnectionOptions.help)

        Exit status: 0 when the connection, TLS and login (if asked for) succeed; otherwise
        the status 'outbox send' would exit with, such as 75 for a temporary failure.
        """

    static let parser = ArgumentParser(command: "check", options: [
        .init(names: ["--debug"], takesValue: false),
        .init(names: ["-h", "--help"], takesValue: false),
        .init(names: ["-C", "--config"], takesValue: true),
        .init(names: ["-a", "--account"], takesValue: true),
    ] + ConnectionOptions.options)

    static func run(_ arguments: [String], console: Console) async -> ExitCode {
        var options: ArgumentParser.Result
        let configuration: SMTPClientConfiguration
        do {
            options = try parser.parse(arguments)
            if options.flag("-h") {
                console.print(help)
                return .success
            }
            guard options.positionals.isEmpty else {
                throw UsageError("outbox check takes no arguments, but got \"\(options.positionals[0])\".", command: "check")
            }
            let warn = { (text: String) in console.printError("outbox check: \(text)") }
            let commandLine = options
            let file = try AccountSettings.findFile(commandLine, environment: console.environment, warn: warn)
            let account = try AccountSettings.select(file: file, name: commandLine.value("-a"), sender: nil)
            options = try account.merged(into: commandLine, environment: console.environment)
            configuration = try ConnectionOptions.configuration(
                options, command: "check", environment: console.environment,
                password: account.password(overriddenBy: commandLine), warn: warn)
        } catch let error as ConfigError {
            console.printError("outbox check: \(error)")
            return .configuration
        } catch let error as UsageError {
            console.printError("outbox check: \(error)")
            return .usage
        } catch let failure as SendCommand.Failure {
            console.printError("outbox check: \(failure.message)")
            return failure.exitCode
        } catch {
            console.printError("outbox check: \(error)")
            return .software
        }

        var transcript: TranscriptHandler?
        if options.flag("--debug") {
            transcript = { @Sendable line in console.writeError("\(line)\n") }
        }
        console.print("Server: \(configuration.host) port \(configuration.port)")
        let connection: SMTPConnection
        do {
            connection = try await SMTPConnection.open(configuration, transcript: transcript)
        } catch {
            console.printError("outbox check: \(error)")
            if let hint = ErrorHints.hint(for: error) {
                console.printError("outbox check: \(hint)")
            }
            return ExitCode(error)
        }
        report(connection, configuration: configuration, console: console)
        await connection.quit()
        return .success
    }

    private static func report(_ connection: SMTPConnection, configuration: SMTPClientConfiguration, console: Console) {
        console.print("Address: \(connection.remoteAddress)")
        if let greeting = connection.greeting {
            console.print("Greeting: \(greeting)")
        }
        if let before = connection.capabilitiesBeforeTLS {
            console.print("Extensions before TLS: \(describe(before))")
        }
        if let tls = connection.tlsSession {
            console.print("TLS: \(tls.protocolVersion), cipher \(tls.cipher)")
            if let certificate = tls.peerCertificate {
                console.print("Certificate:")
                console.print("  Subject: \(certificate.subject)")
                console.print("  Issuer: \(certificate.issuer)")
                console.print("  Valid: \(format(certificate.notBefore)) to \(format(certificate.notAfter))")
                console.print("  SHA-256 fingerprint: \(certificate.sha256Fingerprint)")
                if !certificate.subjectAlternativeNames.isEmpty {
                    let names = certificate.subjectAlternativeNames.map(String.init(describing:))
                    console.print("  Names: \(names.joined(separator: ", "))")
                }
            }
            let label = connection.capabilitiesBeforeTLS == nil ? "Extensions" : "Extensions after TLS"
            console.print("\(label): \(describe(connection.capabilities))")
        } else {
            console.print("TLS: none")
            console.print("Extensions: \(describe(connection.capabilities))")
        }
        let mechanisms = connection.capabilities.authenticationMechanisms
        console.print("AUTH mechanisms: \(mechanisms.isEmpty ? "none offered" : mechanisms.joined(separator: " "))")
        if let authentication = configuration.authentication {
            let mechanism = connection.authenticationMechanism ?? "?"
            console.print("Login: succeeded as \(authentication.credentials.username) with \(mechanism)")
        } else {
            console.print("Login: not tried (no --user given)")
        }
    }

    private static func describe(_ capabilities: Capabilities) -> String {
        let keywords = capabilities.extensions.keys.sorted().map { keyword in
            let parameters = capabilities.extensions[keyword] ?? []
            return parameters.isEmpty ? keyword : "\(keyword) \(parameters.joined(separator: " "))"
        }
        return keywords.isEmpty ? "none" : keywords.joined(separator: ", ")
    }

    private static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
