import Foundation
import MailStore
import OutboxTestSupport
import Testing
@testable import OutboxCLI

/// A store folder for one test, removed at the end.
private final class StoreFolder {
    let path: String

    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-queue-\(UUID().uuidString)").path
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func open() throws -> MailStore {
        try MailStore(url: URL(fileURLWithPath: path))
    }
}

private func serverOptions(port: UInt16) -> [String] {
    ["--host", "127.0.0.1", "--port", String(port), "--helo", "client.example.test", "--timeout", "5"]
}

private let message = """
    From: Alice <alice@example.test>
    To: bob@example.test
    Bcc: hidden@example.test
    Subject: Queued
    Message-ID: <queued-1@example.test>

    Body.

    """


@Suite(.serialized, .timeLimit(.minutes(1)))
struct QueueCommandTests {
    @Test func queuedSendMovesToSent() async throws {
        let folder = StoreFolder()
        let server = try ScriptedServer(esmtp: .init())
        let result = try await runOutbox(
            ["send", "--queue", "--store", folder.path, "-t"] + serverOptions(port: server.port), input: message)
        #expect(result.status == 0, "\(result.error)")

        let stored = try folder.open().messages()
        #expect(stored.count == 1)
        let sent = try #require(stored.first)
        #expect(sent.folder == .sent)
        #expect(sent.messageID == "<queued-1@example.test>")
        #expect(sent.recipients.map(\.address) == ["bob@example.test", "hidden@example.test"])
        // The stored copy is what was sent: without the Bcc field.
        let content = try String(contentsOfFile: try folder.open().contentURL(id: sent.id).path, encoding: .utf8)
        #expect(!content.contains("Bcc"))
        #expect(server.waitUntilFinished())
        #expect(server.connections.first?.messages.count == 1)
    }

    @Test func temporaryFailureStaysQueued() async throws {
        let folder = StoreFolder()
        // The first connection is turned away with 421; the second is served.
        let server = try ScriptedServer(scripts: [
            [.send("421 4.3.2 Too busy, try later\r\n"), .close], [.playESMTP(.init())],
        ])
        let result = try await runOutbox(
            ["send", "--queue", "--store", folder.path, "-t"] + serverOptions(port: server.port), input: message)
        #expect(result.status == 0, "\(result.error)")
        let queued = try #require(try folder.open().messages().first)
        #expect(queued.folder == .outbox)
        #expect(queued.lastError?.contains("421") == true)
        #expect(result.error.contains("stays queued as \(queued.id)"))

        // A flush with --now delivers it at once, without waiting for its next attempt.
        let store = try folder.open()
        let flush = try await runOutbox(["queue", "flush", "--now", "--store", folder.path])
        #expect(flush.status == 0, "\(flush.error)")
        #expect(flush.error.contains("sent 1, failed 0, deferred 0"))
        #expect(try store.message(id: queued.id)?.folder == .sent)
    }

    @Test func permanentRejectionFails() async throws {
        let folder = StoreFolder()
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.defaultRecipientReply = "550 5.1.1 No such user"
        let server = try ScriptedServer(esmtp: behavior)
        let result = try await runOutbox(
            ["send", "--queue", "--store", folder.path, "-t"] + serverOptions(port: server.port), input: message)
        #expect(result.status == ExitCode.noUser.rawValue, "\(result.error)")
        #expect(result.error.contains("550 5.1.1 No such user"))
        #expect(try folder.open().messages().first?.folder == .failed)
    }

    @Test func queueOnlyAndHoldWait() async throws {
        let folder = StoreFolder()
        let server = try ScriptedServer(esmtp: .init())
        let queued = try await runOutbox(
            ["send", "--queue-only", "--store", folder.path, "-t"] + serverOptions(port: server.port), input: message)
        let held = try await runOutbox(
            ["send", "--hold", "--store", folder.path, "-t"] + serverOptions(port: server.port), input: message)
        #expect(queued.status == 0)
        #expect(held.status == 0)
        #expect(server.connections.isEmpty)

        let messages = try folder.open().messages()
        #expect(messages.map(\.held) == [false, true])
        let heldID = messages[1].id
        #expect(held.error.contains("outbox queue release \(heldID)"))

        // A flush sends the queued message and leaves the held one.
        let flush = try await runOutbox(["queue", "flush", "--store", folder.path])
        #expect(flush.status == 0, "\(flush.error)")
        #expect(try folder.open().messages().map(\.folder) == [.sent, .outbox])

        #expect(try await runOutbox(["queue", "release", heldID, "--store", folder.path]).status == 0)
        _ = try await runOutbox(["queue", "flush", "--store", folder.path])
        #expect(try folder.open().messages().map(\.folder) == [.sent, .sent])
        #expect(server.waitUntilFinished(connectionCount: 2))
    }

    @Test(arguments: [-86_400.25, 0, 951_782_400.5, 1_796_433_193.788, 4_102_444_799.0])
    func timestampsInLocalTime(seconds: Double) {
        let date = Date(timeIntervalSince1970: seconds)
        let reference = DateFormatter()
        reference.locale = Locale(identifier: "en_US_POSIX")
        reference.timeZone = .current
        reference.dateFormat = "yyyy-MM-dd HH:mm:ss"
        #expect(QueueCommand.format(date) == reference.string(from: date))
        #expect(QueueCommand.format(date).utf8.count == 19)
    }

    @Test func listPrintsTableAndJSON() async throws {
        let folder = StoreFolder()
        let port = try ScriptedServer.closedPort()
        _ = try await runOutbox(
            ["send", "--queue-only", "--store", folder.path, "-t"] + serverOptions(port: port), input: message)
        let id = try #require(try folder.open().messages().first?.id)

        let table = try await runOutbox(["queue", "list", "--store", folder.path])
        #expect(table.status == 0)
        let lines = table.output.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("ID "))
        #expect(lines[1].hasPrefix(Substring(id)))
        #expect(lines[1].contains("waiting"))

        let json = try await runOutbox(["queue", "list", "--json", "--store", folder.path])
        let decoded = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]]
        let entry = try #require(decoded?.first)
        #expect(entry["id"] as? String == id)
        #expect(entry["folder"] as? String == "outbox")
        #expect(entry["server"] as? String == "127.0.0.1:\(port)")
        #expect((entry["recipients"] as? [[String: Any]])?.count == 2)

        let show = try await runOutbox(["queue", "show", id, "--store", folder.path])
        #expect(show.status == 0)
        #expect(show.output.contains("Message-ID:    <queued-1@example.test>"))
        #expect(show.output.contains("<hidden@example.test>: pending"))
    }

    @Test func unknownIdAndActionRejected() async throws {
        let folder = StoreFolder()
        let show = try await runOutbox(["queue", "show", "0000nope", "--store", folder.path])
        #expect(show.status == ExitCode.noInput.rawValue)
        #expect(show.error.contains("No message has the id 0000nope"))

        let action = try await runOutbox(["queue", "frobnicate", "--store", folder.path])
        #expect(action.status == ExitCode.usage.rawValue)
        #expect(action.error.contains("Unknown action \"frobnicate\""))

        let both = try await runOutbox(["send", "--queue", "--hold", "--store", folder.path, "x@example.test"], input: message)
        #expect(both.status == ExitCode.usage.rawValue)

        let storeWithoutQueue = try await runOutbox(["send", "--store", folder.path, "x@example.test"], input: message)
        #expect(storeWithoutQueue.status == ExitCode.usage.rawValue)
        #expect(storeWithoutQueue.error.contains("need --queue"))
    }

    @Test func showEscapesControlCharacters() async throws {
        let folder = StoreFolder()
        // The Subject and Message-ID come from the message's header, which any local program
        // writes, so their escape sequences must not reach the terminal of the user who reads them.
        let hostile = """
            From: alice@example.test
            To: bob@example.test
            Subject: \u{1B}]0;title\u{07}\u{1B}[2Jcleared
            Message-ID: <\u{1B}[31mred@example.test>

            Body.

            """
        let queued = try await runOutbox(
            ["send", "--queue-only", "--store", folder.path, "-t"] + serverOptions(port: 1), input: hostile)
        #expect(queued.status == 0)
        let id = try #require(try folder.open().messages().first?.id)

        let show = try await runOutbox(["queue", "show", id, "--store", folder.path])
        #expect(show.status == 0)
        #expect(!show.output.unicodeScalars.contains("\u{1B}"))
        #expect(!show.output.unicodeScalars.contains("\u{07}"))
        #expect(show.output.contains("cleared"))
    }

    @Test func retryAndDeleteFailedMessage() async throws {
        let folder = StoreFolder()
        var behavior = ScriptedServer.ESMTPBehavior()
        behavior.mailReply = "553 5.1.8 Sender rejected"
        let server = try ScriptedServer(scripts: [[.playESMTP(behavior)], [.playESMTP(.init())]])
        _ = try await runOutbox(
            ["send", "--queue", "--store", folder.path, "-t"] + serverOptions(port: server.port), input: message)
        let failed = try #require(try folder.open().messages().first)
        #expect(failed.folder == .failed)

        #expect(try await runOutbox(["queue", "retry", failed.id, "--store", folder.path]).status == 0)
        let flush = try await runOutbox(["queue", "flush", "--store", folder.path])
        #expect(flush.status == 0, "\(flush.error)")
        #expect(try folder.open().message(id: failed.id)?.folder == .sent)

        #expect(try await runOutbox(["queue", "delete", failed.id, "--store", folder.path]).status == 0)
        #expect(try folder.open().messages().isEmpty)
    }

    @Test func queuedMessageGetsDateAndMessageID() async throws {
        let folder = StoreFolder()
        let bare = "From: alice@example.test\nTo: bob@example.test\nSubject: bare\n\nBody.\n"
        let result = try await runOutbox(
            ["send", "--queue-only", "--store", folder.path, "-t"] + serverOptions(port: 25), input: bare)
        #expect(result.status == 0, "\(result.error)")
        let store = try folder.open()
        let message = try #require(try store.messages().first)
        let messageID = try #require(message.messageID)
        #expect(messageID.hasPrefix("<"))
        #expect(messageID.hasSuffix("@example.test>"))
        let content = try String(contentsOfFile: store.contentURL(id: message.id).path, encoding: .utf8)
        #expect(content.contains("Message-ID: \(messageID)\r\n"))
        #expect(content.contains("\r\nDate: ") || content.hasPrefix("Date: "))
        #expect(content.hasSuffix("Subject: bare\n\nBody.\n"))
    }

    @Test func relativePathsStoredAbsolute() async throws {
        let folder = StoreFolder()
        let directory = FileManager.default.currentDirectoryPath
        let passwordFile = "outbox-test-password-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: passwordFile, contents: Data("secret\n".utf8), attributes: [.posixPermissions: 0o600])
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        let result = try await runOutbox(
            ["send", "--queue-only", "--store", folder.path, "-t", "--user", "u", "--password-file", passwordFile]
                + serverOptions(port: 25),
            input: message)
        #expect(result.status == 0, "\(result.error)")
        let account = try #require(try folder.open().messages().first?.account)
        #expect(account.contains("\"--password-file\":\"\(directory)/\(passwordFile)\""))
        #expect(!account.contains("secret"))
    }

    @Test func sharedStoreFolderRejected() async throws {
        let folder = StoreFolder()
        _ = try folder.open()
        chmod(folder.path, 0o755)
        let result = try await runOutbox(["queue", "list", "--store", folder.path])
        #expect(result.status == ExitCode.configuration.rawValue)
        #expect(result.error.contains("chmod 700"))
    }
}

/// The account text kept with a queued message, read back by a flush in another working directory.
@Suite struct QueuedAccountTests {
    /// Returns the password that a flush in this process's working directory reads for an account
    /// text made from `arguments` in `directory`.
    private func passwordAtFlush(_ arguments: [String], queuedIn directory: String) throws -> String? {
        let parsed = try ArgumentParser(command: "send", options: ConnectionOptions.options)
            .parse(["--host", "127.0.0.1", "--user", "alice"] + arguments)
        let account = StoreOptions.account(parsed, workingDirectory: directory)
        let configuration = try StoreOptions.resolver(environment: [:], warn: { _ in })(account)
        guard case .password(_, let password) = configuration.authentication?.credentials else { return nil }
        return password.value
    }

    /// Creates a folder that contains a password file named "pw".
    private func folderWithPasswordFile(_ password: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-account-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("pw")
        try Data("\(password)\n".utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        return folder
    }

    @Test func relativePasswordFileKeepsQueueingFolder() throws {
        let folder = try folderWithPasswordFile("from-queueing-folder")
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(FileManager.default.currentDirectoryPath != folder.path)

        let password = try passwordAtFlush(["--password-file", "pw"], queuedIn: folder.path)
        #expect(password == "from-queueing-folder")
    }

    @Test func passwordCommandRunsInQueueingFolder() throws {
        let folder = try folderWithPasswordFile("from-queueing-folder")
        defer { try? FileManager.default.removeItem(at: folder) }

        let password = try passwordAtFlush(["--password-command", "cat ./pw"], queuedIn: folder.path)
        #expect(password == "from-queueing-folder")
    }

    @Test func passwordCommandQuotesFolderName() throws {
        let parent = try folderWithPasswordFile("unused")
        defer { try? FileManager.default.removeItem(at: parent) }
        let folder = parent.appendingPathComponent("it's $(touch x) `a b`")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)

        let password = try passwordAtFlush(["--password-command", "pwd"], queuedIn: folder.path)
        #expect(password == folder.path)
        #expect(!FileManager.default.fileExists(atPath: parent.appendingPathComponent("x").path))
    }
}
