import Foundation
import Glibc
import SMTPClient
import SMTPCore
import Synchronization
import Testing
@testable import OutboxCLI

// MARK: - Session without I/O

/// Feeds `text` to the session and returns the events up to the point where it needs more input.
func events(_ session: inout CaptureSession, _ text: String) -> [CaptureSession.Event] {
    session.receive(Array(text.utf8))
    var result: [CaptureSession.Event] = []
    while let event = session.nextEvent() {
        result.append(event)
        if case .message = event {
            session.finishMessage(.saved(name: "test-name"))
        }
    }
    return result
}

/// Returns the reply codes among `events`, with 0 for a message handed over, -1 for a close and -2 for
/// the start of a TLS handshake.
func codes(_ events: [CaptureSession.Event]) -> [Int] {
    events.map { event in
        switch event {
        case .reply(let reply): reply.code
        case .message: 0
        case .close: -1
        case .startTLS: -2
        }
    }
}

func messages(_ events: [CaptureSession.Event]) -> [CapturedMessage] {
    events.compactMap { event in
        if case .message(let message) = event {
            return message
        }
        return nil
    }
}

func replies(_ events: [CaptureSession.Event]) -> [SMTPReply] {
    events.compactMap { event in
        if case .reply(let reply) = event {
            return reply
        }
        return nil
    }
}

private func greetedSession(limits: CaptureSession.Limits = .init()) -> CaptureSession {
    var session = CaptureSession(serverName: "capture.test", limits: limits)
    _ = events(&session, "EHLO client.test\r\n")
    return session
}

private let pipelinedTransaction = "EHLO client.test\r\nMAIL FROM:<a@example.test> SIZE=20 BODY=8BITMIME\r\n"
    + "RCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n"
    + "Subject: hi\r\n\r\n..dot\r\n.\r\nNOOP\r\nQUIT\r\n"

@Suite struct CaptureSessionTests {
    @Test func ehloOffersExtensions() throws {
        var session = CaptureSession(serverName: "capture.test")
        #expect(session.greeting.code == 220)
        let reply = try #require(replies(events(&session, "EHLO client.test\r\n")).first)
        #expect(reply.code == 250)
        #expect(reply.lines == [
            "capture.test greets client.test", "PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        ])
        #expect(String(decoding: reply.encoded(), as: UTF8.self).hasPrefix("250-capture.test greets"))
        #expect(String(decoding: reply.encoded(), as: UTF8.self).hasSuffix("\r\n250 ENHANCEDSTATUSCODES\r\n"))
    }

    @Test func pipelinedCommandsInOneChunk() throws {
        var session = CaptureSession(serverName: "capture.test")
        let result = events(&session, pipelinedTransaction)
        #expect(codes(result) == [250, 250, 250, 250, 354, 0, 250, 250, 221, -1])
        let message = try #require(messages(result).first)
        #expect(message.sender == "a@example.test")
        #expect(message.recipients == ["b@example.test", "c@example.test"])
        #expect(String(decoding: message.content, as: UTF8.self) == "Subject: hi\r\n\r\n.dot\r\n")
        #expect(message.transferProtocol == "ESMTP")
        #expect(message.clientName == "client.test")
    }

    @Test func byteAtATimeMatchesOneChunk() {
        var whole = CaptureSession(serverName: "capture.test")
        let expected = events(&whole, pipelinedTransaction)
        var piecewise = CaptureSession(serverName: "capture.test")
        var result: [CaptureSession.Event] = []
        for character in pipelinedTransaction {
            result += events(&piecewise, String(character))
        }
        #expect(codes(result) == codes(expected))
        #expect(messages(result).map(\.content) == messages(expected).map(\.content))
    }

    @Test func replyCarriesEnhancedCode() throws {
        var session = greetedSession()
        let reply = try #require(replies(events(&session, "NOOP\r\n")).first)
        #expect(String(decoding: reply.encoded(), as: UTF8.self) == "250 2.0.0 OK\r\n")
    }

    @Test("commands out of sequence get 503", arguments: [
        ("", "MAIL FROM:<a@example.test>\r\n"),
        ("EHLO c.test\r\n", "RCPT TO:<b@example.test>\r\n"),
        ("EHLO c.test\r\n", "DATA\r\n"),
        ("EHLO c.test\r\nMAIL FROM:<a@example.test>\r\n", "MAIL FROM:<a@example.test>\r\n"),
    ])
    func badSequence(setup: String, command: String) {
        var session = CaptureSession(serverName: "capture.test")
        _ = events(&session, setup)
        #expect(codes(events(&session, command)) == [503])
    }

    @Test("syntax errors and unknown commands", arguments: [
        ("MAIL FROM:a@example.test", 501),
        ("MAIL TO:<a@example.test>", 501),
        ("MAIL FROM:<a@example.test>x", 501),
        ("MAIL FROM:<a b@example.test>", 501),
        ("MAIL FROM:<a@example.test> SIZE=ten", 501),
        ("MAIL FROM:<a@example.test> BODY=BINARYMIME", 501),
        ("MAIL FROM:<a@example.test> SIZE=1 SIZE=1", 501),
        ("MAIL FROM:<a@example.test> RET=FULL", 555),
        ("MAIL FROM:<ä@example.test>", 553),
        ("EHLO", 501),
        ("HELO two words", 501),
        ("RSET now", 501),
        ("DATA now", 501),
        ("VRFY a@example.test", 502),
        ("STARTTLS", 502),
        ("AUTH PLAIN", 502),
        ("BDAT 10 LAST", 502),
        ("12345", 500),
        ("", 500),
        ("NOOP\u{0}", 500),
    ])
    func syntaxErrors(command: String, code: Int) {
        var session = greetedSession()
        #expect(codes(events(&session, command + "\r\n")) == [code])
    }

    @Test func spaceAfterColonAccepted() {
        var session = greetedSession()
        #expect(codes(events(&session, "MAIL FROM: <a@example.test>\r\n")) == [250])
        #expect(codes(events(&session, "rcpt to: <@relay.test:b@example.test>\r\n")) == [250])
    }

    @Test func nullSenderAccepted() throws {
        var session = greetedSession()
        let result = events(&session, "MAIL FROM:<>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n")
        #expect(codes(result) == [250, 250, 354, 0, 250])
        #expect(try #require(messages(result).first).sender == "")
    }

    @Test func sizeParameterOverLimit() throws {
        var limits = CaptureSession.Limits()
        limits.maxMessageSize = 100
        var session = greetedSession(limits: limits)
        let result = events(&session, "MAIL FROM:<a@example.test> SIZE=101\r\nMAIL FROM:<a@example.test> SIZE=100\r\n")
        #expect(codes(result) == [552, 250])
        #expect(try #require(replies(result).first).enhancedCode?.description == "5.3.4")
    }

    @Test func messageOverLimitRejectedAfterData() {
        var limits = CaptureSession.Limits()
        limits.maxMessageSize = 10
        var session = greetedSession(limits: limits)
        let body = String(repeating: "0123456789\r\n", count: 5)
        let result = events(&session, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n\(body).\r\n")
        #expect(codes(result) == [250, 250, 354, 552])
        // The session goes on, and the next message within the limit is accepted.
        let next = events(&session, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nshort\r\n.\r\n")
        #expect(codes(next) == [250, 250, 354, 0, 250])
    }

    @Test func tooManyRecipients() throws {
        var limits = CaptureSession.Limits()
        limits.maxRecipients = 3
        var session = greetedSession(limits: limits)
        var input = "MAIL FROM:<a@example.test>\r\n"
        for index in 1...4 {
            input += "RCPT TO:<r\(index)@example.test>\r\n"
        }
        input += "DATA\r\nx\r\n.\r\n"
        let result = events(&session, input)
        #expect(codes(result) == [250, 250, 250, 250, 452, 354, 0, 250])
        #expect(try #require(messages(result).first).recipients.count == 3)
    }

    @Test func dataWithoutAcceptedRecipient() {
        var session = greetedSession()
        let result = events(&session, "MAIL FROM:<a@example.test>\r\nRCPT TO:<>\r\nDATA\r\n")
        #expect(codes(result) == [250, 501, 554])
    }

    @Test func longCommandLineWithoutCRLFCloses() {
        var session = greetedSession()
        let result = events(&session, String(repeating: "A", count: 5000))
        #expect(codes(result) == [500, -1])
        // Nothing is read after the close.
        #expect(codes(events(&session, "\r\nNOOP\r\n")).isEmpty)
    }

    @Test func longCompleteCommandLineRejected() {
        var session = greetedSession()
        let result = events(&session, "NOOP " + String(repeating: "A", count: 5000) + "\r\nNOOP\r\n")
        #expect(codes(result) == [500, 250])
    }

    @Test func overlongTextLineRejected() throws {
        var session = greetedSession()
        let line = String(repeating: "x", count: 999)
        let result = events(&session, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n\(line)\r\n.\r\n")
        #expect(codes(result) == [250, 250, 354, 554])
        #expect(try #require(replies(result).last).text.contains("Line 1 "))
    }

    @Test func textLineAtLimitAccepted() {
        var session = greetedSession()
        let line = String(repeating: "x", count: 998)
        let result = events(&session, "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n\(line)\r\n.\r\n")
        #expect(codes(result) == [250, 250, 354, 0, 250])
    }

    @Test func httpRequestClosesSession() {
        var session = CaptureSession(serverName: "capture.test")
        let result = events(&session, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nMAIL FROM:<a@example.test>\r\n")
        #expect(codes(result) == [421, -1])
    }

    @Test func utf8AddressWithSMTPUTF8() throws {
        var session = greetedSession()
        let result = events(
            &session, "MAIL FROM:<ä@example.test> SMTPUTF8\r\nRCPT TO:<ö@example.test>\r\nDATA\r\nx\r\n.\r\n")
        #expect(codes(result) == [250, 250, 354, 0, 250])
        let message = try #require(messages(result).first)
        #expect(message.sender == "ä@example.test")
        #expect(message.transferProtocol == "UTF8SMTP")
    }

    @Test func heloSessionTakesNoParameters() throws {
        var session = CaptureSession(serverName: "capture.test")
        let result = events(
            &session,
            "HELO client.test\r\nMAIL FROM:<a@example.test> SIZE=10\r\nMAIL FROM:<a@example.test>\r\n"
                + "RCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n")
        #expect(codes(result) == [250, 555, 250, 250, 354, 0, 250])
        #expect(try #require(replies(result).first).lines == ["capture.test greets client.test"])
        #expect(try #require(messages(result).first).transferProtocol == "SMTP")
    }

    @Test func rsetDiscardsTransaction() throws {
        var session = greetedSession()
        let result = events(
            &session,
            "MAIL FROM:<first@example.test>\r\nRCPT TO:<x@example.test>\r\nRSET\r\n"
                + "MAIL FROM:<second@example.test>\r\nRCPT TO:<y@example.test>\r\nDATA\r\nx\r\n.\r\n")
        #expect(codes(result) == [250, 250, 250, 250, 250, 354, 0, 250])
        let message = try #require(messages(result).first)
        #expect(message.sender == "second@example.test")
        #expect(message.recipients == ["y@example.test"])
    }

    @Test func tooManyErrorsCloseSession() {
        var session = greetedSession()
        let result = events(&session, String(repeating: "VRFY x\r\n", count: 25))
        #expect(codes(result) == Array(repeating: 502, count: 19) + [421, -1])
    }

    @Test func refusedWhenNotAcceptingMessages() {
        var session = greetedSession()
        session.acceptsMessages = false
        #expect(codes(events(&session, "MAIL FROM:<a@example.test>\r\n")) == [421, -1])
    }

    @Test func failedSaveGetsTemporaryReply() {
        var session = greetedSession()
        session.receive(Array("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n".utf8))
        var result: [Int] = []
        while let event = session.nextEvent() {
            if case .message = event {
                session.finishMessage(.failed)
            }
            result += codes([event])
        }
        #expect(result == [250, 250, 354, 0, 451])
    }
}

// MARK: - Message data

@Suite struct MessageDataReaderTests {
    @Test("dot-unstuffing and the end of data", arguments: [
        ("a\r\n..b\r\n.\r\n", "a\r\n.b\r\n"),
        (".\r\n", ""),
        ("\r\n.\r\n", "\r\n"),
        ("...\r\n.\r\n", "..\r\n"),
        (".x\r\n.\r\n", "x\r\n"),
        // A bare LF or CR does not end a line, so neither can end the data.
        ("x\n.\nmore\r\n.\r\n", "x\n.\nmore\r\n"),
        ("x\r.\rmore\r\n.\r\n", "x\r.\rmore\r\n"),
        (".\rx\r\n.\r\n", "\rx\r\n"),
        ("a\r\r\n.\r\n", "a\r\r\n"),
    ])
    func unstuffing(input: String, expected: String) {
        let bytes = Array(input.utf8)
        // Every split point must give the same result as the whole input.
        for split in 0...bytes.count {
            var reader = MessageDataReader(maxMessageSize: 1000, maxLineLength: 998)
            var end = reader.consume(Array(bytes[..<split]), from: 0)
            if end == nil {
                end = reader.consume(Array(bytes[split...]), from: 0).map { $0 + split }
            }
            #expect(end == bytes.count, "split at \(split)")
            #expect(String(decoding: reader.content, as: UTF8.self) == expected, "split at \(split)")
            #expect(reader.size == expected.utf8.count, "split at \(split)")
        }
    }

    @Test func bytesAfterTerminatorStay() {
        var reader = MessageDataReader(maxMessageSize: 1000, maxLineLength: 998)
        let input = Array("body\r\n.\r\nQUIT\r\n".utf8)
        let end = reader.consume(input, from: 0)
        #expect(end == 9)
        #expect(String(decoding: input[9...], as: UTF8.self) == "QUIT\r\n")
    }

    @Test func sizeCountedPastLimit() {
        var reader = MessageDataReader(maxMessageSize: 5, maxLineLength: 998)
        let end = reader.consume(Array("0123456789\r\n.\r\n".utf8), from: 0)
        #expect(end != nil)
        #expect(reader.exceedsMaxMessageSize)
        #expect(reader.size == 12)
        #expect(reader.content.isEmpty)
    }
}

// MARK: - Options and output

@Suite struct CaptureOptionsTests {
    @Test("loopback addresses accepted", arguments: [
        ("127.0.0.1", "127.0.0.1:25"), ("127.1.2.3", "127.1.2.3:25"), ("::1", "[::1]:25"),
        ("[::1]", "[::1]:25"), ("0:0:0:0:0:0:0:1", "[::1]:25"),
    ])
    func loopbackAccepted(text: String, endpoint: String) throws {
        let address = try LoopbackAddress(parsing: text)
        #expect(address.endpoint(port: 25) == endpoint)
    }

    @Test("other addresses rejected", arguments: [
        "0.0.0.0", "192.0.2.1", "10.0.0.1", "::", "2001:db8::1", "::ffff:127.0.0.1", "localhost",
        "example.test", "",
    ])
    func otherAddressesRejected(text: String) async throws {
        #expect(throws: LoopbackAddressError.self) {
            try LoopbackAddress(parsing: text)
        }
        let result = try await runOutbox(["capture", "--listen", text, "--maildir", "/nonexistent/never-created"])
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(result.error.contains("--listen"))
        #expect(!FileManager.default.fileExists(atPath: "/nonexistent/never-created"))
    }

    @Test("invalid options", arguments: [
        ["--port", "70000"], ["--port", "-1"], ["--max-messages", "0"], ["--max-size", "0"],
        ["--max-size", "2000000000"], ["--maildir", ""], ["extra"], ["--unknown"],
    ])
    func invalidOptions(arguments: [String]) async throws {
        let result = try await runOutbox(["capture"] + arguments)
        #expect(result.status == ExitCode.usage.rawValue)
        #expect(result.error.hasPrefix("outbox capture: "))
        #expect(result.output.isEmpty)
    }

    @Test func defaultMaildirPath() throws {
        let fromXDG = try CaptureCommand.defaultMaildirPath(environment: ["XDG_DATA_HOME": "/data", "HOME": "/home/u"])
        #expect(fromXDG == "/data/outbox/capture")
        let fromHome = try CaptureCommand.defaultMaildirPath(environment: ["HOME": "/home/u"])
        #expect(fromHome == "/home/u/.local/share/outbox/capture")
        // A relative XDG_DATA_HOME is invalid and ignored.
        let relative = try CaptureCommand.defaultMaildirPath(environment: ["XDG_DATA_HOME": "data", "HOME": "/home/u"])
        #expect(relative == "/home/u/.local/share/outbox/capture")
        #expect(throws: UsageError.self) {
            try CaptureCommand.defaultMaildirPath(environment: [:])
        }
    }

    @Test func helpListsOptions() async throws {
        let help = try await runOutbox(["help", "capture"])
        #expect(help.status == 0)
        #expect(help.output.contains("--max-messages N"))
        let flag = try await runOutbox(["capture", "--help"])
        #expect(flag.output == help.output)
        let usage = try await runOutbox(["--help"])
        #expect(usage.output.contains("  capture   "))
    }

    @Test("subject shown in the summary", arguments: [
        ("Subject: Hello\r\n\r\nbody", "Hello"),
        ("From: a\r\nSubject: folded\r\n  twice\r\n\r\n", "folded  twice"),
        ("Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n", "=?utf-8?q?caf=C3=A9?="),
        ("Subject: bell\u{7}escape\u{1B}[31m\ttab\u{85}c1\r\n\r\n", "bellescape[31m tabc1"),
        ("To: x\r\n\r\nSubject: in the body\r\n", ""),
        ("Subject: " + String(repeating: "é", count: 80) + "\r\n\r\n", String(repeating: "é", count: 59) + "…"),
    ])
    func subjectPreview(message: String, expected: String) {
        #expect(CaptureCommand.subjectPreview(of: Array(message.utf8)) == expected)
    }
}

// MARK: - Maildir

@Suite struct MaildirTests {
    @Test func createsDirectoriesAndSavesFile() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let maildir = try Maildir(creatingAt: root + "/a/b/Maildir")
        for directory in ["/a", "/a/b", "/a/b/Maildir", "/a/b/Maildir/tmp", "/a/b/Maildir/new", "/a/b/Maildir/cur"] {
            #expect(try permissions(root + directory) == 0o700, "\(directory)")
        }
        let first = try maildir.deliver(Array("one\r\n".utf8))
        let second = try maildir.deliver(Array("two\r\n".utf8))
        #expect(first != second)
        #expect(first.hasPrefix(root + "/a/b/Maildir/new/"))
        #expect(try permissions(first) == 0o600)
        #expect(try String(contentsOfFile: first, encoding: .utf8) == "one\r\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/a/b/Maildir/tmp").isEmpty)
    }

    @Test func pathThroughFileFails() async throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(FileManager.default.createFile(atPath: root + "/file", contents: Data()))
        #expect(throws: MaildirError.self) {
            try Maildir(creatingAt: root + "/file/Maildir")
        }
        let result = try await runOutbox(["capture", "--maildir", root + "/file/Maildir"])
        #expect(result.status == ExitCode.ioError.rawValue)
        #expect(result.error.contains(root + "/file"))
    }

    @Test func traceFieldsPrepended() {
        let message = CapturedMessage(
            sender: "a@example.test", recipients: ["b@example.test"], content: Array("Subject: x\r\n\r\nbody\r\n".utf8),
            clientName: "client.test", transferProtocol: "ESMTP")
        let text = String(
            decoding: message.savedBytes(clientAddress: "[127.0.0.1]", serverName: "capture.test", date: Date()),
            as: UTF8.self)
        #expect(text.hasPrefix("Return-Path: <a@example.test>\r\nReceived: from client.test ([127.0.0.1])\r\n"))
        #expect(text.contains("\r\n\tby capture.test (outbox capture) with ESMTP\r\n\tfor <b@example.test>;\r\n\t"))
        #expect(text.hasSuffix("\r\nSubject: x\r\n\r\nbody\r\n"))
    }
}

// MARK: - Server and command

func makeTemporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-capture-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func permissions(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? Int ?? -1) & 0o777
}

/// Returns the paths of the files in the Maildir's `new` directory, sorted by name.
func savedFiles(_ maildir: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: maildir + "/new").sorted().map { maildir + "/new/" + $0 }
}

func fileText(_ path: String) throws -> String {
    String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
}

/// Standard output and standard error of a command run in process.
private final class OutputRecorder: Sendable {
    let output = Mutex("")
    let errors = Mutex("")
}

/// `outbox capture` running in process on port 0, with its output collected.
final class CaptureRun: Sendable {
    let maildir: String
    let port: UInt16
    private let task: Task<ExitCode, Never>
    private let recorder: OutputRecorder

    private init(maildir: String, port: UInt16, task: Task<ExitCode, Never>, recorder: OutputRecorder) {
        self.maildir = maildir
        self.port = port
        self.task = task
        self.recorder = recorder
    }

    /// Starts the command and waits for its first output line to learn the port.
    static func start(_ arguments: [String], environment: [String: String] = [:]) async throws -> CaptureRun {
        let maildir = try makeTemporaryDirectory() + "/Maildir"
        let recorder = OutputRecorder()
        let (lines, continuation) = AsyncStream.makeStream(of: String.self)
        let console = Console(
            standardInput: .nullDevice,
            writeOutput: { text in
                recorder.output.withLock { $0 += text }
                continuation.yield(text)
            },
            writeError: { text in recorder.errors.withLock { $0 += text } })
        let task = Task {
            let status = await CaptureCommand.run(
                ["--port", "0", "--maildir", maildir] + arguments, console: console, environment: environment,
                handlesSignals: false)
            continuation.finish()
            return status
        }
        for await text in lines {
            let prefix = "outbox capture: listening on 127.0.0.1:"
            guard text.hasPrefix(prefix) else { continue }
            let rest = text.dropFirst(prefix.count)
            let port = try #require(UInt16(rest.prefix { $0.isNumber }))
            #expect(text == "outbox capture: listening on 127.0.0.1:\(port), saving to \(maildir)\n")
            return CaptureRun(maildir: maildir, port: port, task: task, recorder: recorder)
        }
        Issue.record("capture ended without a listening line: \(recorder.errors.withLock { $0 })")
        throw CancellationError()
    }

    /// Everything the command printed to standard output so far.
    var output: String {
        recorder.output.withLock { $0 }
    }

    /// Waits for the command to exit and returns its status with everything it printed.
    func finish() async -> (status: ExitCode, output: String, errors: String) {
        let status = await task.value
        return (status, recorder.output.withLock { $0 }, recorder.errors.withLock { $0 })
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: (maildir as NSString).deletingLastPathComponent)
    }
}

enum RawClientError: Error {
    case closedByServer
}

/// A blocking SMTP client over a plain socket, for sending exactly the bytes a test needs.
final class RawClient {
    private let descriptor: Int32
    private var parser = ReplyParser()

    init(port: UInt16, address: LoopbackAddress = .ipv4) throws {
        descriptor = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw SystemCallError("socket", errno)
        }
        // No read or write in a test waits longer than 10 seconds.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let status = address.withSocketAddress(port: port) { connect(descriptor, $0, $1) }
        guard status == 0 else {
            let errorNumber = errno
            close(descriptor)
            throw SystemCallError("connect", errorNumber)
        }
    }

    deinit {
        close(descriptor)
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else {
                throw SystemCallError("send", errno)
            }
            offset += count
        }
    }

    func readReply() throws -> SMTPReply {
        while true {
            if let reply = try parser.nextReply() {
                return reply
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 {
                throw RawClientError.closedByServer
            }
            if count < 0 {
                throw SystemCallError("recv", errno)
            }
            parser.append(buffer[..<count])
        }
    }

    func readCodes(_ count: Int) throws -> [Int] {
        try (0..<count).map { _ in try readReply().code }
    }

    /// Returns whether the server closed the connection, with nothing more to read.
    func isClosedByServer() -> Bool {
        var byte: UInt8 = 0
        let count = recv(descriptor, &byte, 1, 0)
        return count == 0 || (count < 0 && errno == ECONNRESET)
    }
}

private func outgoing(_ text: String) throws -> OutgoingMessage {
    try OutgoingMessage(bytes: Array(text.utf8))
}

@Suite(.timeLimit(.minutes(1)))
struct CaptureServerTests {
    @Test func savesMessageFromOutboxClient() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let connection = try await SMTPConnection.open(SMTPClientConfiguration(host: "127.0.0.1", port: run.port))
        #expect(connection.capabilities.supportsPipelining)
        #expect(connection.capabilities.supportsSMTPUTF8)
        #expect(connection.capabilities.supportsEnhancedStatusCodes)
        let message = "From: a@example.test\nTo: b@example.test\nSubject: Greetings\n\n.leading dot\n..two dots\nend\n"
        let result = try await connection.send(
            try outgoing(message), envelope: Envelope(sender: "a@example.test", recipients: ["b@example.test"]))
        #expect(result.reply.code == 250)
        await connection.quit()

        let (status, output, errors) = await run.finish()
        #expect(status == .success, "\(errors)")
        let files = try savedFiles(run.maildir)
        #expect(files.count == 1)
        let path = try #require(files.first)
        #expect(result.reply.text.contains((path as NSString).lastPathComponent))
        #expect(try permissions(path) == 0o600)
        #expect(try permissions(run.maildir) == 0o700)
        #expect(try permissions(run.maildir + "/new") == 0o700)

        let text = try fileText(path)
        #expect(text.hasPrefix("Return-Path: <a@example.test>\r\nReceived: from "))
        #expect(text.contains(" (outbox capture) with ESMTP\r\n\tfor <b@example.test>;\r\n"))
        #expect(text.hasSuffix(
            "\r\nFrom: a@example.test\r\nTo: b@example.test\r\nSubject: Greetings\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n"))

        let lines = output.split(separator: "\n")
        #expect(lines.count == 2)
        let summary = String(try #require(lines.last))
        #expect(summary.contains(" from <a@example.test> to <b@example.test> size "))
        #expect(summary.contains(" subject \"Greetings\" file \(path)"))
        #expect(summary.hasSuffix(path))
        #expect(errors.contains("stopped after saving 1 message(s)"))
    }

    @Test func severalMessagesInOneSession() async throws {
        let run = try await CaptureRun.start(["--max-messages", "2"])
        defer { run.remove() }
        let connection = try await SMTPConnection.open(SMTPClientConfiguration(host: "127.0.0.1", port: run.port))
        let results = await connection.send([
            (try outgoing("Subject: one\n\n1\n"), Envelope(sender: "a@example.test", recipients: ["x@example.test"])),
            (try outgoing("Subject: two\n\n2\n"), Envelope(sender: "", recipients: ["y@example.test", "z@example.test"])),
        ])
        #expect(results.allSatisfy { (try? $0.get())?.reply.code == 250 })
        await connection.quit()
        let (status, output, _) = await run.finish()
        #expect(status == .success)
        #expect(try savedFiles(run.maildir).count == 2)
        #expect(output.contains(" from <> to <y@example.test>, <z@example.test> size "))
        #expect(output.contains("subject \"one\""))
    }

    @Test func pipelinedRawSession() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let client = try RawClient(port: run.port)
        // Everything in one write, message data included, as a client that pipelines blindly would.
        try client.send(
            "EHLO raw.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\n"
                + "DATA\r\nSubject: piped\r\n\r\n..x\r\n.\r\nQUIT\r\n")
        #expect(try client.readCodes(8) == [220, 250, 250, 250, 250, 354, 250, 221])
        #expect(client.isClosedByServer())
        let (status, output, _) = await run.finish()
        #expect(status == .success)
        let text = try fileText(try #require(try savedFiles(run.maildir).first))
        #expect(text.hasSuffix("\r\nSubject: piped\r\n\r\n.x\r\n"))
        #expect(!text.contains("\tfor <"))
        #expect(output.contains("to <b@example.test>, <c@example.test> size 22 subject \"piped\""))
    }

    @Test func rsetBetweenMessages() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let client = try RawClient(port: run.port)
        #expect(try client.readReply().code == 220)
        let steps: [(String, Int)] = [
            ("EHLO raw.test\r\n", 250), ("MAIL FROM:<first@example.test>\r\n", 250),
            ("RCPT TO:<x@example.test>\r\n", 250), ("RSET\r\n", 250), ("MAIL FROM:<second@example.test>\r\n", 250),
            ("RCPT TO:<y@example.test>\r\n", 250), ("DATA\r\n", 354), ("Subject: after reset\r\n\r\nbody\r\n.\r\n", 250),
            ("QUIT\r\n", 221),
        ]
        for (command, code) in steps {
            try client.send(command)
            #expect(try client.readReply().code == code, "\(command)")
        }
        let (status, output, _) = await run.finish()
        #expect(status == .success)
        let files = try savedFiles(run.maildir)
        #expect(files.count == 1)
        #expect(try fileText(try #require(files.first)).hasPrefix("Return-Path: <second@example.test>\r\n"))
        #expect(output.contains("from <second@example.test> to <y@example.test> "))
        #expect(!output.contains("first@example.test"))
    }

    @Test func heloFallback() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let client = try RawClient(port: run.port)
        #expect(try client.readReply().code == 220)
        try client.send("HELO old.test\r\n")
        let helo = try client.readReply()
        #expect(helo.code == 250)
        #expect(helo.lines.count == 1)
        try client.send("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        #expect(try client.readCodes(3) == [250, 250, 354])
        try client.send("Subject: old\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        #expect(try client.readCodes(2) == [250, 221])
        _ = await run.finish()
        let text = try fileText(try #require(try savedFiles(run.maildir).first))
        #expect(text.contains("Received: from old.test ([127.0.0.1])\r\n\tby "))
        #expect(text.contains(" with SMTP\r\n"))
    }

    @Test func messageOverSizeLimitRejected() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1", "--max-size", "1000"])
        defer { run.remove() }

        // The project's client reads SIZE from EHLO and does not send a larger message.
        let connection = try await SMTPConnection.open(SMTPClientConfiguration(host: "127.0.0.1", port: run.port))
        #expect(connection.capabilities.maximumMessageSize == 1000)
        let large = "Subject: large\n\n" + String(repeating: String(repeating: "x", count: 70) + "\n", count: 30)
        await #expect(throws: SMTPError.self) {
            try await connection.send(
                try outgoing(large), envelope: Envelope(sender: "a@example.test", recipients: ["b@example.test"]))
        }
        await connection.quit()

        // A client that declares the size gets 552 at MAIL; one that does not, after the data.
        let client = try RawClient(port: run.port)
        try client.send("EHLO raw.test\r\nMAIL FROM:<a@example.test> SIZE=1001\r\n")
        #expect(try client.readCodes(3) == [220, 250, 552])
        try client.send("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        #expect(try client.readCodes(3) == [250, 250, 354])
        try client.send(large.replacingOccurrences(of: "\n", with: "\r\n") + ".\r\n")
        let reply = try client.readReply()
        #expect(reply.code == 552)
        #expect(reply.text.contains("1000"))
        // The session goes on after the rejection, and a small message is saved.
        try client.send("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n")
        #expect(try client.readCodes(5) == [250, 250, 354, 250, 221])
        _ = await run.finish()
        #expect(try savedFiles(run.maildir).count == 1)
    }

    @Test func tooManyRecipientsGet452() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let connection = try await SMTPConnection.open(SMTPClientConfiguration(host: "127.0.0.1", port: run.port))
        let recipients = (1...1001).map { "r\($0)@example.test" }
        let result = try await connection.send(
            try outgoing("Subject: many\n\nbody\n"), envelope: Envelope(sender: "a@example.test", recipients: recipients))
        await connection.quit()
        #expect(result.accepted.count == 1000)
        #expect(result.rejected.map(\.address) == ["r1001@example.test"])
        #expect(result.rejected.first?.reply.code == 452)
        let (_, output, _) = await run.finish()
        #expect(output.contains("<r1000@example.test> size "))
        #expect(!output.contains("r1001@"))
    }

    @Test func longLineWithoutCRLFEndsSession() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let client = try RawClient(port: run.port)
        try client.send("EHLO raw.test\r\n" + String(repeating: "A", count: 10_000))
        #expect(try client.readCodes(2) == [220, 250])
        let reply = try client.readReply()
        #expect(reply.code == 500)
        #expect(reply.text.contains("Line too long"))
        #expect(client.isClosedByServer())

        // The server goes on serving other clients.
        let other = try RawClient(port: run.port)
        try other.send("HELO x.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
        #expect(try other.readCodes(7) == [220, 250, 250, 250, 354, 250, 221])
        let (status, _, errors) = await run.finish()
        #expect(status == .success)
        #expect(errors.contains("after replying \"500 5.5.2 Line too long"))
    }

    @Test func pythonSmtplibClient() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let script = """
            import smtplib, sys
            from email.message import EmailMessage
            message = EmailMessage()
            message["From"] = "py@example.test"
            message["To"] = "dest@example.test"
            message["Subject"] = "From Python"
            message.set_content("first line\\n.starts with a dot\\nlast line\\n")
            with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as client:
                client.ehlo("python.test")
                if not client.has_extn("pipelining") or client.esmtp_features.get("size") != "26214400":
                    sys.exit("unexpected EHLO reply: %r" % client.esmtp_features)
                client.send_message(message)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, String(run.port)]
        let pipe = Pipe()
        process.standardError = pipe
        try process.run()
        process.waitUntilExit()
        let stderr = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(stderr)")

        let (status, output, _) = await run.finish()
        #expect(status == .success)
        let text = try fileText(try #require(try savedFiles(run.maildir).first))
        #expect(text.hasPrefix("Return-Path: <py@example.test>\r\nReceived: from python.test ([127.0.0.1])"))
        #expect(text.contains("\r\nSubject: From Python\r\n"))
        #expect(text.contains("\r\nfirst line\r\n.starts with a dot\r\nlast line\r\n"))
        #expect(output.contains("from <py@example.test> to <dest@example.test> size "))
        #expect(output.contains("subject \"From Python\""))
    }

    @Test func listensOnIPv6Loopback() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        let address = try LoopbackAddress(parsing: "::1")
        let server = try CaptureServer(
            configuration: .init(address: address), maildir: try Maildir(creatingAt: maildir),
            onMessageSaved: { _ in }, log: { _ in })
        server.start()
        #expect(server.endpoint == "[::1]:\(server.port)")
        let client = try RawClient(port: server.port, address: address)
        try client.send("EHLO v6.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
        #expect(try client.readCodes(7) == [220, 250, 250, 250, 354, 250, 221])
        server.stop()
        await server.waitUntilFinished()
        let text = try fileText(try #require(try savedFiles(maildir).first))
        #expect(text.contains("Received: from v6.test ([IPv6:::1])"))
    }

    @Test func connectionLimit() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        var configuration = CaptureServer.Configuration(address: .ipv4)
        configuration.maxConnections = 1
        let logs = Mutex<[String]>([])
        let server = try CaptureServer(
            configuration: configuration, maildir: try Maildir(creatingAt: maildir),
            onMessageSaved: { _ in }, log: { line in logs.withLock { $0.append(line) } })
        server.start()
        let first = try RawClient(port: server.port)
        #expect(try first.readReply().code == 220)
        let second = try RawClient(port: server.port)
        let rejection = try second.readReply()
        #expect(rejection.code == 421)
        #expect(rejection.text.contains("Too many connections"))
        #expect(second.isClosedByServer())
        let third = try RawClient(port: server.port)
        #expect(try third.readReply().code == 421)

        server.stop()
        #expect(try first.readReply().code == 421)
        await server.waitUntilFinished()
        let lines = logs.withLock { $0 }
        #expect(lines.count { $0.contains("rejected a connection from 127.0.0.1:") } == 1)
        #expect(lines.contains { $0.contains("rejected 2 connection(s) over the limit of 1") })
    }

    @Test func idleTimeout() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        var configuration = CaptureServer.Configuration(address: .ipv4)
        configuration.idleTimeout = .milliseconds(300)
        let logs = Mutex<[String]>([])
        let server = try CaptureServer(
            configuration: configuration, maildir: try Maildir(creatingAt: maildir),
            onMessageSaved: { _ in }, log: { line in logs.withLock { $0.append(line) } })
        server.start()
        let client = try RawClient(port: server.port)
        #expect(try client.readReply().code == 220)
        let started = ContinuousClock.now
        let reply = try client.readReply()
        #expect(reply.code == 421)
        #expect(reply.text.contains("Timeout"))
        #expect(ContinuousClock.now - started >= .milliseconds(250))
        #expect(client.isClosedByServer())
        server.stop()
        await server.waitUntilFinished()
        #expect(logs.withLock { $0 }.contains { $0.contains("sent nothing for") })
    }

    @Test func stopClosesSessionsWith421() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        let server = try CaptureServer(
            configuration: .init(address: .ipv4), maildir: try Maildir(creatingAt: maildir),
            onMessageSaved: { _ in }, log: { _ in })
        server.start()
        let client = try RawClient(port: server.port)
        try client.send("EHLO raw.test\r\nMAIL FROM:<a@example.test>\r\n")
        #expect(try client.readCodes(3) == [220, 250, 250])
        server.stop()
        let reply = try client.readReply()
        #expect(reply.code == 421)
        #expect(reply.text.contains("shutting down"))
        #expect(client.isClosedByServer())
        await server.waitUntilFinished()
        // The listener is closed, so new connections are refused.
        #expect(throws: SystemCallError.self) {
            try RawClient(port: server.port)
        }
    }

    @Test func drainDeadlineClosesIdleSessions() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        var configuration = CaptureServer.Configuration(address: .ipv4)
        configuration.maxMessages = 1
        configuration.drainTimeout = .milliseconds(300)
        let server = try CaptureServer(
            configuration: configuration, maildir: try Maildir(creatingAt: maildir),
            onMessageSaved: { _ in }, log: { _ in })
        server.start()
        let idle = try RawClient(port: server.port)
        #expect(try idle.readReply().code == 220)
        let sender = try RawClient(port: server.port)
        try sender.send(
            "EHLO raw.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n")
        #expect(try sender.readCodes(5) == [220, 250, 250, 250, 354])
        let started = ContinuousClock.now
        #expect(try sender.readReply().code == 250)

        // Both sessions wait with the default idle timeout of 5 minutes, so only the drain deadline ends them.
        let idleReply = try idle.readReply()
        #expect(idleReply.code == 421)
        #expect(idleReply.text.contains("shutting down"))
        #expect(idle.isClosedByServer())
        let senderReply = try sender.readReply()
        #expect(senderReply.code == 421)
        #expect(sender.isClosedByServer())
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(250))
        #expect(elapsed < .seconds(5))
        await server.waitUntilFinished()
        #expect(server.savedMessageCount == 1)
    }

    @Test func stopWakesBlockedSessionAtOnce() async throws {
        let maildir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: maildir) }
        let server = try CaptureServer(
            configuration: .init(address: .ipv4), maildir: try Maildir(creatingAt: maildir),
            onMessageSaved: { _ in }, log: { _ in })
        server.start()
        let client = try RawClient(port: server.port)
        try client.send("EHLO raw.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n")
        #expect(try client.readCodes(5) == [220, 250, 250, 250, 354])
        let started = ContinuousClock.now
        server.stop()
        let reply = try client.readReply()
        #expect(reply.code == 421)
        #expect(client.isClosedByServer())
        #expect(ContinuousClock.now - started < .seconds(1))
        await server.waitUntilFinished()
        #expect(server.savedMessageCount == 0)
    }

    @Test func messagesBeyondMaximumRefused() async throws {
        let run = try await CaptureRun.start(["--max-messages", "1"])
        defer { run.remove() }
        let client = try RawClient(port: run.port)
        let transaction = "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n"
        try client.send("EHLO raw.test\r\n" + transaction + transaction)
        #expect(try client.readCodes(6) == [220, 250, 250, 250, 354, 250])
        // The second MAIL finds the server draining after its one message.
        #expect(try client.readReply().code == 421)
        #expect(client.isClosedByServer())
        let (status, _, _) = await run.finish()
        #expect(status == .success)
        #expect(try savedFiles(run.maildir).count == 1)
    }
}
