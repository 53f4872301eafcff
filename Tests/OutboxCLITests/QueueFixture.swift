import Foundation
import MailStore
import OutboxTestSupport
@testable import OutboxCLI

/// A message store in a temporary folder, with the account text and route that
/// `outbox send --host 127.0.0.1 --port PORT --timeout 10` keeps with each message it queues.
struct QueueFixture {
    let directory: URL
    let storeURL: URL
    let port: UInt16
    /// The server options, as given to `outbox send`.
    let serverArguments: [String]
    let account: String
    let route: String

    /// Creates the folder for the store in `parent`, the temporary directory by default.
    init(port: UInt16, parent: URL = FileManager.default.temporaryDirectory) throws {
        directory = parent.appendingPathComponent("outbox-queue-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        storeURL = directory.appendingPathComponent("store")
        self.port = port
        serverArguments = ["--host", "127.0.0.1", "--port", String(port), "--timeout", "10"]
        let parsed = try ArgumentParser(command: "send", options: ConnectionOptions.options).parse(serverArguments)
        account = StoreOptions.account(parsed)
        let configuration = try ConnectionOptions.configuration(
            parsed, command: "send", environment: [:], warn: { _ in })
        route = StoreOptions.route(account: account, configuration: configuration)
    }

    /// The folder for a store that a test fills with many messages: /dev/shm where it exists,
    /// because the store syncs every new message to the disk, which can take seconds per thousand
    /// messages on a busy disk. SIGKILL loses nothing that a process has written to a tmpfs.
    static var fastParent: URL {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDirectory), isDirectory.boolValue,
            FileManager.default.isWritableFile(atPath: "/dev/shm")
        {
            return URL(fileURLWithPath: "/dev/shm")
        }
        return FileManager.default.temporaryDirectory
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Arguments for `outbox queue ACTION` on this store.
    func queue(_ action: String, _ extra: [String] = []) -> [String] {
        ["queue", action, "--store", storeURL.path] + extra
    }

    /// Arguments for `outbox send MODE` of a message read from standard input, into this store.
    func send(_ mode: String) -> [String] {
        ["send", mode, "--store", storeURL.path, "-t"] + serverArguments
    }

    /// Returns a message whose Message-ID and last body line contain `marker`, which the tests look
    /// for in the messages that smtp-sink received.
    static func message(marker: String, recipients: [String] = ["rcpt@example.org"]) -> String {
        """
        From: sender@example.org
        To: \(recipients.joined(separator: ", "))
        Subject: durability \(marker)
        Message-ID: <\(marker)@example.org>

        This message tests the outbox.
        marker=\(marker)

        """
    }

    /// Queues `count` messages through the store's API, as `outbox send --queue-only` would, and
    /// returns their markers.
    func queueDirectly(count: Int, prefix: String) throws -> [String] {
        let store = try MailStore(url: storeURL)
        var markers: [String] = []
        for number in 0..<count {
            let marker = "\(prefix)-\(number)"
            let new = NewMessage(
                sender: "sender@example.org", recipients: [StoredRecipient(address: "rcpt@example.org")],
                account: account, route: route, messageID: "<\(marker)@example.org>", subject: "durability \(marker)")
            let content = Self.message(marker: marker).replacingOccurrences(of: "\n", with: "\r\n")
            _ = try store.add(new, content: Array(content.utf8))
            markers.append(marker)
        }
        return markers
    }
}

extension SMTPSink {
    /// Counts, for each marker, the messages that smtp-sink dumped with the line `marker=MARKER`.
    func markerCounts() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for file in try dumpedMessages() {
            let text = try String(contentsOf: file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("marker=") {
                counts[String(line.dropFirst("marker=".count)).trimmingCharacters(in: .whitespaces), default: 0] += 1
            }
        }
        return counts
    }

    /// Returns the `X-Rcpt-Args` lines of each dumped transaction.
    func recipientArguments() throws -> [[String]] {
        try dumpedMessages().map { file in
            try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
                .filter { $0.hasPrefix("X-Rcpt-Args:") }.map(String.init)
        }
    }
}
