import Foundation

/// The `outbox` command: dispatches to a subcommand and returns the exit status.
public enum OutboxCommand {
    public static let version = "0.1.0"

    static let usage = """
        Usage: outbox COMMAND [OPTIONS]

        Outbox sends email over SMTP.

        Commands:
          send      Send a message read from standard input or a file, as sendmail does.
          queue     List, send and manage the messages in the message store.
          capture   Run a local SMTP server that saves every message it receives to a Maildir.
          check     Connect to a server and show its extensions, TLS certificate and login
                    result, without sending mail.
          compose   Build a MIME message with attachments and print it, for 'outbox send -t'.
          sendmail  Send a message with the flags of sendmail and msmtp (-t -i -f -F -N
                    -R -V -X, -bp, -q). A link named sendmail to outbox runs this too.
          mailq     List the queue, as 'outbox queue list'. So does a link named mailq.
          help      Show help for a command: outbox help send.

        Options:
          -h, --help     Show this help.
          --version      Show the version.

        Configuration: $XDG_CONFIG_HOME/outbox/config, else ~/.msmtprc, else
        $XDG_CONFIG_HOME/msmtp/config, in msmtp's format; see 'man outbox'. Options given
        on the command line override it.

        Exit statuses follow sysexits.h: 0 success, 64 usage error, 65 invalid message,
        66 input not found, 67 recipient rejected, 68 host unknown, 69 service unavailable,
        70 internal error, 71 system error, 74 input or output error, 75 temporary failure
        (try again later), 76 protocol error, 77 login rejected, 78 configuration error.
        """

    /// Runs the command line as the program `programName` (argv[0]): through a link named
    /// `sendmail` it is `outbox sendmail`, through one named `mailq` it is `outbox queue list`.
    public static func run(
        programName: String, arguments: [String], console: Console = .standard
    ) async -> Int32 {
        let name = programName.split(separator: "/").last.map(String.init) ?? programName
        let status: Int32
        switch name {
        case "sendmail":
            // The exit status of a send reports what happened to the mail, so a failed write of
            // informational output does not change it.
            return await SendmailCommand.run(arguments, console: console)
        case "mailq":
            status = await SendmailCommand.runMailq(arguments, console: console)
        default:
            status = await run(arguments, console: console)
            if ["send", "sendmail"].contains(arguments.first) {
                return status
            }
        }
        if status == ExitCode.success.rawValue, Console.standardOutputFailure.withLock({ $0 }) != nil {
            return ExitCode.ioError.rawValue
        }
        return status
    }

    /// Runs the command line, without the program name, and returns the exit status.
    public static func run(_ arguments: [String], console: Console = .standard) async -> Int32 {
        guard let command = arguments.first else {
            console.printError(usage)
            return ExitCode.usage.rawValue
        }
        let rest = Array(arguments.dropFirst())
        switch command {
        case "send":
            return await SendCommand.run(rest, console: console).rawValue
        case "queue":
            return await QueueCommand.run(rest, console: console).rawValue
        case "capture":
            return await CaptureCommand.run(rest, console: console, environment: console.environment).rawValue
        case "check":
            return await CheckCommand.run(rest, console: console).rawValue
        case "compose":
            return await ComposeCommand.run(rest, console: console).rawValue
        case "sendmail":
            return await SendmailCommand.run(rest, console: console)
        case "mailq":
            return await SendmailCommand.runMailq(rest, console: console)
        case "help", "-h", "--help":
            switch rest.first {
            case nil:
                console.print(usage)
            case "send":
                console.print(SendCommand.help)
            case "queue":
                console.print(QueueCommand.help)
            case "capture":
                console.print(CaptureCommand.help)
            case "check":
                console.print(CheckCommand.help)
            case "compose":
                console.print(ComposeCommand.help)
            case "sendmail", "mailq":
                console.print(SendmailCommand.help)
            case let other?:
                console.printError("outbox: unknown command \"\(other)\". Run 'outbox --help' for the commands.")
                return ExitCode.usage.rawValue
            }
            return ExitCode.success.rawValue
        case "--version":
            console.print("outbox \(version)")
            return ExitCode.success.rawValue
        default:
            console.printError("outbox: unknown command \"\(command)\". Run 'outbox --help' for the commands.")
            return ExitCode.usage.rawValue
        }
    }
}
