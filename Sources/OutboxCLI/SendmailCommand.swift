/// `outbox sendmail`, and `outbox` run through a link named `sendmail`: the command line that
/// programs pass to sendmail and msmtp, turned into `outbox send`, `outbox queue list` (-bp) or
/// `outbox queue flush` (-q).
enum SendmailCommand {
    static let help = """
        Usage: sendmail [FLAGS] [RECIPIENT...]
               outbox sendmail [FLAGS] [RECIPIENT...]
               mailq

        Read a message from standard input and send it, taking the flags that programs
        pass to sendmail and msmtp. Every option of 'outbox send' is accepted too.

        Flags:
          -t                 Add the recipients named in the To, Cc and Bcc fields.
          -i, -oi            A line of only "." does not end the message.
          -f ADDRESS, -r ADDRESS
                             The envelope sender (MAIL FROM).
          -F NAME            The display name for a From field added to a message that
                             has none.
          -N never|LIST      Delivery status notifications: never, or a comma-separated
                             list of success, failure and delay (NOTIFY, RFC 3461).
          -R full|hdrs       Return the full message or only its header in a
                             notification (RET).
          -V ENVID           An envelope id returned in notifications (ENVID).
          -X FILE            Append a line about the message to FILE, as 'logfile' does.
          -a NAME            Use the account NAME of the configuration file.
          -C FILE            Read the configuration from FILE.
          -v                 Print the server's reply for every recipient.
          -d                 Print the SMTP conversation, with credentials redacted.
          -bm                Read a message and send it. This is the default.
          -bp                List the queued messages, as 'outbox queue list' (and mailq).
          -q                 Send the queued messages that are due, as 'outbox queue flush'.
          -ti, -it           Flags without a value may be combined.

        These legacy flags are accepted and ignored: -o followed by letters (-oem, -odi,
        -oB, -om, ...), -B TYPE, -h COUNT, -L TAG, -O OPTION, -G, -m, -n, -U. Long options of msmtp are mapped:
        --account=NAME, --file=FILE (the configuration file), --from=ADDRESS,
        --read-recipients; --read-envelope-from is the default.

        The exit status is that of 'outbox send': 0 on success, 75 (EX_TEMPFAIL) after a
        temporary failure, 78 (EX_CONFIG) for a configuration error; see 'outbox --help'.
        """

    enum Mode: Equatable {
        case send
        case listQueue
        case flushQueue
    }

    /// Flags without a value that may be combined, as in `-ti`. `G`, `m`, `n` and `U` are ignored,
    /// and `d` is msmtp's spelling of --debug.
    private static let plainFlags: Set<Character> = ["t", "i", "v", "d", "G", "m", "n", "U"]
    /// Flags that take a value, attached (`-fME`) or as the next argument.
    private static let valueFlags: Set<Character> = ["f", "r", "F", "N", "R", "V", "X", "a", "C", "B", "h", "L", "O"]
    /// Flags whose value is ignored.
    private static let ignoredValueFlags: Set<Character> = ["B", "h", "L", "O"]
    private static let ignoredPlainFlags: Set<Character> = ["G", "m", "n", "U"]

    static func run(_ arguments: [String], console: Console) async -> Int32 {
        let mode: Mode
        let translated: [String]
        do {
            (mode, translated) = try translate(arguments)
        } catch {
            console.printError("sendmail: \(error.message) Run 'outbox sendmail --help' for the flags.")
            return ExitCode.usage.rawValue
        }
        switch mode {
        case .send:
            if translated.contains("-h") || translated.contains("--help") {
                console.print(help)
                return ExitCode.success.rawValue
            }
            return await SendCommand.run(translated, console: console).rawValue
        case .listQueue:
            return await QueueCommand.run(["list"] + configurationArguments(translated), console: console).rawValue
        case .flushQueue:
            return await QueueCommand.run(["flush"] + configurationArguments(translated), console: console).rawValue
        }
    }

    /// `mailq`: lists the queue. Its flags other than -C and -a are ignored.
    static func runMailq(_ arguments: [String], console: Console) async -> Int32 {
        let translated = (try? translate(arguments).arguments) ?? []
        return await QueueCommand.run(["list"] + configurationArguments(translated), console: console).rawValue
    }

    struct TranslationError: Error {
        let message: String
    }

    /// Turns sendmail flags into `outbox send` options, and finds the mode that -bm, -bp and -q choose.
    static func translate(_ arguments: [String]) throws(TranslationError) -> (mode: Mode, arguments: [String]) {
        var mode = Mode.send
        var result: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                result += arguments[(index - 1)...]
                break
            }
            if argument.hasPrefix("--") {
                result += translateLong(argument)
                continue
            }
            guard argument.hasPrefix("-"), argument.count > 1 else {
                result.append(argument)
                continue
            }
            let flags = Array(argument.dropFirst())
            switch flags[0] {
            case "o":
                // -oi and -o i mean -i; every other -o option is ignored.
                if flags.count == 1, index < arguments.count, arguments[index] == "i" {
                    index += 1
                    result.append("-i")
                } else if flags.count == 2, flags[1] == "i" {
                    result.append("-i")
                }
                continue
            case "b":
                switch String(flags.dropFirst()) {
                case "m": mode = .send
                case "p": mode = .listQueue
                default: throw TranslationError(message: "The mode \(argument) is not supported; only -bm and -bp are.")
                }
                continue
            case "q":
                // -q with an interval runs a queue daemon in sendmail; here it flushes once.
                mode = .flushQueue
                continue
            case "h" where flags.count == 1 && index >= arguments.count:
                result.append("-h")
                continue
            default:
                break
            }
            var position = 0
            while position < flags.count {
                let flag = flags[position]
                position += 1
                if plainFlags.contains(flag) {
                    if flag == "d" {
                        result.append("--debug")
                    } else if !ignoredPlainFlags.contains(flag) {
                        result.append("-\(flag)")
                    }
                    continue
                }
                guard valueFlags.contains(flag) else {
                    throw TranslationError(message: "Unknown flag -\(flag) in \"\(argument)\".")
                }
                let value: String
                if position < flags.count {
                    value = String(flags[position...])
                } else if index < arguments.count {
                    value = arguments[index]
                    index += 1
                } else {
                    throw TranslationError(message: "The flag -\(flag) needs a value.")
                }
                if !ignoredValueFlags.contains(flag) {
                    result += ["-\(flag)", value]
                }
                break
            }
        }
        return (mode, result)
    }

    /// Maps msmtp's long options to Outbox's, and passes the others through.
    private static func translateLong(_ argument: String) -> [String] {
        let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
        let value = parts.count == 2 ? parts[1] : nil
        switch parts[0] {
        case "--account": return ["-a"] + (value.map { [$0] } ?? [])
        case "--file": return ["-C"] + (value.map { [$0] } ?? [])
        case "--from": return ["-f"] + (value.map { [$0] } ?? [])
        case "--read-recipients": return ["-t"]
        case "--read-envelope-from": return []
        default: return [argument]
        }
    }

    /// Returns the -C and -a options of a translated command line, for the queue commands.
    private static func configurationArguments(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var index = 0
        while index < arguments.count {
            if ["-C", "-a"].contains(arguments[index]), index + 1 < arguments.count {
                result += [arguments[index], arguments[index + 1]]
                index += 2
            } else {
                index += 1
            }
        }
        return result
    }
}
