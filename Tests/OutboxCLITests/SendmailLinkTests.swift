import Foundation
import MailStore
import OutboxTestSupport
import Testing
@testable import OutboxCLI

/// The `outbox` executable that `swift build` made, found from this file's place in the package.
private let builtExecutable = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent(".build/debug/outbox")

/// Runs the built executable as a child process through a symbolic link named `name` (such as
/// `sendmail`) in the home folder, so that it sees that name as argv[0].
private func runLinked(
    _ name: String, _ arguments: [String], input: String = "", home: ConfigHome
) throws -> CommandOutput {
    let (process, outputPath, errorPath) = try startLinked(name, arguments, input: input, home: home)
    process.waitUntilExit()
    return CommandOutput(
        status: process.terminationStatus,
        output: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
        error: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
}

/// Starts the built executable through a link, as `runLinked` does, without waiting for it.
/// Returns the process and the files that receive its standard output and error.
private func startLinked(
    _ name: String, _ arguments: [String], input: String = "", home: ConfigHome
) throws -> (Process, String, String) {
    let link = home.path + "/bin/" + name
    if !FileManager.default.fileExists(atPath: link) {
        try FileManager.default.createDirectory(atPath: home.path + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: builtExecutable.path)
    }
    let inputPath = try home.write("input-\(UUID().uuidString)", input)
    let outputPath = home.path + "/stdout-\(UUID().uuidString)"
    let errorPath = home.path + "/stderr-\(UUID().uuidString)"
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errorPath, contents: nil)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: link)
    process.arguments = arguments
    process.environment = home.environment
    process.standardInput = FileHandle(forReadingAtPath: inputPath)
    process.standardOutput = FileHandle(forWritingAtPath: outputPath)
    process.standardError = FileHandle(forWritingAtPath: errorPath)
    try process.run()
    return (process, outputPath, errorPath)
}

/// Starts a server that offers DSN, so that the client sends NOTIFY, RET and ENVID.
private func dsnServer() throws -> ScriptedServer {
    var behavior = ScriptedServer.ESMTPBehavior()
    behavior.capabilities.append("DSN")
    return try ScriptedServer(esmtp: behavior)
}

/// Writes ~/.msmtprc for a server on 127.0.0.1, with any more lines.
private func writeConfig(_ home: ConfigHome, port: UInt16, _ more: String = "") throws {
    try home.write(".msmtprc", """
        defaults
        timeout 5
        domain client.example.test
        account default
        host 127.0.0.1
        port \(port)
        \(more)
        """)
}

private let messageWithoutFrom = """
    To: bob@example.test, carol@example.test
    Subject: Report

    line one
    .
    after the dot

    """

@Suite(.serialized, .timeLimit(.minutes(2)))
struct SendmailLinkTests {
    @Test func executableIsBuilt() {
        #expect(
            FileManager.default.isExecutableFile(atPath: builtExecutable.path),
            "Run 'swift build --build-tests' first: \(builtExecutable.path) is missing.")
    }

    @Test func dsnFlagsReachEnvelope() throws {
        let home = ConfigHome()
        let server = try dsnServer()
        defer { server.stop() }
        try writeConfig(home, port: server.port)
        let result = try runLinked(
            "sendmail",
            ["-t", "-oi", "-f", "bounce@example.test", "-F", "Report Robot", "-N", "success,failure", "-R", "hdrs",
             "-V", "env-42", "-bm"],
            input: messageWithoutFrom, home: home)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        let mail = try #require(lines.first { $0.hasPrefix("MAIL FROM:") })
        #expect(mail.hasPrefix("MAIL FROM:<bounce@example.test>"))
        #expect(mail.contains(" RET=HDRS"))
        #expect(mail.contains(" ENVID=env-42"))
        let recipients = lines.filter { $0.hasPrefix("RCPT TO:") }
        #expect(recipients == [
            "RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE", "RCPT TO:<carol@example.test> NOTIFY=SUCCESS,FAILURE",
        ])
        let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
        #expect(data.hasPrefix("From: Report Robot <bounce@example.test>\r\nTo: bob@example.test"))
        #expect(data.contains("\r\n..\r\nafter the dot\r\n"))
    }

    @Test func notifyNeverAndReturnFull() throws {
        let home = ConfigHome()
        let server = try dsnServer()
        defer { server.stop() }
        try writeConfig(home, port: server.port)
        let result = try runLinked(
            "sendmail", ["-Nnever", "-Rfull", "-fme@example.test", "x@example.test"],
            input: "Subject: s\n\nbody\n", home: home)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        let mail = try #require(lines.first { $0.hasPrefix("MAIL FROM:") })
        #expect(mail.hasPrefix("MAIL FROM:<me@example.test>"))
        #expect(mail.contains(" RET=FULL"))
        #expect(lines.contains("RCPT TO:<x@example.test> NOTIFY=NEVER"))
    }

    @Test func dsnLeftOutWithoutExtension() async throws {
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        let result = try await runOutbox(
            ["sendmail", "--host", "127.0.0.1", "--port", String(server.port), "--timeout", "5", "-N", "success",
             "-R", "full", "-V", "id-1", "-f", "s@example.test", "x@example.test"],
            input: "Subject: s\n\nbody\n")
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        #expect(lines.contains { $0.hasPrefix("MAIL FROM:<s@example.test>") })
        #expect(!lines.contains { $0.contains("RET=") })
        #expect(!lines.contains { $0.contains("ENVID=") })
        #expect(lines.contains("RCPT TO:<x@example.test>"))
    }

    @Test func combinedFlagsAndR() throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try writeConfig(home, port: server.port)
        let result = try runLinked(
            "sendmail", ["-ti", "-rsender@example.test"], input: messageWithoutFrom, home: home)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        #expect(lines.contains { $0.hasPrefix("MAIL FROM:<sender@example.test>") })
        #expect(lines.filter { $0.hasPrefix("RCPT") } == ["RCPT TO:<bob@example.test>", "RCPT TO:<carol@example.test>"])
        let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
        #expect(data.contains("after the dot"))
    }

    @Test func loneDotEndsInputWithoutI() throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try writeConfig(home, port: server.port)
        let result = try runLinked(
            "sendmail", ["-t", "-f", "s@example.test"], input: messageWithoutFrom, home: home)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        let data = String(decoding: try #require(server.connections.first?.messages.first), as: UTF8.self)
        #expect(data.contains("line one"))
        #expect(!data.contains("after the dot"))
    }

    @Test func legacyOptionsIgnored() throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try writeConfig(home, port: server.port)
        let result = try runLinked(
            "sendmail",
            ["-oem", "-odi", "-oB", "-om", "-o", "-B", "8BITMIME", "-h", "10", "-L", "tag", "-G", "-U", "-i",
             "-f", "s@example.test", "--", "x@example.test"],
            input: "Subject: s\n\nbody\n", home: home)
        #expect(result.status == 0, "\(result.error)")
        #expect(server.waitUntilFinished())
        #expect(try #require(server.connections.first).lines.contains("RCPT TO:<x@example.test>"))
    }

    @Test func logFileFromX() throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try writeConfig(home, port: server.port, "password not-in-log\nuser someone\nauth off")
        let logPath = home.path + "/mail.log"
        let result = try runLinked(
            "sendmail", ["-X", logPath, "-f", "s@example.test", "x@example.test", "y@example.test"],
            input: "Subject: s\n\nbody\n", home: home)
        #expect(result.status == 0, "\(result.error)")
        let log = try String(contentsOfFile: logPath, encoding: .utf8)
        let lines = log.split(separator: "\n")
        #expect(lines.count == 1)
        let line = String(try #require(lines.first))
        #expect(line.contains(" host=127.0.0.1 tls=off auth=off from=s@example.test "))
        #expect(line.contains(" recipients=x@example.test,y@example.test mailsize=17 "))
        #expect(line.contains(" smtpstatus=250 smtpmsg='250 2.0.0 Message accepted' exitcode=EX_OK"))
        #expect(!log.contains("not-in-log"))
    }

    @Test func logFileRecordsFailure() throws {
        let home = ConfigHome()
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.mailReply = "553 5.1.8 Sender rejected"
        let server = try ScriptedServer(esmtp: behavior)
        defer { server.stop() }
        try writeConfig(home, port: server.port, "logfile ~/failed.log")
        let result = try runLinked("sendmail", ["-f", "s@example.test", "x@example.test"], input: "Subject: s\n\nb\n", home: home)
        #expect(result.status != 0)
        let log = try String(contentsOfFile: home.path + "/failed.log", encoding: .utf8)
        #expect(log.contains(" smtpstatus=553 "))
        #expect(log.contains(" errormsg='"))
        #expect(log.contains(" exitcode=EX_UNAVAILABLE"))
    }

    @Test func queueListedAndFlushed() throws {
        let home = ConfigHome()
        let server = try dsnServer()
        defer { server.stop() }
        try writeConfig(home, port: server.port, "queue only")
        let queued = try runLinked(
            "sendmail", ["-N", "delay", "-V", "queued-1", "-f", "s@example.test", "x@example.test"],
            input: "Subject: s\n\nbody\n", home: home)
        #expect(queued.status == 0, "\(queued.error)")
        #expect(server.connections.isEmpty)
        let store = try MailStore(url: URL(fileURLWithPath: home.path + "/store"))
        let id = try #require(try store.messages().first?.id)

        let mailq = try runLinked("mailq", [], home: home)
        #expect(mailq.status == 0, "\(mailq.error)")
        #expect(mailq.output.contains(id))
        let bp = try runLinked("sendmail", ["-bp"], home: home)
        #expect(bp.status == 0, "\(bp.error)")
        #expect(bp.output.contains(id))
        #expect(bp.output.contains("waiting"))

        let flush = try runLinked("sendmail", ["-q"], home: home)
        #expect(flush.status == 0, "\(flush.error)")
        #expect(server.waitUntilFinished())
        let lines = try #require(server.connections.first).lines
        let mail = try #require(lines.first { $0.hasPrefix("MAIL FROM:") })
        #expect(mail.hasPrefix("MAIL FROM:<s@example.test>"))
        #expect(mail.contains(" ENVID=queued-1"))
        #expect(lines.contains("RCPT TO:<x@example.test> NOTIFY=DELAY"))
        #expect(try store.message(id: id)?.folder == .sent)
    }

    @Test func queueRunLogsToFile() throws {
        let home = ConfigHome()
        let server = try ScriptedServer(esmtp: .init())
        defer { server.stop() }
        try writeConfig(home, port: server.port, "queue only\nlogfile ~/run.log")
        let queued = try runLinked(
            "sendmail", ["-f", "s@example.test", "x@example.test"], input: "Subject: s\n\nbody\n", home: home)
        #expect(queued.status == 0, "\(queued.error)")
        let store = try MailStore(url: URL(fileURLWithPath: home.path + "/store"))
        let id = try #require(try store.messages().first?.id)

        let (process, _, errorPath) = try startLinked("outbox", ["queue", "run", "--poll", "1"], home: home)
        let sent = server.waitUntilFinished()
        // The line about the message is written right after the flush that sent it.
        Thread.sleep(forTimeInterval: 0.5)
        process.terminate()
        process.waitUntilExit()
        #expect(sent)
        let errors = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        let log = try String(contentsOfFile: home.path + "/run.log", encoding: .utf8)
        let lines = log.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(log)\n\(errors)")
        #expect(lines.first?.contains(" queue run started: store=\(home.path)/store") == true)
        #expect(lines.contains { $0.contains(" id=\(id) host=127.0.0.1:\(server.port) from=s@example.test ") })
        let messageLine = try #require(lines.first { $0.contains(" id=\(id) ") })
        #expect(messageLine.contains(" smtpstatus=250 "))
        #expect(messageLine.hasSuffix(" exitcode=EX_OK"))
        #expect(lines.last?.hasSuffix(" queue run stopped") == true)
    }

    @Test func badFlagsRejected() throws {
        let home = ConfigHome()
        let unknown = try runLinked("sendmail", ["-Z", "x@example.test"], home: home)
        #expect(unknown.status == ExitCode.usage.rawValue)
        #expect(unknown.error.contains("Unknown flag -Z"))
        let daemon = try runLinked("sendmail", ["-bd"], home: home)
        #expect(daemon.status == ExitCode.usage.rawValue)
        let notify = try runLinked("sendmail", ["-N", "always", "-f", "s@example.test", "x@example.test"], input: "Subject: s\n\nb\n", home: home)
        #expect(notify.status == ExitCode.usage.rawValue)
        #expect(notify.error.contains("-N takes never"))
    }

    @Test func translateFlags() throws {
        let (mode, arguments) = try SendmailCommand.translate(
            ["-ti", "-oi", "-fme@example.test", "-F", "Name", "-oem", "--account=work", "--file=/x/rc", "a@example.test"])
        #expect(mode == .send)
        #expect(arguments == ["-t", "-i", "-i", "-f", "me@example.test", "-F", "Name", "-a", "work", "-C", "/x/rc", "a@example.test"])
        #expect(try SendmailCommand.translate(["-vd"]).arguments == ["-v", "--debug"])
        #expect(try SendmailCommand.translate(["-q30m"]).mode == .flushQueue)
        #expect(try SendmailCommand.translate(["-bp"]).mode == .listQueue)
    }
}
