import Foundation
import MailMessage
import MailStore
import Outbox
import SMTPClient

/// The options that choose the message store and the retry policy, shared by `outbox send` and
/// `outbox queue`, and the way a message's server options are kept in the store.
enum StoreOptions {
    static let options: [ArgumentParser.Option] = [
        .init(names: ["--store"], takesValue: true),
        .init(names: ["--retry-delay"], takesValue: true),
        .init(names: ["--retry-max-delay"], takesValue: true),
        .init(names: ["--max-queue-time"], takesValue: true),
        .init(names: ["--bounce-from"], takesValue: true),
    ]

    static let help = """
        Message store:
          --store PATH       The store's folder. Default: $OUTBOX_STORE, else
                             $XDG_DATA_HOME/outbox, else ~/.local/share/outbox.
          --retry-delay SECONDS
                             The wait after a first temporary failure; it doubles with
                             each attempt. Default: 300.
          --retry-max-delay SECONDS
                             The longest wait between attempts. Default: 3600.
          --max-queue-time SECONDS
                             Give up on a message that is still undelivered this long
                             after it was queued. Default: 432000 (5 days).
          --bounce-from ADDRESS
                             When a message fails, queue a failure notice from ADDRESS
                             to its sender, at most 5 an hour per sender. Default: no
                             notices; 'outbox queue show ID' tells why a message failed.
        """

    /// Opens the store that the options or the environment name.
    static func openStore(_ options: ArgumentParser.Result, environment: [String: String]) throws -> MailStore {
        let url: URL
        if let path = options.value("--store") ?? environment["OUTBOX_STORE"], !path.isEmpty {
            url = URL(fileURLWithPath: path)
        } else {
            url = MailStore.defaultURL(environment: environment)
        }
        do {
            return try MailStore(url: url)
        } catch {
            throw SendCommand.Failure(message: "Opening the message store failed: \(error)", exitCode: ExitCode(error))
        }
    }

    /// Returns the retry policy, from the defaults and the options.
    static func retryPolicy(_ options: ArgumentParser.Result, command: String) throws -> RetryPolicy {
        var policy = RetryPolicy()
        if let value = try ConnectionOptions.seconds(options, "--retry-delay", command: command) {
            policy.initialDelay = Self.timeInterval(value)
        }
        if let value = try ConnectionOptions.seconds(options, "--retry-max-delay", command: command) {
            policy.maximumDelay = Self.timeInterval(value)
        }
        if let value = try ConnectionOptions.seconds(options, "--max-queue-time", command: command) {
            policy.maximumAge = Self.timeInterval(value)
        }
        return policy
    }

    /// Returns the failure notice settings, or nil without --bounce-from.
    static func failureNotices(_ options: ArgumentParser.Result, command: String) throws -> FailureNotices? {
        guard let text = options.value("--bounce-from") else { return nil }
        do {
            let address = try MailAddress(parsing: text)
            try address.validateForEnvelope()
            return FailureNotices(from: address.addrSpec)
        } catch {
            throw UsageError("The --bounce-from address \"\(UsageError.printable(text))\" is invalid: \(error)", command: command)
        }
    }

    private static func timeInterval(_ duration: Duration) -> TimeInterval {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    // MARK: - Accounts

    /// The options whose values are file paths, which a later flush may resolve from another
    /// working directory.
    private static let pathOptions: Set<String> = [
        "--password-file", "--tls-trust-file", "--tls-cert-file", "--tls-key-file",
    ]

    /// Returns the server options of a command line as the account text kept with each queued
    /// message, a JSON object of option names and values. It contains the password's source, never
    /// the password. With a configuration file, `reference` adds the file's path and the account
    /// name under the keys `config` and `account`. The file is then read again at sending time, so
    /// a `password` written in it is never copied into the store.
    ///
    /// A flush can run in any working directory, so relative file paths are made absolute against
    /// `workingDirectory`, and the password command runs there: otherwise a flush started in another
    /// folder would read that folder's files or run its programs.
    static func account(
        _ options: ArgumentParser.Result, reference: [String: String]? = nil,
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) -> String {
        var chosen: [String: String] = reference ?? [:]
        if let path = chosen["config"], !path.isEmpty, !path.hasPrefix("/") {
            chosen["config"] = URL(fileURLWithPath: workingDirectory).appendingPathComponent(path).path
        }
        for option in ConnectionOptions.options {
            guard let value = options.value(option.key) else { continue }
            if pathOptions.contains(option.key), !value.isEmpty, !value.hasPrefix("/") {
                chosen[option.key] = URL(fileURLWithPath: workingDirectory).appendingPathComponent(value).path
            } else if option.key == "--password-command" {
                chosen[option.key] = "cd \(shellQuoted(workingDirectory)) && \(value)"
            } else {
                chosen[option.key] = value
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(chosen)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Returns `text` in single quotes for /bin/sh, with each single quote written as '\''.
    private static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Returns the route of a message: its server, then a hash of the whole account, so that
    /// messages share a connection only when they share every server option.
    static func route(account: String, configuration: SMTPClientConfiguration) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in account.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        return "\(host):\(configuration.port)#\(String(hash, radix: 16))"
    }

    /// Turns an account text back into the client configuration, reading the password from its
    /// source at that moment.
    static func resolver(
        environment: [String: String], warn: @escaping @Sendable (String) -> Void
    ) -> OutboxSender.AccountResolver {
        { account in
            let decoded = (try? JSONDecoder().decode([String: String].self, from: Data(account.utf8))) ?? [:]
            var arguments: [String] = []
            for (key, value) in decoded.sorted(by: { $0.key < $1.key }) {
                guard let option = ConnectionOptions.options.first(where: { $0.key == key }) else { continue }
                arguments.append(key)
                if option.takesValue {
                    arguments.append(value)
                }
            }
            var parsed = try ArgumentParser(command: "queue", options: ConnectionOptions.options).parse(arguments)
            guard let path = decoded["config"] else {
                return try ConnectionOptions.configuration(parsed, command: "queue", environment: environment, warn: warn)
            }
            let file = try ConfigFile.load(path: path, home: environment["HOME"])
            let name = decoded["account"].flatMap { $0.isEmpty ? nil : $0 }
            let settings = try AccountSettings.select(file: file, name: name, sender: nil)
            let commandLine = parsed
            parsed = try settings.merged(into: parsed, environment: environment)
            return try ConnectionOptions.configuration(
                parsed, command: "queue", environment: environment,
                password: settings.password(overriddenBy: commandLine), warn: warn)
        }
    }
}

extension ExitCode {
    /// Creates the status for a store failure.
    init(_ error: StoreError) {
        switch error {
        case .diskFull, .file: self = .ioError
        case .busy: self = .temporaryFailure
        case .database: self = .software
        case .unsafePermissions: self = .configuration
        case .noSuchMessage: self = .noInput
        case .invalidState: self = .dataError
        }
    }
}
