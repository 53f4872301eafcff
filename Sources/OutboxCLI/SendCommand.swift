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
          -f ADDRESS         The envelope sender (MAIL FROM). "<>" sends with a null sender.
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

        Exit status: 0 when every recipient was accepted; 75 (EX_TEMPFAIL) after a
        temporary failure; 67 (EX_NOUSER) when a recipient was rejected; 77 (EX_NOPERM)
        when the login was rejected; 65 (EX_DATAERR) for an invalid message; 64 (EX_USAGE)
        for a wrong command line; 78 (EX_CONFIG) when the password cannot be read; see
        'outbox --help' for the rest.
        """

    static let parser = ArgumentParser(command: "send", options: [
        .init(names: ["-t"], takesValue: false),
        .init(names: ["-i", "-oi"], takesValue: false),
        .init(names: ["-f"], takesValue: true),
        .init(names: ["--file"], takesValue: true),
        .init(names: ["-v", "--verbose"], takesValue: false),
        .init(names: ["--debug"], takesValue: false),
        .init(names: ["--queue"], takesValue: false),
        .init(names: ["--queue-only"], takesValue: false),
        .init(names: ["--hold"], takesValue: false),
        .init(names: ["-h", "--help"], takesValue: false),
    ] + ConnectionOptions.options + StoreOptions.options)

    /// A failure that ends the command with a message and an exit status.
    struct Failure: Error {
        let message: String
        let exitCode: ExitCode
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
        } catch {
            console.printError("outbox send: \(error)")
            return .software
        }
    }

    private static func send(options: ArgumentParser.Result, console: Console) async throws -> ExitCode {
        let configuration = try ConnectionOptions.configuration(
            options, command: "send", environment: console.environment,
            warn: { console.printError("outbox send: \($0)") })
        let spool = try readInput(options, console: console)
        let prepared = try PreparedMessage(spool: spool, options: options)

        var transcript: TranscriptHandler?
        if options.flag("--debug") {
            transcript = { @Sendable line in console.writeError("\(line)\n") }
        }
        if let mode = try queueMode(options) {
            return try await QueuedSend(
                options: options, configuration: configuration, transcript: transcript, console: console
            ).run(prepared, mode: mode)
        }
        let result: TransactionResult
        do {
            result = try await deliver(prepared, configuration: configuration, transcript: transcript)
        } catch {
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
        return report(result, verbose: options.flag("-v"), console: console)
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

    private static func queueMode(_ options: ArgumentParser.Result) throws -> QueuedSend.Mode? {
        let chosen: [QueuedSend.Mode] = [
            options.flag("--queue") ? .now : nil, options.flag("--queue-only") ? .later : nil,
            options.flag("--hold") ? .held : nil,
        ].compactMap { $0 }
        guard chosen.count <= 1 else {
            throw UsageError("Choose one of --queue, --queue-only and --hold.", command: "send")
        }
        let storeOptionGiven = StoreOptions.options.contains { options.value($0.key) != nil }
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
