import Foundation
import OutboxTestSupport
@testable import MailMessage
import SMTPClient
import SMTPCore
import Testing
@testable import OutboxCLI

// Named attacks on the client, each with the outcome it must have: rejected with a clear error before
// anything reaches the server, or neutralized, which the tests check against what a ScriptedServer
// received. RELIABILITY.md lists every attack with its outcome and its test, including the attacks that
// other suites cover.

/// What an attack must end in.
enum AttackOutcome: String, Sendable {
    /// A clear error, and nothing of the attack reached a server or an output.
    case rejected
    /// The input was accepted in a form that carries no attack: the server saw one transaction, with
    /// CRLF line ends only and one end of data.
    case neutralized
    /// A secret that was used appears in none of the places searched.
    case notFound = "not found"
}

/// The commands that smuggled input tries to make a server run after an early end of data.
private let smuggledCommands = "MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<victim@evil.test>\r\nDATA\r\nsmuggled\r\n.\r\n"

/// An end-of-data form that some server might take for CRLF "." CRLF (SMTP smuggling).
struct SmugglingVariant: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let outcomeInBody: AttackOutcome

    var testDescription: String { name }
}

let smugglingVariants: [SmugglingVariant] = [
    SmugglingVariant(name: "LF.LF", bytes: [10, 46, 10], outcomeInBody: .neutralized),
    SmugglingVariant(name: "LF.CRLF", bytes: [10, 46, 13, 10], outcomeInBody: .neutralized),
    SmugglingVariant(name: "CR.CR", bytes: [13, 46, 13], outcomeInBody: .neutralized),
    SmugglingVariant(name: "CRLF.CR", bytes: [13, 10, 46, 13], outcomeInBody: .neutralized),
    SmugglingVariant(name: "CR.LF", bytes: [13, 46, 10], outcomeInBody: .neutralized),
    SmugglingVariant(name: "CRLF.LF", bytes: [13, 10, 46, 10], outcomeInBody: .neutralized),
    SmugglingVariant(name: "LF.CR", bytes: [10, 46, 13], outcomeInBody: .neutralized),
    SmugglingVariant(name: "CR.CRLF", bytes: [13, 46, 13, 10], outcomeInBody: .neutralized),
    SmugglingVariant(name: "CRLF.CRLF", bytes: [13, 10, 46, 13, 10], outcomeInBody: .neutralized),
    SmugglingVariant(name: "CRLF.NUL CRLF", bytes: [13, 10, 46, 0, 13, 10], outcomeInBody: .rejected),
    SmugglingVariant(name: "CRLF NUL.CRLF", bytes: [13, 10, 0, 46, 13, 10], outcomeInBody: .rejected),
    SmugglingVariant(name: "NUL CRLF.CRLF", bytes: [0, 13, 10, 46, 13, 10], outcomeInBody: .rejected),
    SmugglingVariant(name: "LF.NUL LF", bytes: [10, 46, 0, 10], outcomeInBody: .rejected),
]

/// A control character put into an input value.
enum Injection: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case cr = "CR"
    case lf = "LF"
    case crlf = "CRLF"
    case nul = "NUL"

    var testDescription: String { rawValue }

    var text: String {
        switch self {
        case .cr: "\r"
        case .lf: "\n"
        case .crlf: "\r\n"
        case .nul: "\u{0}"
        }
    }
}

// MARK: - Checks of what a server received

/// Returns the offsets of bare CR and bare LF in `bytes`: a CR not followed by LF, or an LF not preceded
/// by CR.
func bareLineEnds(in bytes: [UInt8]) -> [Int] {
    bytes.indices.filter { index in
        switch bytes[index] {
        case 13: index + 1 >= bytes.count || bytes[index + 1] != 10
        case 10: index == 0 || bytes[index - 1] != 13
        default: false
        }
    }
}

/// Returns how often `pattern` occurs in `bytes`.
func occurrences(of pattern: [UInt8], in bytes: [UInt8]) -> Int {
    guard bytes.count >= pattern.count else { return 0 }
    return (0...(bytes.count - pattern.count)).count { bytes[$0..<($0 + pattern.count)].elementsEqual(pattern) }
}

/// Checks that every connection to `server` carried at most one transaction, with CRLF line ends only,
/// at most one end of data, no NUL, and no command that names `evil.test`.
func expectNoInjection(_ server: ScriptedServer, attack: String) {
    for record in server.connections {
        let bytes = record.receivedBytes
        #expect(bareLineEnds(in: bytes).isEmpty, "\(attack): bare CR or LF at \(bareLineEnds(in: bytes).prefix(5))")
        #expect(!bytes.contains(0), "\(attack): a NUL reached the server")
        #expect(occurrences(of: Array("\r\n.\r\n".utf8), in: bytes) <= 1, "\(attack): more than one end of data")
        #expect(record.lines.count { $0.uppercased().hasPrefix("MAIL") } <= 1, "\(attack): commands \(record.lines)")
        #expect(!record.lines.contains { $0.contains("evil.test") }, "\(attack): commands \(record.lines)")
        #expect(record.messages.count <= 1, "\(attack): \(record.messages.count) messages")
    }
}

private func serverOptions(_ server: ScriptedServer) -> [String] {
    ["--host", "127.0.0.1", "--port", String(server.port), "--timeout", "5"]
}

/// Checks that an error message shows no CR, NUL or other control character but the line ends of its
/// lines, so that an echoed value cannot forge a line of a terminal or a log.
func expectPrintable(_ message: String, attack: String) {
    let controls = message.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) }
    #expect(controls.isEmpty, "\(attack): the error shows control characters \(controls.map { $0.escaped(asASCII: true) })")
}

private func report(_ attack: String, _ outcome: AttackOutcome, _ detail: String) {
    print("attack: \(attack) -> \(outcome.rawValue): \(detail.prefix(160))")
}

// MARK: - Smuggling

/// SMTP smuggling: end-of-data forms other than CRLF "." CRLF, followed by the commands of a second
/// transaction, in the message content and in header values.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SmugglingAttackTests {
    @Test("smuggling in message body", arguments: smugglingVariants)
    func smugglingInBody(variant: SmugglingVariant) async throws {
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let input = Array("From: a@example.test\r\nTo: b@example.test\r\nSubject: smuggling\r\n\r\nhello".utf8)
            + variant.bytes + Array((smuggledCommands + "tail\r\n").utf8)
        let result = try await runOutbox(["send", "-i"] + serverOptions(server) + ["b@example.test"], inputBytes: input)
        server.stop()

        switch variant.outcomeInBody {
        case .rejected:
            #expect(result.status == ExitCode.dataError.rawValue, "\(result.error)")
            #expect(result.error.contains("NUL"), "\(result.error)")
            #expect(server.connections.isEmpty, "a rejected message opened a connection")
            expectPrintable(result.error, attack: variant.name)
        case .neutralized:
            #expect(result.status == 0, "\(result.error)")
            let record = try #require(server.connections.first)
            #expect(record.messages.count == 1)
            let content = try #require(record.messages.first)
            // The smuggled commands arrive as lines of the one message, and a "." line is dot-stuffed.
            #expect(String(decoding: content, as: UTF8.self).contains("MAIL FROM:<smuggled@evil.test>\r\n"))
            #expect(!String(decoding: content, as: UTF8.self).contains("\r\n.\r\n"))
        case .notFound:
            Issue.record("\(variant.name): a smuggling variant needs rejected or neutralized")
        }
        expectNoInjection(server, attack: variant.name)
        report("smuggling \(variant.name) in body", variant.outcomeInBody, result.error)
    }

    @Test("smuggling in header value", arguments: smugglingVariants)
    func smugglingInHeaderValue(variant: SmugglingVariant) async throws {
        let value = "hello" + String(decoding: variant.bytes, as: UTF8.self) + smuggledCommands

        // MessageBuilder: every variant has a CR, LF or NUL, which no header value may contain.
        var builder = MessageBuilder()
        builder.from = [try MailAddress(parsing: "a@example.test")]
        builder.to = [try MailAddress(parsing: "b@example.test")]
        builder.subject = value
        #expect(throws: MessageBuildError.self, "\(variant.name): MessageBuilder accepted the subject") {
            _ = try builder.build()
        }

        // outbox compose -s
        let composed = try await runOutbox(["compose", "--from", "a@example.test", "-s", value, "b@example.test"])
        #expect(composed.status == ExitCode.dataError.rawValue, "\(variant.name): \(composed.error)")
        #expect(composed.output.isEmpty, "\(variant.name): compose wrote \(composed.output.prefix(200))")
        #expect(composed.error.contains("Subject"), "\(composed.error)")
        expectPrintable(composed.error, attack: variant.name)

        // outbox send -t with the value in the Subject of the message read from standard input.
        let server = try ScriptedServer(script: [.playESMTP(.init())])
        defer { server.stop() }
        let input = Array("From: a@example.test\r\nTo: b@example.test\r\nSubject: ".utf8) + Array(value.utf8)
            + Array("\r\n\r\nbody\r\n".utf8)
        let sent = try await runOutbox(["send", "-t"] + serverOptions(server), inputBytes: input)
        server.stop()
        if sent.status == 0 {
            let record = try #require(server.connections.first)
            #expect(record.messages.count == 1)
            report("smuggling \(variant.name) in header (send -t)", .neutralized, "sent as one message")
        } else {
            #expect(sent.status == ExitCode.dataError.rawValue, "\(variant.name): \(sent.error)")
            #expect(server.connections.isEmpty)
            expectPrintable(sent.error, attack: variant.name)
            report("smuggling \(variant.name) in header (send -t)", .rejected, sent.error)
        }
        expectNoInjection(server, attack: variant.name)
        report("smuggling \(variant.name) in header (MessageBuilder, compose -s)", .rejected, composed.error)
    }
}

// MARK: - Builder fields

/// A field of MessageBuilder that a caller fills from outside input.
enum BuilderField: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case subject, fromDisplayName = "from display name", toDisplayName = "to display name", messageID = "message ID"
    case inReplyTo = "In-Reply-To", references = "References", customFieldName = "custom field name"
    case customFieldValue = "custom field value", attachmentFileName = "attachment file name"
    case attachmentMediaType = "attachment media type", charset, text = "text body", signature, html = "HTML body"

    var testDescription: String { rawValue }

    /// Whether the field is part of a body, where line ends are normal text and are written as CRLF.
    var isBody: Bool { self == .text || self == .signature || self == .html }

    func apply(_ value: String, to builder: inout MessageBuilder) {
        switch self {
        case .subject: builder.subject = value
        case .fromDisplayName: builder.from = [MailAddress(localPart: "a", domain: "example.test", displayName: value)]
        case .toDisplayName: builder.to = [MailAddress(localPart: "b", domain: "example.test", displayName: value)]
        case .messageID: builder.messageID = value
        case .inReplyTo: builder.inReplyTo = [value]
        case .references: builder.references = [value]
        case .customFieldName: builder.customFields = [(name: value, value: "x")]
        case .customFieldValue: builder.customFields = [(name: "X-Custom", value: value)]
        case .attachmentFileName: builder.attachments = [Attachment(data: Array("data".utf8), fileName: value)]
        case .attachmentMediaType:
            builder.attachments = [Attachment(data: Array("data".utf8), fileName: "a.txt", mediaType: value)]
        case .charset: builder.charset = value
        case .text: builder.text = value
        case .signature: builder.signature = value
        case .html: builder.html = value
        }
    }
}

/// Writes a built message to bytes, with its Bcc field.
func messageBytes(_ message: ComposedMessage) throws -> [UInt8] {
    var bytes: [UInt8] = []
    try message.write(includingBcc: true) { bytes += $0 }
    return bytes
}

/// Checks that `bytes` has CRLF line ends only, no NUL, and no header field named X-Injected.
func expectNoInjectedField(_ bytes: [UInt8], attack: String) throws {
    #expect(bareLineEnds(in: bytes).isEmpty, "\(attack): bare CR or LF in the message")
    #expect(!bytes.contains(0), "\(attack): a NUL in the message")
    let header = try HeaderSection(parsing: bytes)
    #expect(header.firstField(named: "X-Injected") == nil, "\(attack): the message has an X-Injected field")
    #expect(header.fields.count { $0.hasName("Bcc") } <= 1, "\(attack): the message has a second Bcc field")
}

/// CR, LF and NUL in every value that MessageBuilder and `outbox compose` take.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct BuilderInjectionTests {
    @Test("builder field injection", arguments: BuilderField.allCases, Injection.allCases)
    func builderFieldInjection(field: BuilderField, injection: Injection) throws {
        let attack = "\(injection.rawValue) in builder \(field.rawValue)"
        var builder = MessageBuilder()
        builder.from = [try MailAddress(parsing: "a@example.test")]
        builder.to = [try MailAddress(parsing: "b@example.test")]
        field.apply("x" + injection.text + "X-Injected: yes" + injection.text + "Bcc: hidden@evil.test", to: &builder)
        let message: ComposedMessage
        do {
            message = try builder.build()
        } catch {
            // A body keeps its line ends as text, so only a NUL may fail it.
            #expect(!field.isBody || injection == .nul, "\(attack): \(error)")
            expectPrintable(error.description, attack: attack)
            report(attack, .rejected, error.description)
            return
        }
        let bytes = try messageBytes(message)
        try expectNoInjectedField(bytes, attack: attack)
        #expect(!String(decoding: bytes, as: UTF8.self).contains("hidden@evil.test\r\n") || field.isBody, "\(attack)")
        report(attack, .neutralized, "\(bytes.count) bytes without the injected field")
    }

    @Test("compose option injection", arguments: ["-s", "--from", "-c", "-b", "--reply-to", "--charset", "--priority", "recipient"], Injection.allCases)
    func composeOptionInjection(option: String, injection: Injection) async throws {
        let attack = "\(injection.rawValue) in compose \(option)"
        let value = "x@example.test" + injection.text + "X-Injected: yes"
        var arguments = ["compose"]
        if option != "--from" { arguments += ["--from", "a@example.test"] }
        arguments += option == "recipient" ? [value] : [option, value]
        if option != "recipient" { arguments.append("b@example.test") }
        let result = try await runOutbox(arguments)
        if result.status == 0 {
            try expectNoInjectedField(Array(result.output.utf8), attack: attack)
            report(attack, .neutralized, "exit 0")
        } else {
            let expectedStatuses = [ExitCode.usage.rawValue, ExitCode.dataError.rawValue]
            #expect(expectedStatuses.contains(result.status), "\(attack): exit status \(result.status)")
            #expect(result.output.isEmpty, "\(attack): output after an error")
            #expect(!result.error.isEmpty, "\(attack): no error message")
            expectPrintable(result.error, attack: attack)
            report(attack, .rejected, result.error)
        }
    }

    @Test("compose attachment name injection", arguments: [Injection.cr, .lf, .crlf])
    func composeAttachmentNameInjection(injection: Injection) async throws {
        let attack = "\(injection.rawValue) in compose -a file name"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-attack-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("a" + injection.text + "X-Injected: yes.txt").path
        try #require(FileManager.default.createFile(atPath: path, contents: Data("data".utf8)))
        let result = try await runOutbox(["compose", "--from", "a@example.test", "-a", path, "b@example.test"])
        if result.status == 0 {
            try expectNoInjectedField(Array(result.output.utf8), attack: attack)
            report(attack, .neutralized, "exit 0")
        } else {
            #expect(result.output.isEmpty, "\(attack): output after an error")
            #expect(!result.error.isEmpty, "\(attack): no error message")
            expectPrintable(result.error, attack: attack)
            report(attack, .rejected, result.error)
        }
    }
}

// MARK: - Envelope, EHLO and AUTH inputs

/// An input that reaches the SMTP envelope, EHLO or AUTH.
enum EnvelopeInput: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case senderOption = "send -f"
    case recipientArgument = "send recipient argument"
    case heloOption = "send --helo"
    case userOption = "send --user"
    case configFrom = "configuration from"
    case configUser = "configuration user"
    case configPassword = "configuration password"
    case configDomain = "configuration domain"
    case configHost = "configuration host"
    case librarySender = "Envelope sender"
    case libraryRecipient = "Envelope recipient"
    case libraryUser = "SASL user name"
    case libraryPassword = "SASL password"
    case libraryToken = "SASL OAuth token"
    case libraryClientName = "SMTPClientConfiguration client name"

    var testDescription: String { rawValue }

    /// Whether `outbox send` checks the value with its other options, so that a bad value ends the
    /// command with a usage error before it connects.
    var isCheckedBeforeConnecting: Bool {
        self == .heloOption || self == .userOption
    }
}

/// Returns the script of a server that offers AUTH, accepts any credentials and accepts one message.
private func authScript() -> [ScriptedServer.Step] {
    [
        .send("220 scripted.test ESMTP\r\n"),
        .expectLine(prefix: "EHLO"),
        .send("250-scripted.test\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n"),
        .expectLine(matching: .anyLine),
        .send("235 2.7.0 OK\r\n"),
        .expectLine(matching: .anyLine),
        .send("250 2.1.0 OK\r\n"),
        .expectLine(matching: .anyLine),
        .send("250 2.1.5 OK\r\n"),
        .expectLine(matching: .anyLine),
        .send("354 Go ahead\r\n"),
        .readData,
        .send("250 2.0.0 Queued\r\n"),
        .expectLine(matching: .anyLine),
        .send("221 2.0.0 Bye\r\n"),
        .close,
    ]
}

/// CR, LF and NUL in the envelope, EHLO and AUTH inputs of `outbox send`, of its configuration file and
/// of the library.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct EnvelopeInjectionTests {
    @Test("envelope input injection", arguments: EnvelopeInput.allCases, Injection.allCases)
    func envelopeInputInjection(input: EnvelopeInput, injection: Injection) async throws {
        let attack = "\(injection.rawValue) in \(input.rawValue)"
        let injected = injection.text + "RCPT TO:<victim@evil.test>"
        let server = try ScriptedServer(script: authScript())
        defer { server.stop() }

        let status: Int32
        let errorText: String
        switch input {
        case .senderOption, .recipientArgument, .heloOption, .userOption, .configFrom, .configUser, .configPassword,
             .configDomain, .configHost:
            // A configuration file cannot carry LF inside a value, because each line is one command, so
            // the LF cases there split the value into a second line.
            let result = try await runSend(input: input, injected: injected, server: server)
            status = result.status
            errorText = result.error
        case .librarySender, .libraryRecipient, .libraryUser, .libraryPassword, .libraryToken, .libraryClientName:
            (status, errorText) = await runLibrary(input: input, injected: injected, server: server)
        }
        server.stop()
        expectNoInjection(server, attack: attack)
        for record in server.connections {
            #expect(!record.receivedText.contains("RCPT TO:<victim@evil.test>"), "\(attack): the injected command reached the server")
        }
        if status == 0 {
            report(attack, .neutralized, "sent, and the server saw no injected command")
        } else {
            #expect(!errorText.isEmpty, "\(attack): failed without a message")
            expectPrintable(errorText, attack: attack)
            #expect(server.connections.allSatisfy { !$0.lines.contains { $0.hasPrefix("MAIL") } }, "\(attack): MAIL was sent")
            report(attack, .rejected, errorText)
        }
        if input.isCheckedBeforeConnecting {
            #expect(status == ExitCode.usage.rawValue, "\(attack): exit status \(status): \(errorText)")
            #expect(errorText.contains(input == .heloOption ? "--helo" : "user name"), "\(attack): \(errorText)")
            #expect(server.connections.isEmpty, "\(attack): \(server.connections.count) connections")
        }
        if input == .libraryClientName {
            // The client connects and reads the greeting before it encodes EHLO with the name.
            let greetings = server.connections.flatMap(\.lines).filter { $0.hasPrefix("EHLO") || $0.hasPrefix("HELO") }
            #expect(greetings.isEmpty, "\(attack): the server received \(greetings)")
        }
    }

    private func runSend(input: EnvelopeInput, injected: String, server: ScriptedServer) async throws -> CommandOutput {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-attack-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var settings = [
            "host": "127.0.0.1", "port": String(server.port), "from": "a@example.test", "tls": "off",
            "auth": "plain", "user": "alice", "password": "hunter2", "timeout": "5",
        ]
        var arguments = ["send", "-C", directory.appendingPathComponent("config").path, "-a", "attack"]
        var recipient = "b@example.test"
        // The arguments reach `OutboxCommand.run` in process, so a NUL in them gets to the option parser.
        // A real command line cannot carry a NUL, because exec passes each argument as a C string.
        switch input {
        case .senderOption: arguments += ["-f", "a@example.test" + injected]
        case .recipientArgument: recipient += injected
        case .heloOption: arguments += ["--helo", "client.example.test" + injected]
        case .userOption: arguments += ["--user", "alice" + injected]
        case .configFrom: settings["from"]! += injected
        case .configUser: settings["user"]! += injected
        case .configPassword: settings["password"]! += injected
        case .configDomain: settings["domain"] = "client.example.test" + injected
        case .configHost: settings["host"]! += injected
        default: Issue.record("not an outbox send input: \(input)")
        }
        // Quoted values keep blanks, so a CR in the value is not turned into a blank by the parser.
        let quoted = settings.map { key, value in "\(key) \"\(value)\"" }.sorted()
        let text = "account attack\n" + quoted.joined(separator: "\n") + "\n"
        let configPath = directory.appendingPathComponent("config").path
        try #require(FileManager.default.createFile(atPath: configPath, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]))
        return try await runOutbox(
            arguments + [recipient], input: "From: a@example.test\r\nTo: b@example.test\r\n\r\nbody\r\n",
            environment: ["HOME": directory.path])
    }

    private func runLibrary(input: EnvelopeInput, injected: String, server: ScriptedServer) async -> (Int32, String) {
        var sender = "a@example.test"
        var recipient = "b@example.test"
        var credentials = SASLCredentials.password(username: "alice", password: Secret("hunter2"))
        var mechanism = "PLAIN"
        var clientName = "client.example.test"
        switch input {
        case .librarySender: sender += injected
        case .libraryRecipient: recipient += injected
        case .libraryUser: credentials = .password(username: "alice" + injected, password: Secret("hunter2"))
        case .libraryPassword: credentials = .password(username: "alice", password: Secret("hunter2" + injected))
        case .libraryToken:
            credentials = .oauth2(username: "alice", token: Secret("token" + injected))
            mechanism = "XOAUTH2"
        case .libraryClientName: clientName += injected
        default: Issue.record("not a library input: \(input)")
        }
        let configuration = SMTPClientConfiguration(
            host: "127.0.0.1", port: server.port, clientName: clientName, timeouts: .init(all: .seconds(5)),
            usePipelining: false, tlsMode: .off,
            authentication: AuthenticationConfiguration(credentials: credentials, mechanism: mechanism))
        do {
            let message = try OutgoingMessage(bytes: Array("From: a@example.test\r\n\r\nbody\r\n".utf8))
            let connection = try await SMTPConnection.open(configuration)
            do {
                _ = try await connection.send(message, envelope: Envelope(sender: sender, recipients: [recipient]))
                await connection.quit()
                return (0, "")
            } catch {
                await connection.close()
                return (1, error.description)
            }
        } catch {
            return (1, "\(error)")
        }
    }
}

// MARK: - Secrets

private let secretUser = "alice"
private let secretPassword = "Pa55-w0rd-S3cret"

/// Returns the forms in which the password could leak: as it is, in the AUTH PLAIN response, in Base64
/// alone and in Base64 at the two other alignments.
private func secretForms() -> [String] {
    var forms = [secretPassword, Data("\0\(secretUser)\0\(secretPassword)".utf8).base64EncodedString()]
    forms.append(Data(secretPassword.utf8).base64EncodedString())
    for offset in 1...2 {
        let shifted = Data((String(repeating: "x", count: offset) + secretPassword).utf8).base64EncodedString()
        forms.append(String(shifted.dropFirst(4).dropLast(4)))
    }
    return forms
}

/// Where a secret was searched for after a run.
enum SecretScenario: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case debugTranscript = "accepted AUTH with --debug"
    case rejectedAuth = "rejected AUTH with --debug"
    case queued = "accepted AUTH with --queue"

    var testDescription: String { rawValue }
}

/// The password of a configuration file, searched for in the standard output and error (the --debug
/// transcript and the error messages), the configuration's logfile and every file of the store.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SecretLeakTests {
    @Test("secret not in output, log or store", arguments: SecretScenario.allCases)
    func secretNotInOutputLogOrStore(scenario: SecretScenario) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-secret-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var script = authScript()
        if scenario == .rejectedAuth {
            script = Array(script.prefix(4)) + [.send("535 5.7.8 Authentication credentials invalid\r\n"), .expectLine(matching: .anyLine), .close]
        }
        let server = try ScriptedServer(script: script)
        defer { server.stop() }
        let logPath = directory.appendingPathComponent("outbox.log").path
        let storePath = directory.appendingPathComponent("store").path
        let config = """
            account secret
            host 127.0.0.1
            port \(server.port)
            tls off
            auth plain
            from a@example.test
            user \(secretUser)
            password \(secretPassword)
            logfile \(logPath)
            timeout 5

            """
        let configPath = directory.appendingPathComponent("config").path
        try #require(FileManager.default.createFile(atPath: configPath, contents: Data(config.utf8), attributes: [.posixPermissions: 0o600]))
        var arguments = ["send", "-C", configPath, "-a", "secret", "--debug"]
        if scenario == .queued { arguments = ["send", "-C", configPath, "-a", "secret", "--queue"] }
        let result = try await runOutbox(
            arguments + ["b@example.test"], input: "From: a@example.test\r\nTo: b@example.test\r\n\r\nbody\r\n",
            environment: ["HOME": directory.path, "OUTBOX_STORE": storePath])
        server.stop()

        // The server must have received the credentials, or the search below proves nothing.
        let record = try #require(server.connections.first)
        #expect(record.receivedText.contains(secretForms()[1]), "AUTH PLAIN did not carry the password: \(record.lines)")
        #expect((result.status == 0) == (scenario != .rejectedAuth), "exit \(result.status): \(result.error)")

        var places: [(String, String)] = [("standard output", result.output), ("standard error", result.error)]
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        #expect(!log.isEmpty || scenario == .queued, "the logfile is empty")
        if scenario != .queued {
            #expect(result.error.contains("AUTH PLAIN"), "--debug wrote no transcript of AUTH: \(result.error.prefix(300))")
        }
        places.append(("logfile", log))
        if let files = FileManager.default.enumerator(atPath: storePath) {
            for case let file as String in files {
                let path = storePath + "/" + file
                if let data = FileManager.default.contents(atPath: path) {
                    places.append(("store file \(file)", String(decoding: data, as: UTF8.self)))
                }
            }
        }
        #expect(scenario != .queued || places.count > 3, "the store has no files")
        for (place, text) in places {
            for form in secretForms() {
                #expect(!text.contains(form), "\(scenario.rawValue): the \(place) contains \(form)")
            }
        }
        report("password after \(scenario.rawValue)", .notFound, "searched \(places.map(\.0).joined(separator: ", "))")
    }
}
