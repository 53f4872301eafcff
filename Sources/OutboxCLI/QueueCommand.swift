import Foundation
import MailStore
import Outbox
import SMTPClient

/// `outbox queue`: lists, sends and manages the messages in the store.
enum QueueCommand {
    static let help = """
        Usage: outbox queue ACTION [OPTIONS]

        Show and manage the messages in the message store, and send those waiting in
        the outbox.

        Actions:
          list [--json] [--folder NAME]
                             List the messages of every folder, or of one folder:
                             outbox, sent, failed or drafts.
          show ID            Show one message: envelope, each recipient's state and the
                             server's last reply, the attempts and the last error.
          flush [--parallel N] [--now]
                             Send every message that is due, over at most N connections
                             per server (default 4). With --now, messages waiting for a
                             retry are sent too.
          run [--parallel N] [--poll SECONDS]
                             Keep sending: flush now, then whenever a deferred message is
                             due, and at least every SECONDS (default 30) to pick up
                             messages queued meanwhile. Runs until SIGINT or SIGTERM, and
                             prints one line for each flush that did something.
          retry ID|--all     Make a message due at once; a failed message goes back to the
                             outbox, with its failed recipients to be tried again.
          hold ID            Keep a message in the outbox from being sent.
          release ID         Let a held message be sent.
          delete ID          Remove a message from the store.

        Options:
          --json             With list: print a JSON array instead of a table.
          --debug            With flush: print the SMTP conversations to standard error.
          -C, --config FILE  Read the configuration from FILE instead of the default files.
          -a, --account NAME Take the store, retry, parallel, bounce_from and log settings
                             from this account. Default: the account named default, else
                             the defaults section.
          -X FILE            With flush and run: append a line for each message tried,
                             and for run its starts, stops and errors, to FILE.
          -h, --help         Show this help.

        \(StoreOptions.help)

        A queued message is sent with the server options given to 'outbox send' when it
        was queued. A password named with --password-env is read from the environment
        of the command that sends it. A message queued with a configuration file keeps
        only the file's path and the account name: the file is read again when the
        message is sent, and a password in it is never stored.

        Exit status: 0 on success; 75 (EX_TEMPFAIL) when a flush left messages for a later
        attempt; 69 (EX_UNAVAILABLE) when a flush moved messages to Failed; 66 when the
        message id is unknown; 64 for a wrong command line; 78 for an invalid
        configuration file.
        """

    static let parser = ArgumentParser(command: "queue", options: [
        .init(names: ["--json"], takesValue: false),
        .init(names: ["--folder"], takesValue: true),
        .init(names: ["--parallel"], takesValue: true),
        .init(names: ["--now"], takesValue: false),
        .init(names: ["--poll"], takesValue: true),
        .init(names: ["--all"], takesValue: false),
        .init(names: ["--debug"], takesValue: false),
        .init(names: ["-C", "--config"], takesValue: true),
        .init(names: ["-a", "--account"], takesValue: true),
        .init(names: ["-X"], takesValue: true),
        .init(names: ["-h", "--help"], takesValue: false),
    ] + StoreOptions.options)

    static func run(_ arguments: [String], console: Console) async -> ExitCode {
        do {
            let commandLine = try parser.parse(arguments)
            if commandLine.flag("-h") {
                console.print(help)
                return .success
            }
            // The store, retry and log settings come from the account that -a names, else the
            // account named default, else the defaults section.
            let file = try AccountSettings.findFile(
                commandLine, environment: console.environment, warn: { console.printError("outbox queue: \($0)") })
            let account = try AccountSettings.select(file: file, name: commandLine.value("-a"), sender: nil)
            let options = try account.merged(into: commandLine, environment: console.environment, checkCredentials: false)
            let log = QueueLog(
                log: DeliveryLog(file: options.value("-X"), syslogFacility: account.syslogFacility, console: console))
            guard let action = options.positionals.first else {
                throw UsageError("Name an action: list, show, flush, run, retry, hold, release or delete.", command: "queue")
            }
            let rest = Array(options.positionals.dropFirst())
            return try await perform(action, rest, options: options, console: console, log: log)
        } catch let error as ConfigError {
            console.printError("outbox queue: \(error)")
            return .configuration
        } catch let error as UsageError {
            console.printError("outbox queue: \(error)")
            return .usage
        } catch let failure as SendCommand.Failure {
            console.printError("outbox queue: \(failure.message)")
            return failure.exitCode
        } catch let error as StoreError {
            console.printError("outbox queue: \(error)")
            return ExitCode(error)
        } catch {
            console.printError("outbox queue: \(error)")
            return .software
        }
    }

    private static func perform(
        _ action: String, _ arguments: [String], options: ArgumentParser.Result, console: Console, log: QueueLog
    ) async throws -> ExitCode {
        let store = try StoreOptions.openStore(options, environment: console.environment)
        switch action {
        case "list":
            try expectArguments(arguments, 0, action)
            try list(store, options: options, console: console)
        case "show":
            try expectArguments(arguments, 1, action)
            try show(store, id: arguments[0], console: console)
        case "flush":
            try expectArguments(arguments, 0, action)
            return try await flush(store, options: options, console: console, log: log)
        case "run":
            try expectArguments(arguments, 0, action)
            try await runService(store, options: options, console: console, log: log)
        case "retry":
            if options.flag("--all") {
                try expectArguments(arguments, 0, action)
                let count = try store.retryAll()
                console.printError("outbox queue: \(count) message(s) are due now; 'outbox queue flush' sends them.")
            } else {
                try expectArguments(arguments, 1, action)
                try store.retry(arguments[0])
                console.printError("outbox queue: \(arguments[0]) is due now; 'outbox queue flush' sends it.")
            }
        case "hold":
            try expectArguments(arguments, 1, action)
            try store.hold(arguments[0])
            if try store.message(id: arguments[0])?.leaseOwner != nil {
                console.printError(
                    "outbox queue: \(arguments[0]) is being sent now. The hold applies if this attempt leaves it in the outbox.")
            }
        case "release":
            try expectArguments(arguments, 1, action)
            try store.release(arguments[0])
            console.printError("outbox queue: \(arguments[0]) is due now; the next flush sends it.")
        case "delete":
            try expectArguments(arguments, 1, action)
            try store.delete(arguments[0])
        default:
            throw UsageError(
                "Unknown action \"\(UsageError.printable(action))\": use list, show, flush, run, retry, hold, release or delete.",
                command: "queue")
        }
        return .success
    }

    private static func expectArguments(_ arguments: [String], _ count: Int, _ action: String) throws {
        guard arguments.count == count else {
            let wanted = count == 0 ? "no argument" : "a message id"
            throw UsageError("'outbox queue \(action)' takes \(wanted).", command: "queue")
        }
    }

    // MARK: - Showing

    private static func list(_ store: MailStore, options: ArgumentParser.Result, console: Console) throws {
        var folder: Folder?
        if let name = options.value("--folder") {
            guard let chosen = Folder(rawValue: name.lowercased()) else {
                let names = Folder.allCases.map(\.rawValue).joined(separator: ", ")
                throw UsageError("The folder \"\(UsageError.printable(name))\" is not one of \(names).", command: "queue")
            }
            folder = chosen
        }
        let messages = try store.messages(in: folder)
        if options.flag("--json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            let data = try encoder.encode(messages.map(MessageSummary.init))
            console.print(String(decoding: data, as: UTF8.self))
            return
        }
        guard !messages.isEmpty else {
            console.print(folder.map { "The \($0) folder is empty." } ?? "The store is empty.")
            return
        }
        console.print(pad("ID", 21) + pad("FOLDER", 8) + pad("STATE", 10) + pad("SIZE", 9) + pad("TRIES", 6)
            + pad("NEXT ATTEMPT", 21) + "SENDER -> RECIPIENTS")
        for message in messages {
            var state = stateName(message)
            if message.held {
                state = "held"
            } else if message.leaseOwner != nil {
                state = "sending"
            }
            let recipients = message.recipients.map(\.address).joined(separator: ", ")
            console.print(
                pad(message.id, 21) + pad(message.folder.rawValue, 8) + pad(state, 10) + pad("\(message.size)", 9)
                    + pad("\(message.attempts)", 6) + pad(message.nextAttempt.map(format) ?? "-", 21)
                    + "<\(message.sender)> -> \(recipients)")
        }
    }

    /// Prints one message. The Subject, Message-ID and error texts come from the message and the
    /// server, so their control characters are escaped, and an escape sequence in them cannot drive
    /// the terminal.
    private static func show(_ store: MailStore, id: String, console: Console) throws {
        guard let message = try store.message(id: id) else { throw StoreError.noSuchMessage(id) }
        let printable = UsageError.printable
        var lines = [
            "Message \(message.id)",
            "  Folder:        \(message.folder)\(message.held ? " (held)" : "")",
            "  Server:        \(OutboxSender.server(message.route))",
            "  Sender:        <\(message.sender)>",
            "  Message-ID:    \(printable(message.messageID ?? "-"))",
            "  Subject:       \(printable(message.subject ?? "-"))",
            "  Size:          \(message.size) octets",
            "  Stored:        \(format(message.created))",
            "  Queued:        \(format(message.queued))",
            "  Attempts:      \(message.attempts)",
        ]
        if let next = message.nextAttempt, message.folder == .outbox {
            lines.append("  Next attempt:  \(format(next))")
        }
        if message.unknownOutcomes > 0 {
            lines.append("  Unconfirmed:   \(message.unknownOutcomes) attempt(s) ended before the server's reply to the message")
        }
        if let error = message.lastError {
            lines.append("  Last error:    \(printable(error))")
        }
        lines.append("  Content:       \(store.contentURL(id: message.id).path)")
        lines.append("  Recipients:")
        for recipient in message.recipients {
            var line = "    <\(recipient.address)>: \(recipient.state)"
            if let reply = recipient.reply {
                line += ", \(printable(reply.description))"
            } else if let error = recipient.error {
                line += ", \(printable(error))"
            }
            lines.append(line)
        }
        console.print(lines.joined(separator: "\n"))
    }

    private static func stateName(_ message: StoredMessage) -> String {
        switch message.folder {
        case .outbox: message.attempts == 0 ? "waiting" : "deferred"
        case .sent: "sent"
        case .failed: "failed"
        case .drafts: "draft"
        }
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    /// Returns a date in the local time zone, to the second, as 2026-12-04 19:30:05.
    static func format(_ date: Date) -> String {
        date.formatted(timestampStyle)
    }

    /// The style of `format`, made once. A `DateFormatter` made for each date cost about 40 µs, which
    /// was most of the time of listing a large store.
    private static let timestampStyle = Date.VerbatimFormatStyle(
        format: """
            \(year: .defaultDigits)-\(month: .twoDigits)-\(day: .twoDigits) \
            \(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased)):\(minute: .twoDigits):\(second: .twoDigits)
            """,
        locale: Locale(identifier: "en_US_POSIX"), timeZone: .current, calendar: Calendar(identifier: .gregorian))

    // MARK: - Flushing

    private static func makeSender(
        _ store: MailStore, options: ArgumentParser.Result, console: Console, transcript: TranscriptHandler?
    ) throws -> OutboxSender {
        var parallel = 4
        if let text = options.value("--parallel") {
            guard let value = Int(text), (1...64).contains(value) else {
                throw UsageError("--parallel takes a number of connections from 1 to 64, not \"\(text)\".", command: "queue")
            }
            parallel = value
        }
        return OutboxSender(
            store: store,
            configuration: .init(
                connectionsPerServer: parallel,
                retryPolicy: try StoreOptions.retryPolicy(options, command: "queue"),
                failureNotices: try StoreOptions.failureNotices(options, command: "queue")),
            transcript: transcript,
            resolveAccount: StoreOptions.resolver(
                environment: console.environment, warn: { console.printError("outbox queue: \($0)") }))
    }

    /// `outbox queue run`: flushes until SIGINT or SIGTERM.
    private static func runService(
        _ store: MailStore, options: ArgumentParser.Result, console: Console, log: QueueLog
    ) async throws {
        let poll = try ConnectionOptions.seconds(options, "--poll", command: "queue") ?? .seconds(30)
        let sender = try makeSender(store, options: options, console: console, transcript: nil)
        console.printError("outbox queue: \(format(Date())) sending from \(store.url.path), checking every \(poll)")
        log.event("queue run started: store=\(store.url.path) poll=\(poll)")
        let task = Task {
            await sender.run(pollInterval: poll) { report in
                var line = "\(format(Date())) sent \(report.sent.count), failed \(report.failed.count), "
                    + "deferred \(report.deferred.count)"
                if !report.unknownOutcomes.isEmpty {
                    line += ", \(report.unknownOutcomes.count) unconfirmed"
                }
                console.printError("outbox queue: \(line)")
                log.messages(report, store: store)
                for error in report.errors {
                    console.printError("outbox queue: \(error)")
                    log.event("error: \(error)", isError: true)
                }
            }
        }
        let restore = TerminationSignals.handle(command: "queue", console: console) { task.cancel() }
        defer { restore() }
        await task.value
        console.printError("outbox queue: \(format(Date())) stopped")
        log.event("queue run stopped")
    }

    private static func flush(
        _ store: MailStore, options: ArgumentParser.Result, console: Console, log: QueueLog
    ) async throws -> ExitCode {
        var transcript: TranscriptHandler?
        if options.flag("--debug") {
            transcript = { @Sendable line in console.writeError("\(line)\n") }
        }
        let sender = try makeSender(store, options: options, console: console, transcript: transcript)
        let bar: ProgressBar? = console.errorIsTerminal && transcript == nil ? ProgressBar(console: console) : nil
        var progress: (@Sendable (FlushProgress) -> Void)?
        if let bar {
            progress = { bar.show($0) }
        }
        let report = try await sender.flush(expedite: options.flag("--now"), progress: progress)
        bar?.end()

        log.messages(report, store: store)
        for error in report.errors {
            console.printError("outbox queue: \(error)")
            log.event("error: \(error)", isError: true)
        }
        var summary = "sent \(report.sent.count), failed \(report.failed.count), deferred \(report.deferred.count)"
        if !report.unknownOutcomes.isEmpty {
            summary += " (\(report.unknownOutcomes.count) without the server's confirmation; they are sent again)"
        }
        console.printError("outbox queue: \(summary)")
        for id in report.failed {
            if let message = try store.message(id: id) {
                console.printError("  \(id) failed: \(message.lastError ?? "see 'outbox queue show \(id)'")")
            }
        }
        if !report.failed.isEmpty { return .unavailable }
        if !report.deferred.isEmpty || !report.errors.isEmpty { return .temporaryFailure }
        return .success
    }
}

/// One line of progress on a terminal, redrawn at most ten times a second.
private final class ProgressBar: @unchecked Sendable {
    private let console: Console
    private let lock = NSLock()
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var drawn = false

    init(console: Console) {
        self.console = console
    }

    func show(_ progress: FlushProgress) {
        lock.lock()
        defer { lock.unlock() }
        let now = ContinuousClock.now
        guard now - lastDraw >= .milliseconds(100) || progress.activity == .finished else { return }
        lastDraw = now
        let done = progress.sent + progress.failed + progress.deferred
        let fraction = progress.total == 0 ? 1 : Double(done) / Double(progress.total)
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        console.writeError(
            "\r\u{1B}[K[\(bar)] \(done)/\(progress.total) sent \(progress.sent), failed \(progress.failed), "
                + "deferred \(progress.deferred); \(progress.activity)")
        drawn = true
    }

    func end() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { console.writeError("\n") }
    }
}

/// A message as `outbox queue list --json` prints it.
private struct MessageSummary: Encodable {
    struct Recipient: Encodable {
        let address: String
        let state: String
        let reply: String?
        let error: String?
    }

    let id: String
    let folder: String
    let held: Bool
    let server: String
    let sender: String
    let recipients: [Recipient]
    let messageID: String?
    let subject: String?
    let size: Int
    let created: Date
    let attempts: Int
    let nextAttempt: Date?
    let lastError: String?
    let unknownOutcomes: Int

    init(_ message: StoredMessage) {
        id = message.id
        folder = message.folder.rawValue
        held = message.held
        server = OutboxSender.server(message.route)
        sender = message.sender
        recipients = message.recipients.map {
            Recipient(address: $0.address, state: $0.state.rawValue, reply: $0.reply?.description, error: $0.error)
        }
        messageID = message.messageID
        subject = message.subject
        size = message.size
        created = message.created
        attempts = message.attempts
        nextAttempt = message.nextAttempt
        lastError = message.lastError
        unknownOutcomes = message.unknownOutcomes
    }
}
