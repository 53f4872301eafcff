import Foundation
import MailMessage

/// `outbox compose`: builds a MIME message from options, files and the text on standard input, and
/// prints it, in the manner of mutt's and mail's options.
enum ComposeCommand {
    static let help = """
        Usage: outbox compose [OPTIONS] RECIPIENT...

        Compose a MIME message and print it to standard output (or --output). The text
        body is read from standard input as UTF-8. Recipients are the arguments, each an
        address or a comma-separated list, and go into the To field.

        The output keeps the Bcc field, so that it can be piped into 'outbox send -t',
        which takes the recipients from To, Cc and Bcc and never sends the Bcc field:

          echo 'See attached.' | outbox compose -s Report -a report.pdf \\
              --from me@example.org you@example.org | outbox send -t --host ...

        Use --no-bcc-field when another program sends the output as it is.

        Options:
          -s SUBJECT           The subject.
          -a FILE              Attach FILE, with a content type guessed from its
                               extension (application/octet-stream when unknown).
                               Repeat for more files.
          --html FILE          Add the HTML in FILE (UTF-8) as an alternative to the text.
          --inline FILE        Add the image FILE for the HTML to show inline, with the
                               Content-ID of its file name: <img src="cid:logo.png">.
                               The name must be ASCII without spaces. Repeat for
                               more images.
          --from ADDRESS       The From address. Default: the EMAIL environment variable.
          -c, --cc ADDRESS     Add Cc recipients. Repeat or separate with commas.
          -b, --bcc ADDRESS    Add Bcc recipients. Repeat or separate with commas.
          --reply-to ADDRESS   Set the Reply-To field.
          --charset NAME       The charset of the text and HTML, such as ISO-8859-1 or
                               KOI8-R. Default: UTF-8. Text that NAME cannot represent
                               is sent as UTF-8, with a warning.
          --encoding MODE      mime (default): attachments as MIME parts. uuencode:
                               attachments uuencoded after the text, for old readers.
          --receipt            Ask for a read receipt (Disposition-Notification-To).
          --priority LEVEL     high, normal or low (X-Priority and Importance fields).
          --no-bcc-field       Leave the Bcc field out of the output.
          -o, --output PATH    Write the message to PATH instead of standard output.
          -h, --help           Show this help.

        The message is 7-bit: text that is not ASCII is quoted-printable or base64, header
        fields use RFC 2047 and RFC 2231 encodings, and domains are written in A-labels
        (xn--...). Only an address whose local part is not ASCII stays UTF-8, and sending
        to or from it needs a server that offers SMTPUTF8.

        Exit status: 0 on success; 64 (EX_USAGE) for a wrong command line or an invalid
        address; 65 (EX_DATAERR) when the text is not UTF-8 or a value is invalid;
        66 (EX_NOINPUT) when a file cannot be read; 74 (EX_IOERR) when writing fails.
        """

    static let parser = ArgumentParser(command: "compose", options: [
        .init(names: ["-s"], takesValue: true),
        .init(names: ["-a"], takesValue: true),
        .init(names: ["--html"], takesValue: true),
        .init(names: ["--inline"], takesValue: true),
        .init(names: ["--from"], takesValue: true),
        .init(names: ["-c", "--cc"], takesValue: true),
        .init(names: ["-b", "--bcc"], takesValue: true),
        .init(names: ["--reply-to"], takesValue: true),
        .init(names: ["--charset"], takesValue: true),
        .init(names: ["--encoding"], takesValue: true),
        .init(names: ["--receipt"], takesValue: false),
        .init(names: ["--priority"], takesValue: true),
        .init(names: ["--no-bcc-field"], takesValue: false),
        .init(names: ["-o", "--output"], takesValue: true),
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
            return try compose(options: options, console: console)
        } catch let error as UsageError {
            console.printError("outbox compose: \(error)")
            return .usage
        } catch let failure as Failure {
            console.printError("outbox compose: \(failure.message)")
            return failure.exitCode
        } catch {
            console.printError("outbox compose: \(error)")
            return .software
        }
    }

    private static func compose(options: ArgumentParser.Result, console: Console) throws -> ExitCode {
        let builder = try makeBuilder(options: options, console: console)
        let message: ComposedMessage
        do {
            message = try builder.build()
        } catch {
            switch error {
            case .fileUnreadable: throw Failure(message: error.description, exitCode: .noInput)
            case .unknownCharset: throw UsageError(error.description, command: "compose")
            case .invalidHeader, .missingFrom: throw Failure(message: error.description, exitCode: .dataError)
            }
        }
        for warning in message.warnings {
            console.printError("outbox compose: warning: \(warning)")
        }
        let includingBcc = !options.flag("--no-bcc-field")
        do {
            if let path = options.value("-o") {
                // Opened in place, as the shell's '>' opens it. FileManager.createFile would write a new
                // file and rename it over the path, replacing a symbolic link or a device such as /dev/stdout.
                let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
                guard descriptor >= 0 else {
                    throw Failure(
                        message: "The output file \(path) cannot be opened for writing: \(String(cString: strerror(errno))).",
                        exitCode: .ioError)
                }
                let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: false)
                defer { try? handle.close() }
                try message.write(includingBcc: includingBcc, to: handle)
            } else {
                // The message is 7-bit ASCII apart from UTF-8 local parts, so each chunk is valid UTF-8
                // text, because the writer never splits a header field between chunks.
                try message.write(includingBcc: includingBcc) { chunk in
                    console.writeOutput(String(decoding: chunk, as: UTF8.self))
                }
            }
        } catch let error as MessageBuildError {
            throw Failure(message: error.description, exitCode: .noInput)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(message: "Writing the message failed: \(error.localizedDescription)", exitCode: .ioError)
        }
        return .success
    }

    private static func makeBuilder(options: ArgumentParser.Result, console: Console) throws -> MessageBuilder {
        var builder = MessageBuilder()
        guard let from = options.value("--from") ?? console.environment["EMAIL"] else {
            throw UsageError("No From address: pass --from ADDRESS or set the EMAIL environment variable.", command: "compose")
        }

        builder.from = try addresses(from, option: "--from")
        builder.to = try options.positionals.flatMap { try addresses($0, option: "recipient") }
        builder.cc = try options.values("-c").flatMap { try addresses($0, option: "--cc") }
        builder.bcc = try options.values("-b").flatMap { try addresses($0, option: "--bcc") }
        if let replyTo = options.value("--reply-to") {
            builder.replyTo = try addresses(replyTo, option: "--reply-to")
        }
        if builder.to.isEmpty && builder.cc.isEmpty && builder.bcc.isEmpty {
            throw UsageError("No recipients: name at least one as an argument, or with --cc or --bcc.", command: "compose")
        }

        builder.subject = options.value("-s")
        builder.text = try readText(console.standardInput, name: "standard input")
        if let charset = options.value("--charset") {
            builder.charset = charset
        }

        switch options.value("--encoding") {
        case nil, "mime": builder.attachmentMode = .mime
        case "uuencode": builder.attachmentMode = .uuencode
        case let other?:
            throw UsageError("The encoding \"\(UsageError.printable(other))\" is invalid: use mime or uuencode.", command: "compose")
        }
        switch options.value("--priority") {
        case nil: break
        case "high": builder.priority = .high
        case "normal": builder.priority = .normal
        case "low": builder.priority = .low
        case let other?:
            throw UsageError("The priority \"\(UsageError.printable(other))\" is invalid: use high, normal or low.", command: "compose")
        }
        builder.requestsReadReceipt = options.flag("--receipt")

        if let htmlPath = options.value("--html") {
            guard let handle = FileHandle(forReadingAtPath: htmlPath) else {
                throw Failure(message: "The HTML file \(htmlPath) cannot be read: check the path.", exitCode: .noInput)
            }
            defer { try? handle.close() }
            builder.html = try readText(handle, name: "the HTML file \(htmlPath)")
        }
        builder.inlineImages = options.values("--inline").map { path in
            var image = Attachment(path: path)
            image.contentID = image.fileName
            return image
        }
        builder.attachments = options.values("-a").map { Attachment(path: $0) }
        return builder
    }

    private static func addresses(_ text: String, option: String) throws -> [MailAddress] {
        do {
            return try AddressList(parsing: text).addresses
        } catch {
            throw UsageError("The \(option) address \"\(UsageError.printable(text))\" is invalid: \(error)", command: "compose")
        }
    }

    private static func readText(_ handle: FileHandle, name: String) throws -> String {
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw Failure(message: "Reading \(name) failed: \(error.localizedDescription)", exitCode: .ioError)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw Failure(message: "The text in \(name) is not valid UTF-8: convert it first, for example with iconv -t UTF-8.", exitCode: .dataError)
        }
        return text
    }
}

extension ArgumentParser.Result {
    /// Returns every value given for the option `key`, in order.
    func values(_ key: String) -> [String] {
        values[key] ?? []
    }
}
