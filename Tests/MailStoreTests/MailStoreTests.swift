import Foundation
import Synchronization
import Testing
@testable import MailStore

/// A store in a new temporary folder, removed when the test ends.
final class TemporaryStore {
    let folder: URL
    private(set) var store: MailStore

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-store-\(UUID().uuidString)")
        store = try MailStore(url: folder)
    }

    /// Opens the store again, as a new process would.
    func reopen() throws -> MailStore {
        store = try MailStore(url: folder)
        return store
    }

    deinit {
        try? FileManager.default.removeItem(at: folder)
    }
}

func newMessage(
    _ recipients: [String] = ["rcpt@example.org"], route: String = "127.0.0.1:25#1", held: Bool = false,
    folder: Folder = .outbox
) -> NewMessage {
    NewMessage(
        sender: "sender@example.org", recipients: recipients.map { StoredRecipient(address: $0) },
        account: "{}", route: route, messageID: "<id@example.org>", subject: "Subject", folder: folder, held: held)
}

let sampleContent = Array("From: sender@example.org\r\nTo: rcpt@example.org\r\n\r\nHello\r\n".utf8)

@Suite struct MailStoreTests {
    @Test func addedMessageKeepsContent() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(["a@example.org", "b@example.org"]), content: sampleContent)

        #expect(stored.folder == .outbox)
        #expect(stored.size == sampleContent.count)
        #expect(stored.recipients.map(\.address) == ["a@example.org", "b@example.org"])
        #expect(stored.recipients.allSatisfy { $0.state == .pending })
        #expect(try Array(Data(contentsOf: temporary.store.contentURL(id: stored.id))) == sampleContent)

        let reopened = try temporary.reopen()
        #expect(try reopened.message(id: stored.id) == stored)
        #expect(try reopened.counts()[.outbox] == 1)
    }

    @Test(arguments: [0, 1, 4095, 4096, 4097, 100_000])
    func readContentReturnsWholeFile(size: Int) throws {
        let temporary = try TemporaryStore()
        let content = (0..<size).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let stored = try temporary.store.add(newMessage(), content: content)
        #expect(try temporary.store.readContent(id: stored.id, sizeHint: stored.size) == content)
        // A wrong hint costs more reads, not a wrong result.
        for hint in [0, size / 2, size + 10] {
            #expect(try temporary.store.readContent(id: stored.id, sizeHint: hint) == content, "hint \(hint)")
        }
    }

    @Test func readContentOfMissingFileNamesIt() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        let path = temporary.store.contentURL(id: stored.id).path
        try FileManager.default.removeItem(atPath: path)
        #expect(throws: StoreError.file(path: path, message: "No such file or directory")) {
            try temporary.store.readContent(id: stored.id, sizeHint: stored.size)
        }
    }

    @Test func readContentRejectsFIFOWithoutBlocking() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        let path = temporary.store.contentURL(id: stored.id).path
        try FileManager.default.removeItem(atPath: path)
        #expect(mkfifo(path, 0o600) == 0)
        let store = temporary.store
        let result = Mutex<Result<[UInt8], StoreError>?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Thread {
            let outcome = Result { () throws(StoreError) in try store.readContent(id: stored.id, sizeHint: stored.size) }
            result.withLock { $0 = outcome }
            finished.signal()
        }.start()
        if finished.wait(timeout: .now() + 5) == .timedOut {
            Issue.record("reading the FIFO blocked for 5 s")
            // A writer that comes and goes lets the blocked open return and the read end, so that
            // the thread ends.
            close(open(path, O_WRONLY | O_NONBLOCK))
            finished.wait()
        }
        let outcome = result.withLock { $0 }
        guard case .failure(let error)? = outcome else {
            Issue.record("reading the FIFO did not fail: \(String(describing: outcome))")
            return
        }
        #expect(error == StoreError.file(path: path, message: "not a regular file"))
    }

    @Test func foldersAndFilesArePrivate() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        for path in [temporary.folder.path, temporary.folder.appendingPathComponent("messages").path] {
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o700, "\(path)")
        }
        for path in [temporary.store.contentURL(id: stored.id).path, temporary.folder.appendingPathComponent("index.sqlite").path] {
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(path)")
        }
    }

    @Test func sharedFolderRejected() throws {
        let temporary = try TemporaryStore()
        chmod(temporary.folder.path, 0o755)
        #expect(throws: StoreError.self) { try temporary.reopen() }
        do {
            _ = try temporary.reopen()
        } catch let error as StoreError {
            #expect(error.description.contains("chmod 700"))
        }
    }

    @Test func idsSortInStoringOrder() throws {
        let temporary = try TemporaryStore()
        var ids: [String] = []
        for _ in 0..<20 {
            ids.append(try temporary.store.add(newMessage(), content: sampleContent).id)
        }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == 20)
        #expect(try temporary.store.messages(in: .outbox).map(\.id) == ids)
    }

    @Test func failedWriteLeavesNothing() throws {
        struct WriteFailed: Error {}
        let temporary = try TemporaryStore()
        #expect(throws: WriteFailed.self) {
            _ = try temporary.store.add(newMessage()) { writer in
                try writer.write(sampleContent)
                throw WriteFailed()
            }
        }
        #expect(try temporary.store.messages().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary.folder.appendingPathComponent("tmp").path).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary.folder.appendingPathComponent("messages").path).isEmpty)
    }
}

@Suite struct MailStoreQueueTests {
    @Test func claimLeasesToOneOwner() throws {
        let temporary = try TemporaryStore()
        for _ in 0..<5 {
            _ = try temporary.store.add(newMessage(), content: sampleContent)
        }
        let first = try temporary.store.claim(owner: "one", limit: 3)
        let second = try temporary.store.claim(owner: "two", limit: 10)
        #expect(first.count == 3)
        #expect(second.count == 2)
        #expect(Set(first.map(\.id)).isDisjoint(with: second.map(\.id)))
        #expect(try temporary.store.claim(owner: "three", limit: 10).isEmpty)

        try temporary.store.releaseLeases(first.map(\.id), owner: "one")
        #expect(try temporary.store.claim(owner: "three", limit: 10).map(\.id) == first.map(\.id))
    }

    @Test func expiredLeaseClaimedAgain() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        let now = Date()
        #expect(try temporary.store.claim(owner: "one", limit: 1, leaseDuration: 60, now: now).count == 1)
        #expect(try temporary.store.claim(owner: "two", limit: 1, now: now.addingTimeInterval(30)).isEmpty)
        let later = try temporary.store.claim(owner: "two", limit: 1, now: now.addingTimeInterval(61))
        #expect(later.map(\.id) == [stored.id])
    }

    @Test func deadProcessLeaseReleased() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        #expect(try temporary.store.claim(owner: "one", limit: 1).count == 1)
        // Pretend the lease belongs to a process that has exited.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        try temporary.store.withLock { () throws(StoreError) in
            try temporary.store.index.query(
                "UPDATE messages SET lease_pid = ? WHERE id = ?", [.integer(Int64(child.processIdentifier)), .text(stored.id)])
        }
        #expect(try temporary.store.claim(owner: "two", limit: 1).map(\.id) == [stored.id])
    }

    @Test func leaseOfExitedProcessNotShown() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        #expect(try temporary.store.claim(owner: "one", limit: 1).count == 1)
        #expect(try temporary.store.message(id: stored.id)?.leaseOwner == "one")

        // A flusher killed with SIGKILL leaves its lease behind until the next claim.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        try temporary.store.withLock { () throws(StoreError) in
            try temporary.store.index.query(
                "UPDATE messages SET lease_pid = ? WHERE id = ?", [.integer(Int64(child.processIdentifier)), .text(stored.id)])
        }
        let message = try #require(try temporary.store.message(id: stored.id))
        #expect(message.leaseOwner == nil)
        #expect(message.leaseExpires == nil)
    }

    @Test func expiredLeaseNotShown() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        let past = Date().addingTimeInterval(-3600)
        #expect(try temporary.store.claim(owner: "one", limit: 1, ignoringBackoff: true, leaseDuration: 60, now: past).count == 1)
        let message = try #require(try temporary.store.message(id: stored.id))
        #expect(message.leaseOwner == nil)
    }

    @Test func heldAndDeferredNotClaimed() throws {
        let temporary = try TemporaryStore()
        let held = try temporary.store.add(newMessage(held: true), content: sampleContent)
        let deferred = try temporary.store.add(newMessage(), content: sampleContent)
        let claimed = try temporary.store.claim(owner: "one", limit: 10)
        #expect(claimed.map(\.id) == [deferred.id])
        let later = Date().addingTimeInterval(3600)
        try temporary.store.record(deferred.id, owner: "one", DeliveryUpdate(
            recipients: [StoredRecipient(address: "rcpt@example.org", state: .deferred)], folder: .outbox,
            nextAttempt: later, lastError: "451 try later"))
        #expect(try temporary.store.claim(owner: "one", limit: 10).isEmpty)
        #expect(try temporary.store.claim(owner: "one", limit: 10, now: later.addingTimeInterval(1)).map(\.id) == [deferred.id])

        try temporary.store.release(held.id)
        #expect(try temporary.store.claim(owner: "two", limit: 10).map(\.id) == [held.id])
    }

    @Test func recordKeepsRecipientStates() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(["a@example.org", "b@example.org", "c@example.org"]), content: sampleContent)
        _ = try temporary.store.claim(owner: "one", limit: 1)
        try temporary.store.record(stored.id, owner: "one", DeliveryUpdate(
            recipients: [
                StoredRecipient(address: "a@example.org", state: .delivered, reply: StoredReply(code: 250, text: "OK")),
                StoredRecipient(address: "b@example.org", state: .deferred, reply: StoredReply(code: 450, text: "busy")),
                StoredRecipient(address: "c@example.org", state: .failed, reply: StoredReply(code: 550, text: "no such user")),
            ],
            folder: .outbox, nextAttempt: Date(), lastError: "partly refused"))
        let message = try #require(try temporary.reopen().message(id: stored.id))
        #expect(message.recipients.map(\.state) == [.delivered, .deferred, .failed])
        #expect(message.recipients[2].reply == StoredReply(code: 550, text: "no such user"))
        #expect(message.outstandingRecipients.map(\.address) == ["b@example.org"])
        #expect(message.attempts == 1)
        #expect(message.leaseOwner == nil)
    }

    @Test func recordManyInOneTransaction() throws {
        let temporary = try TemporaryStore()
        let first = try temporary.store.add(newMessage(), content: sampleContent)
        let second = try temporary.store.add(newMessage(["a@example.org", "b@example.org"]), content: sampleContent)
        #expect(try temporary.store.claim(owner: "one", limit: 10).count == 2)
        let delivered = StoredRecipient(address: "rcpt@example.org", state: .delivered, reply: StoredReply(code: 250, text: "OK"))
        let deferred = DeliveryUpdate(
            recipients: [
                StoredRecipient(address: "a@example.org", state: .delivered, reply: StoredReply(code: 250, text: "OK")),
                StoredRecipient(address: "b@example.org", state: .deferred, reply: StoredReply(code: 451, text: "later")),
            ],
            folder: .outbox, nextAttempt: Date().addingTimeInterval(60), lastError: "451 later")
        try temporary.store.record(
            [(first.id, DeliveryUpdate(recipients: [delivered], folder: .sent)), (second.id, deferred)], owner: "one")

        let store = try temporary.reopen()
        let sent = try #require(try store.message(id: first.id))
        #expect(sent.folder == .sent)
        #expect(sent.recipients == [delivered])
        let waiting = try #require(try store.message(id: second.id))
        #expect(waiting.folder == .outbox)
        #expect(waiting.recipients.map(\.state) == [.delivered, .deferred])
        #expect(waiting.lastError == "451 later")
        #expect(sent.attempts == 1)
        #expect(waiting.attempts == 1)
        #expect(sent.leaseOwner == nil)
        #expect(waiting.leaseOwner == nil)
    }

    @Test func recordManyIsAllOrNothing() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        _ = try temporary.store.claim(owner: "one", limit: 1)
        let update = DeliveryUpdate(
            recipients: [StoredRecipient(address: "rcpt@example.org", state: .delivered)], folder: .sent)
        #expect(throws: StoreError.noSuchMessage("no-such-id")) {
            try temporary.store.record([(stored.id, update), ("no-such-id", update)], owner: "one")
        }
        let message = try #require(try temporary.reopen().message(id: stored.id))
        #expect(message.folder == .outbox)
        #expect(message.attempts == 0)
    }

    @Test func retryRequeuesFailedRecipients() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(["a@example.org", "b@example.org"]), content: sampleContent)
        _ = try temporary.store.claim(owner: "one", limit: 1)
        try temporary.store.record(stored.id, owner: "one", DeliveryUpdate(
            recipients: [
                StoredRecipient(address: "a@example.org", state: .delivered),
                StoredRecipient(address: "b@example.org", state: .failed),
            ],
            folder: .failed))
        try temporary.store.retry(stored.id)
        let message = try #require(try temporary.store.message(id: stored.id))
        #expect(message.folder == .outbox)
        #expect(message.recipients.map(\.state) == [.delivered, .pending])
    }

    @Test func holdEndsWhenMessageLeavesOutbox() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        _ = try temporary.store.claim(owner: "one", limit: 1)
        // Held while the attempt that delivers it is in progress.
        try temporary.store.hold(stored.id)
        try temporary.store.record(stored.id, owner: "one", DeliveryUpdate(
            recipients: [StoredRecipient(address: "rcpt@example.org", state: .delivered)], folder: .sent))
        let message = try #require(try temporary.store.message(id: stored.id))
        #expect(message.folder == .sent)
        #expect(!message.held)
    }

    @Test func holdOutsideOutboxRejected() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(folder: .drafts), content: sampleContent)
        #expect(throws: StoreError.self) { try temporary.store.hold(stored.id) }
        #expect(throws: StoreError.noSuchMessage("nope")) { try temporary.store.hold("nope") }
    }

    @Test func deleteRemovesEntryAndFile() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        try temporary.store.delete(stored.id)
        #expect(try temporary.store.message(id: stored.id) == nil)
        #expect(!FileManager.default.fileExists(atPath: temporary.store.contentURL(id: stored.id).path))
    }

    @Test func deleteWhileSendingRejected() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        _ = try temporary.store.claim(owner: "one", limit: 1)
        #expect(throws: StoreError.self) { try temporary.store.delete(stored.id) }
    }

    @Test func expediteAffectsOneRoute() throws {
        let temporary = try TemporaryStore()
        let first = try temporary.store.add(newMessage(route: "a"), content: sampleContent)
        let second = try temporary.store.add(newMessage(route: "b"), content: sampleContent)
        for message in [first, second] {
            _ = try temporary.store.claim(owner: "one", ids: [message.id], limit: 1)
            try temporary.store.record(message.id, owner: "one", DeliveryUpdate(
                recipients: [StoredRecipient(address: "rcpt@example.org", state: .deferred)], folder: .outbox,
                nextAttempt: Date().addingTimeInterval(3600)))
        }
        #expect(try temporary.store.expediteRoute("a") == 1)
        #expect(try temporary.store.claim(owner: "two", limit: 10).map(\.id) == [first.id])
    }
}
