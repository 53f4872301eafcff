import Foundation
import MailMessage
import SMTPClient
import SMTPCore

/// `outbox send`: sends one RFC 5322 message to an SMTP server, with sendmail's conventions for
/// input, envelope and exit statuses.
enum SendCommand {
    static let help = """
        Usage: outbox send [OPTIONS] [RECIPIENT...]

        Send the RFC 5322 message read from standard input (or --file) to an SMTP server.
        Recipients are the arguments, each an address or a comma-separated list; with -t
        they also come from the message's To, Cc and Bcc header fields. A Bcc field is
        never sent. The envelope sender is the -f address, or else the address in the
        Sender or From field.

        Options:
          -t                 Add the recipients named in the To, Cc and Bcc fields.
          -i, -oi            Read to the end of input: a line of only "." does not end
                             the message. Without it, such a line ends standard input,
                             as with sendmail.
          -f ADDRESS, -r ADDRESS
                             The envelope sender (MAIL FROM). "<>" sends with a null sender.
                             Default: the account's 'from', else the Sender or From field.
          -F NAME            The display name of the From field added to a message that
                             has none (set_from_header auto).
          -a, --account NAME Use the account NAME of the configuration file. Default: the
                             first account whose 'from' matches the envelope sender, else
                             the account named default.
          -C, --config FILE  Read the configuration from FILE. Default: the first that
                             exists of $XDG_CONFIG_HOME/outbox/config, ~/.msmtprc and
                             $XDG_CONFIG_HOME/msmtp/config ($XDG_CONFIG_HOME defaults to
                             ~/.config).
          -N never|LIST      Ask for delivery status notifications (RFC 3461 NOTIFY):
                             never, or a comma-separated list of success, failure and
                             delay. Default: the server's choice.
          -R full|hdrs       Return the full message or only its header section in a
                             notification (RET).
          -V ENVID           An envelope id, up to 100 printable ASCII characters, that
                             notifications quote (ENVID). -N, -R and -V are sent only
                             when the server offers DSN.
          -X FILE            Append one line about the message to FILE, as 'logfile'.
          --file PATH        Read the message from PATH instead of standard input.
          --queue            Store the message in the outbox first, then try to send it.
                             After a temporary failure it stays queued, to be sent by
                             'outbox queue flush' or with the next message that gets
                             through, and the exit status is 0.
          --queue-only       Store the message in the outbox without trying to send it.
          --hold             Store the message in the outbox, held until
                             'outbox queue release ID'.
          -v, --verbose      Print the server's reply for every recipient.
          --debug            Print the SMTP conversation to standard error, with
                             credentials redacted.
          -h, --help         Show this help.

        \(ConnectionOptions.help)

        \(StoreOptions.help)

        Options given here override the configuration file; 'man outbox' lists its
        settings.

        Exit status: 0 when every recipient was accepted; 75 (EX_TEMPFAIL) after a
        temporary failure; 67 (EX_NOUSER) when a recipient was rejected; 77 (EX_NOPERM)
        when the login was rejected; 65 (EX_DATAERR) for an invalid message; 64 (EX_USAGE)
        for a wrong command line; 78 (EX_CONFIG) for an invalid configuration file or a
        password that cannot be read; see
        'outbox --help' for the rest.
        """

    static let parser = ArgumentParser(command: "send", options: [
        .init(names: ["-t"], takesValue: false),
        .init(names: ["-i", "-oi"], takesValue: false),
        .init(names: ["-f", "-r"], takesValue: true),
        .init(names: ["-F"], takesValue: true),
        .init(names: ["-a", "--account"], takesValue: true),
        .init(names: ["-C", "--config"], takesValue: true),
        .init(names: ["-N"], takesValue: true),
        .init(names: ["-R"], takesValue: true),
        .init(names: ["-V"], takesValue: true),
        .init(names: ["-X"], takesValue: true),
        .init(names: ["--file"], takesValue: true),
        .init(names: ["-v", "--verbose"], takesValue: false),
        .init(names: ["--debug"], takesValue: false),
        .init(names: ["--queue"], takesValue: false),
        .init(names: ["--queue-only"], takesValue: false),
        .init(names: ["--hold"], takesValue: false),
        .init(names: ["-h", "--help"], takesValue: false),
    ] + ConnectionOptions.options + StoreOptions.options)

    /// A failure that ends the command with a message and an exit status.
    struct Failure: Error, CustomStringConvertible {
        let message: String
        let exitCode: ExitCode

        var description: String { message }
    }

    static func run(_ arguments: [String], console: Console) async -> ExitCode {
        do {
            let options = try parser.parse(arguments)
            if options.flag("-h") {
                console.print(help)
                return .success
            }
            return try await send(options: options, console: console)
        } catch let error as UsageError {
            console.printError("outbox send: \(error)")
            return .usage
        } catch let failure as Failure {
            console.printError("outbox send: \(failure.message)")
            return failure.exitCode
        } catch let error as ConfigError {
            console.printError("outbox send: \(error)")
            return .configuration
        } catch {
            console.printError("outbox send: \(error)")
            return .software
        }
    }

    private static func send(options commandLine: ArgumentParser.Result, console: Console) async throws -> ExitCode {
        let warn = { @Sendable (text: String) in console.printError("outbox send: \(text)") }
        let file = try AccountSettings.findFile(commandLine, environment: console.environment, warn: warn)
        let spool = try readInput(commandLine, console: console)
        let account = try AccountSettings.select(
            file: file, name: commandLine.value("-a"),
            sender: PreparedMessage.senderCandidate(spool: spool, options: commandLine))
        var options = try account.merged(into: commandLine, environment: console.environment)
        let aliases = try account.value("aliases").map { path throws(ConfigError) in try Aliases(path: path) }
        if let aliases {
            options = options.replacingPositionals(aliases.expand(options.positionals))
        }
        let configuration = try ConnectionOptions.configuration(
            options, command: "send", environment: console.environment,
            password: account.password(overriddenBy: commandLine), warn: warn)
        let mode = try queueMode(options, commandLine: commandLine)
        var policy = headerPolicy(options, account)
        policy.addDateAndMessageID = mode != nil
        let prepared = try PreparedMessage(spool: spool, options: options, headerPolicy: policy, aliases: aliases)
        let log = DeliveryLog(file: options.value("-X"), syslogFacility: account.syslogFacility, console: console)

        var transcript: TranscriptHandler?
        if options.flag("--debug") {
            transcript = { @Sendable line in console.writeError("\(line)\n") }
        }
        if let mode {
            return try await QueuedSend(
                options: options, configuration: configuration, transcript: transcript, console: console,
                commandLine: commandLine, account: account, log: log
            ).run(prepared, mode: mode)
        }
        var entry = DeliveryLogEntry(configuration: configuration, prepared: prepared, size: spool.size)
        let result: TransactionResult
        do {
            result = try await deliver(prepared, configuration: configuration, transcript: transcript)
        } catch {
            entry.smtpStatus = error.reply?.code
            entry.smtpMessage = error.reply?.description
            entry.error = "\(error)"
            entry.exitCode = ExitCode(error)
            if log.isEnabled { log.write(entry.line, isError: true, command: "send") }
            console.printError("outbox send: \(describe(error, configuration: configuration))")
            // The message of allRecipientsRejected already lists every rejection.
            if error.kind != .allRecipientsRejected {
                for recipient in error.recipientResults where !recipient.isAccepted {
                    console.printError("  <\(recipient.address)>: \(recipient.reply)")
                }
            }
            if let hint = ErrorHints.hint(for: error) {
                console.printError("outbox send: \(hint)")
            }
            return ExitCode(error)
        }
        let status = report(result, verbose: options.flag("-v"), console: console)
        entry.smtpStatus = result.reply.code
        entry.smtpMessage = result.reply.description
        entry.exitCode = status
        if status != .success {
            entry.error = result.rejected.map { "<\($0.address)>: \($0.reply)" }.joined(separator: "; ")
        }
        if log.isEnabled { log.write(entry.line, isError: status != .success, command: "send") }
        return status
    }

    /// Returns the header changes that the account's settings and -F ask for.
    private static func headerPolicy(
        _ options: ArgumentParser.Result, _ account: AccountSettings
    ) -> PreparedMessage.HeaderPolicy {
        var policy = PreparedMessage.HeaderPolicy()
        policy.fullName = options.value("-F")
        // Unlike msmtp, whose default is auto, a message is sent as it is unless -F or the file
        // requests a From field, so that the bytes that arrive are the bytes that were given.
        policy.fromHeader = policy.fullName == nil ? .off : .auto
        if let value = account.value("set_from_header") {
            policy.fromHeader = PreparedMessage.HeaderPolicy.FromHeader(rawValue: value) ?? .auto
        }
        policy.removeBcc = account.value("remove_bcc_headers") != "off"
        policy.undisclosedRecipients = account.value("undisclosed_recipients") == "on"
        return policy
    }

    /// Connects, sends the message and quits. QUIT is sent after a rejection too, so that the server
    /// ends the session cleanly.
    private static func deliver(
        _ prepared: PreparedMessage, configuration: SMTPClientConfiguration, transcript: TranscriptHandler?
    ) async throws(SMTPError) -> TransactionResult {
        let connection = try await SMTPConnection.open(configuration, transcript: transcript)
        let result: Result<TransactionResult, SMTPError>
        do {
            result = .success(try await connection.send(prepared.message, envelope: prepared.envelope))
        } catch {
            result = .failure(error)
        }
        await connection.quit()
        return try result.get()
    }

    /// Reports recipients the server rejected, and every reply with -v. A rejected recipient makes the
    /// exit status EX_NOUSER, or EX_TEMPFAIL when every rejection was temporary.
    private static func report(_ result: TransactionResult, verbose: Bool, console: Console) -> ExitCode {
        if verbose {
            for recipient in result.accepted {
                console.print("<\(recipient.address)>: \(recipient.reply)")
            }
            console.print("message: \(result.reply)")
        }
        let rejected = result.rejected
        guard !rejected.isEmpty else { return .success }
        console.printError(
            "outbox send: the message was sent to \(result.accepted.count) recipient(s), "
                + "but the server rejected \(rejected.count):")
        for recipient in rejected {
            console.printError("  <\(recipient.address)>: \(recipient.reply)")
        }
        return rejected.allSatisfy { $0.reply.isTransientNegative } ? .temporaryFailure : .noUser
    }

    /// Returns the mode that --queue, --queue-only, --hold or the file's `queue` setting chooses.
    /// The store options given on the command line need one of them; a file may set them for
    /// when it is used.
    private static func queueMode(
        _ options: ArgumentParser.Result, commandLine: ArgumentParser.Result
    ) throws -> QueuedSend.Mode? {
        let chosen: [QueuedSend.Mode] = [
            options.flag("--queue") ? .now : nil, options.flag("--queue-only") ? .later : nil,
            options.flag("--hold") ? .held : nil,
        ].compactMap { $0 }
        guard chosen.count <= 1 else {
            throw UsageError("Choose one of --queue, --queue-only and --hold.", command: "send")
        }
        let storeOptionGiven = StoreOptions.options.contains { commandLine.value($0.key) != nil }
        if chosen.isEmpty, storeOptionGiven {
            throw UsageError(
                "--store and the retry options need --queue, --queue-only or --hold.", command: "send")
        }
        return chosen.first
    }

    private static func describe(_ error: SMTPError, configuration: SMTPClientConfiguration) -> String {
        // A connection error names the server already.
        error.phase == .connect ? "\(error)" : "sending to \(configuration.host) port \(configuration.port): \(error)"
    }

    // MARK: - Input

    private static func readInput(_ options: ArgumentParser.Result, console: Console) throws -> MessageSpool {
        guard let path = options.value("--file") else {
            return try spool(console.standardInput, dotEndsInput: !options.flag("-i"))
        }
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw Failure(message: "The message file \(path) does not exist.", exitCode: .noInput)
        }
        if attributes[.type] as? FileAttributeType == .typeDirectory {
            throw Failure(message: "The message file \(path) is a directory.", exitCode: .noInput)
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw Failure(message: "The message file \(path) cannot be read.", exitCode: .noInput)
        }
        defer { try? handle.close() }
        // A regular file can be read twice, so it is sent in place; a pipe or device is copied.
        if attributes[.type] as? FileAttributeType == .typeRegular {
            do {
                return try MessageSpool.existingFile(URL(fileURLWithPath: path))
            } catch {
                throw Failure(message: "Reading the message file \(path) failed: \(error.localizedDescription)", exitCode: .ioError)
            }
        }
        return try spool(handle, dotEndsInput: false)
    }

    private static func spool(_ input: FileHandle, dotEndsInput: Bool) throws -> MessageSpool {
        do {
            return try MessageSpool.spool(from: input, dotEndsInput: dotEndsInput)
        } catch let error as MessageSpool.WriteError {
            throw Failure(message: error.description, exitCode: .ioError)
        } catch {
            throw Failure(message: "Reading the message failed: \(error.localizedDescription)", exitCode: .ioError)
        }
    }
}
