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
          --host HOST        The SMTP server's host name or address. Default: localhost.
          --port PORT        The server's TCP port. Default: 25.
          --helo NAME        The name sent with EHLO. Default: this machine's host name
                             if it is fully qualified, else the local address as a literal.
          --timeout SECONDS  Wait at most this long at each step, instead of the RFC 5321
                             timeouts (5 minutes for most replies, 10 after the message).
          --deadline SECONDS Give up on the whole session after this long. Default: none.
          --no-pipelining    Send one command at a time even if the server offers PIPELINING.
          -v, --verbose      Print the server's reply for every recipient.
          --debug            Print the SMTP conversation to standard error.
          -h, --help         Show this help.

        Exit status: 0 when every recipient was accepted; 75 (EX_TEMPFAIL) after a
        temporary failure; 67 (EX_NOUSER) when a recipient was rejected; 65 (EX_DATAERR)
        for an invalid message; 64 (EX_USAGE) for a wrong command line; see 'outbox --help'.
        """

    static let parser = ArgumentParser(command: "send", options: [
        .init(names: ["-t"], takesValue: false),
        .init(names: ["-i", "-oi"], takesValue: false),
        .init(names: ["-f"], takesValue: true),
        .init(names: ["--file"], takesValue: true),
        .init(names: ["--host"], takesValue: true),
        .init(names: ["--port"], takesValue: true),
        .init(names: ["--helo"], takesValue: true),
        .init(names: ["--timeout"], takesValue: true),
        .init(names: ["--deadline"], takesValue: true),
        .init(names: ["--no-pipelining"], takesValue: false),
        .init(names: ["-v", "--verbose"], takesValue: false),
        .init(names: ["--debug"], takesValue: false),
        .init(names: ["-h", "--help"], takesValue: false),
    ])

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
        let configuration = try clientConfiguration(options)
        let spool = try readInput(options, console: console)
        let prepared = try PreparedMessage(spool: spool, options: options)

        var transcript: TranscriptHandler?
        if options.flag("--debug") {
            transcript = { @Sendable line in console.writeError("\(line)\n") }
        }
        let result: TransactionResult
        do {
            result = try await deliver(prepared, configuration: configuration, transcript: transcript)
        } catch {
            console.printError("outbox send: \(describe(error, configuration: configuration))")
            for recipient in error.recipientResults where !recipient.isAccepted {
                console.printError("  <\(recipient.address)>: \(recipient.reply)")
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

    private static func describe(_ error: SMTPError, configuration: SMTPClientConfiguration) -> String {
        "sending to \(configuration.host) port \(configuration.port): \(error)"
    }

    // MARK: - Options

    private static func clientConfiguration(_ options: ArgumentParser.Result) throws -> SMTPClientConfiguration {
        let host = options.value("--host") ?? "localhost"
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw UsageError("The host \"\(host)\" is not a valid host name.", command: "send")
        }
        var port: UInt16 = 25
        if let text = options.value("--port") {
            guard let value = UInt16(text), value > 0 else {
                throw UsageError("The port \"\(text)\" is not a number from 1 to 65535.", command: "send")
            }
            port = value
        }
        var configuration = SMTPClientConfiguration(host: host, port: port)
        if let helo = options.value("--helo") {
            configuration.clientName = helo
        }
        if let timeout = try seconds(options, "--timeout") {
            configuration.timeouts = .init(all: timeout)
        }
        configuration.sessionDeadline = try seconds(options, "--deadline")
        configuration.usePipelining = !options.flag("--no-pipelining")
        return configuration
    }

    private static func seconds(_ options: ArgumentParser.Result, _ name: String) throws -> Duration? {
        guard let text = options.value(name) else { return nil }
        guard let value = Double(text), value > 0, value.isFinite else {
            throw UsageError("The value of \(name), \"\(text)\", is not a positive number of seconds.", command: "send")
        }
        return .milliseconds(Int64(value * 1000))
    }

    private static func readInput(_ options: ArgumentParser.Result, console: Console) throws -> MessageSpool {
        let input: FileHandle
        var dotEndsInput = !options.flag("-i")
        if let path = options.value("--file") {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
                throw Failure(message: "The message file \(path) \(reason).", exitCode: .noInput)
            }
            input = handle
            dotEndsInput = false
        } else {
            input = console.standardInput
        }
        do {
            return try MessageSpool.spool(from: input, dotEndsInput: dotEndsInput)
        } catch {
            throw Failure(message: "Reading the message failed: \(error.localizedDescription)", exitCode: .ioError)
        }
    }
}
