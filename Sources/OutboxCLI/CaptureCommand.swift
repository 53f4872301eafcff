import Dispatch
import Foundation
import Glibc
import MailMessage

/// `outbox capture`: a local SMTP server that saves every message it receives to a Maildir, for
/// developing and testing programs that send email.
enum CaptureCommand {
    static let help = """
        Usage: outbox capture [OPTIONS]

        Run an SMTP server on this machine that saves every message it receives to a
        Maildir instead of delivering it, for developing and testing programs that send
        email. It listens on a loopback address only, so no other machine can reach it,
        and runs until SIGINT or SIGTERM, or until --max-messages messages are saved.

        Options:
          --port PORT          The TCP port to listen on. Default: 0, a free port chosen
                               by the system and printed at start.
          --listen ADDRESS     The loopback address to listen on: 127.0.0.1 (the default),
                               another address in 127.0.0.0/8, or ::1.
          --maildir DIR        The Maildir to save messages in, created with mode 0700 if
                               missing. Default: $XDG_DATA_HOME/outbox/capture, or
                               ~/.local/share/outbox/capture.
          --max-messages N     Exit after saving N messages. Default: no limit.
          --max-size OCTETS    The largest message accepted, in octets. Default: 26214400
                               (25 MiB). A larger message is rejected with 552.
          -h, --help           Show this help.

        TLS:
          --tls-cert FILE, --tls-key FILE
                               The certificate chain (PEM, the server's certificate first)
                               and its unencrypted private key (PEM). Default: a self-signed
                               ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1,
                               generated at start, valid for 365 days and kept in memory.
          --print-fingerprint  Print the certificate's SHA-256 fingerprint at start, for
                               clients to pin, as with 'outbox send --tls-fingerprint'.
          --implicit-tls       Start TLS as soon as a client connects, as on port 465,
                               instead of offering STARTTLS.
          --no-tls             Offer no TLS at all and generate no certificate.

        Authentication (AUTH PLAIN, LOGIN and CRAM-MD5; not offered without one of these):
          --auth any           Accept any user name with any password.
          --auth-user NAME     Accept only NAME, with the password from one of:
          --auth-password-file FILE
                               the first line of FILE, which should be readable only by you,
          --auth-password-env VARIABLE
                               an environment variable.
          --auth-required      Reject MAIL with 530 until the client has authenticated.
          --allow-plaintext-auth
                               Offer AUTH before TLS too. Without it, AUTH is offered only
                               after STARTTLS (or with --implicit-tls), and gets 538 before.

        When the server is ready, it prints one line to standard output:
          outbox capture: listening on 127.0.0.1:PORT, saving to DIR
        With --print-fingerprint, this line comes first:
          outbox capture: TLS certificate SHA-256 fingerprint AB:CD:...:EF
        and then one line for each message saved:
          TIME from <SENDER> to <RECIPIENT>, ... size OCTETS [tls VERSION] [user NAME]
            subject "SUBJECT" file PATH
        where tls shows the TLS version, and user the name the client authenticated as;
        a password is never shown. The subject is shown as written in the header,
        without decoding, and cut to 60 characters. Errors and the final count go to
        standard error.

        The server offers PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES,
        STARTTLS (unless --implicit-tls or --no-tls) and AUTH as configured above.
        After STARTTLS the server discards the EHLO and any AUTH, as RFC 3207 requires.
        A command pipelined behind STARTTLS is rejected: with 554 and a closed
        connection when it arrives with STARTTLS, or by the failing TLS handshake when
        it arrives later. Each file is the message as received, with its CRLF line
        endings, after added Return-Path and Received fields. Lines of more than 998
        octets are rejected, as RFC 5322 requires.

        Exit status: 0 after SIGINT, SIGTERM or --max-messages; 64 (EX_USAGE) for a wrong
        command line; 70 (EX_SOFTWARE) when the certificate cannot be generated; 71
        (EX_OSERR) when the port cannot be opened; 74 (EX_IOERR) when the Maildir cannot
        be created; 78 (EX_CONFIG) when the certificate, key or password cannot be read.
        """

    static let parser = ArgumentParser(command: "capture", options: [
        .init(names: ["--port"], takesValue: true),
        .init(names: ["--listen"], takesValue: true),
        .init(names: ["--maildir"], takesValue: true),
        .init(names: ["--max-messages"], takesValue: true),
        .init(names: ["--max-size"], takesValue: true),
        .init(names: ["-h", "--help"], takesValue: false),
    ] + securityOptions)

    /// The maximum `--max-size`: 1 GiB, because a session keeps the message in memory until it is saved.
    static let maxMessageSizeLimit = 1 << 30

    /// The settings from the command line.
    struct Options {
        var address = LoopbackAddress.ipv4
        var port: UInt16 = 0
        var maildirPath: String
        var maxMessages: Int?
        var maxMessageSize = CaptureSession.Limits().maxMessageSize
        var security = SecurityOptions()
    }

    /// Runs the server until it is stopped and returns the exit status.
    ///
    /// - Parameters:
    ///   - environment: the variables that locate the default Maildir.
    ///   - handlesSignals: whether SIGINT and SIGTERM stop the server. While it runs, their previous
    ///     handlers are replaced, so tests that run the command in process pass false.
    static func run(
        _ arguments: [String], console: Console,
        environment: [String: String] = ProcessInfo.processInfo.environment, handlesSignals: Bool = true
    ) async -> ExitCode {
        let options: Options
        do {
            let parsed = try parser.parse(arguments)
            if parsed.flag("-h") {
                console.print(help)
                return .success
            }
            options = try Self.options(parsed, environment: environment)
        } catch {
            console.printError("outbox capture: \(error)")
            return .usage
        }

        let maildir: Maildir
        do {
            maildir = try Maildir(creatingAt: options.maildirPath)
        } catch {
            console.printError("outbox capture: \(error)")
            return .ioError
        }

        var configuration = CaptureServer.Configuration(address: options.address)
        configuration.port = options.port
        configuration.maxMessages = options.maxMessages
        configuration.limits.maxMessageSize = options.maxMessageSize
        let fingerprint: String?
        do {
            fingerprint = try configureSecurity(
                &configuration, options: options.security, environment: environment, console: console)
        } catch {
            console.printError("outbox capture: \(error.message)")
            return error.exitCode
        }
        let server: CaptureServer
        do {
            server = try CaptureServer(
                configuration: configuration, maildir: maildir,
                onMessageSaved: { saved in console.print(summaryLine(for: saved)) },
                log: { line in console.printError(line) })
        } catch {
            console.printError("outbox capture: \(error).\(advice(for: error))")
            return .osError
        }

        let restoreSignals = handlesSignals
            ? TerminationSignals.handle(command: "capture", console: console) { server.stop() } : nil
        // The listener already accepts into its backlog, so a client that reads the port from this line
        // can connect before the accept thread starts.
        if let fingerprint, options.security.printsFingerprint {
            console.print("outbox capture: TLS certificate SHA-256 fingerprint \(fingerprint)")
        }
        console.print("outbox capture: listening on \(server.endpoint), saving to \(maildir.path)")
        server.start()
        await server.waitUntilFinished()
        restoreSignals?()
        console.printError("outbox capture: stopped after saving \(server.savedMessageCount) message(s)")
        return .success
    }

    // MARK: - Options

    static func options(_ parsed: ArgumentParser.Result, environment: [String: String]) throws(UsageError) -> Options {
        if let argument = parsed.positionals.first {
            throw UsageError("outbox capture takes no arguments, but got \"\(argument)\".", command: "capture")
        }
        var options = Options(maildirPath: "")
        if let text = parsed.value("--listen") {
            do {
                options.address = try LoopbackAddress(parsing: text)
            } catch {
                throw UsageError("The --listen address is invalid: \(error)", command: "capture")
            }
        }
        if let text = parsed.value("--port") {
            guard let port = UInt16(text) else {
                throw UsageError("The port \"\(text)\" is not a number from 0 to 65535.", command: "capture")
            }
            options.port = port
        }
        if let text = parsed.value("--max-messages") {
            guard let count = Int(text), count > 0 else {
                throw UsageError(
                    "The value of --max-messages, \"\(text)\", is not a positive number.", command: "capture")
            }
            options.maxMessages = count
        }
        if let text = parsed.value("--max-size") {
            guard let size = Int(text), (1...maxMessageSizeLimit).contains(size) else {
                throw UsageError(
                    "The value of --max-size, \"\(text)\", is not a number of octets from 1 to \(maxMessageSizeLimit).",
                    command: "capture")
            }
            options.maxMessageSize = size
        }
        if let path = parsed.value("--maildir") {
            guard !path.isEmpty else {
                throw UsageError("The --maildir path is empty.", command: "capture")
            }
            options.maildirPath = path
        } else {
            options.maildirPath = try defaultMaildirPath(environment: environment)
        }
        options.security = try securityOptions(parsed)
        return options
    }

    /// Returns `$XDG_DATA_HOME/outbox/capture`, or `$HOME/.local/share/outbox/capture` when XDG_DATA_HOME
    /// is unset or relative. The XDG Base Directory Specification requires a relative path to be ignored.
    static func defaultMaildirPath(environment: [String: String]) throws(UsageError) -> String {
        if let dataHome = environment["XDG_DATA_HOME"], dataHome.hasPrefix("/") {
            return dataHome + "/outbox/capture"
        }
        if let home = environment["HOME"], home.hasPrefix("/") {
            return home + "/.local/share/outbox/capture"
        }
        throw UsageError(
            "Neither XDG_DATA_HOME nor HOME is an absolute path, so there is no default Maildir. "
                + "Give one with --maildir.",
            command: "capture")
    }

    private static func advice(for error: SystemCallError) -> String {
        switch error.errorNumber {
        case EADDRINUSE:
            " Choose another port with --port, or --port 0 for a free one."
        case EACCES:
            " Ports below 1024 need privileges; choose --port 0 or a port from 1024."
        case EADDRNOTAVAIL:
            " The address is not configured on this machine; try 127.0.0.1."
        default:
            ""
        }
    }

    // MARK: - Output

    /// Returns the line printed for a saved message, such as
    /// `2025-06-03T14:05:09+02:00 from <a@example.test> to <b@example.test> size 512 tls TLSv1.3 user dev
    /// subject "Hi" file /…/new/…`, where the `tls` and `user` parts appear only for messages received under
    /// TLS or after AUTH.
    static func summaryLine(for saved: CaptureServer.SavedMessage) -> String {
        let message = saved.message
        let recipients = message.recipients.map { "<\(printable($0))>" }.joined(separator: ", ")
        let subject = subjectPreview(of: message.content)
        var line = "\(timestamp(saved.date)) from <\(printable(message.sender))> to \(recipients) "
            + "size \(message.content.count) "
        if let version = message.tlsProtocolVersion {
            line += "tls \(version) "
        }
        if let user = message.authenticatedUser {
            // The user name comes from the client, so it is quoted when it contains a space.
            let name = printable(user)
            line += name.contains(" ") || name.isEmpty ? "user \"\(name)\" " : "user \(name) "
        }
        return line + "subject \"\(subject)\" file \(saved.path)"
    }

    /// Returns the Subject field's raw value, unfolded and without control characters. A longer value is
    /// cut to `maxLength` characters, the last of them "…". Encoded words (RFC 2047) are left as written,
    /// and a message without a Subject field gives an empty string.
    static func subjectPreview(of content: [UInt8], maxLength: Int = 60) -> String {
        guard let header = try? HeaderSection(parsing: content),
              let field = header.firstField(named: "Subject")
        else {
            return ""
        }
        let text = printable(String(decoding: field.unfoldedValue, as: UTF8.self))
        guard text.count > maxLength else {
            return text
        }
        return text.prefix(maxLength - 1) + "…"
    }

    /// Removes control characters (Unicode category Cc, which includes the C1 controls that some
    /// terminals obey), turning tabs into spaces, so that text from a client cannot drive the terminal.
    static func printable(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar == "\t" {
                result.append(" ")
            } else if scalar.properties.generalCategory != .control {
                result.append(scalar)
            }
        }
        return String(result)
    }

    /// Formats a date as ISO 8601 in the local time zone, such as `2025-06-03T14:05:09+02:00`.
    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone.current
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ssXXXXX"
        return formatter.string(from: date)
    }
}
