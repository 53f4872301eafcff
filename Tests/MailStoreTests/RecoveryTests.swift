import Foundation
import Testing
@testable import MailStore

/// Opening a store finishes what a writer that died part-way left behind.
@Suite struct RecoveryTests {
    /// Returns the id of a process that has exited.
    private func deadProcessID() throws -> Int64 {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        return Int64(child.processIdentifier)
    }

    /// Leaves an entry as a writer that died after step `step` would: 1, the index entry only;
    /// 2, the content file in place too.
    private func simulateCrashedWriter(_ temporary: TemporaryStore, step: Int) throws -> String {
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        let pid = try deadProcessID()
        try temporary.store.withLock { () throws(StoreError) in
            try temporary.store.index.query(
                "UPDATE messages SET folder = 'incoming', writer_pid = ? WHERE id = ?", [.integer(pid), .text(stored.id)])
        }
        if step == 1 {
            try FileManager.default.removeItem(at: temporary.store.contentURL(id: stored.id))
        }
        return stored.id
    }

    @Test func deadWritersMessageMovesToDrafts() throws {
        let temporary = try TemporaryStore()
        let id = try simulateCrashedWriter(temporary, step: 2)
        #expect(try temporary.store.message(id: id)?.folder == nil)

        let message = try #require(try temporary.reopen().message(id: id))
        #expect(message.folder == .drafts)
        #expect(message.lastError?.contains("Recovered") == true)
        #expect(message.size == sampleContent.count)
        // It is not sent on its own, but retry sends it.
        #expect(try temporary.store.claim(owner: "one", limit: 10).isEmpty)
        try temporary.store.retry(id)
        #expect(try temporary.store.claim(owner: "one", limit: 10).map(\.id) == [id])
    }

    @Test func deadWritersEmptyEntryRemoved() throws {
        let temporary = try TemporaryStore()
        let id = try simulateCrashedWriter(temporary, step: 1)
        let reopened = try temporary.reopen()
        #expect(try reopened.message(id: id) == nil)
        #expect(try reopened.counts().isEmpty)
    }

    @Test func liveWritersEntryKept() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        try temporary.store.withLock { () throws(StoreError) in
            try temporary.store.index.query(
                "UPDATE messages SET folder = 'incoming', writer_pid = ? WHERE id = ?",
                [.integer(Int64(getpid())), .text(stored.id)])
        }
        let reopened = try temporary.reopen()
        #expect(try reopened.messages().isEmpty)
        #expect(FileManager.default.fileExists(atPath: reopened.contentURL(id: stored.id).path))
    }

    @Test func deadWritersTemporaryFileRemoved() throws {
        let temporary = try TemporaryStore()
        let tmp = temporary.folder.appendingPathComponent("tmp")
        let dead = tmp.appendingPathComponent("0000000000000abcdef1.\(try deadProcessID())")
        let live = tmp.appendingPathComponent("0000000000000abcdef2.\(getpid())")
        try Data(sampleContent).write(to: dead)
        try Data(sampleContent).write(to: live)
        _ = try temporary.reopen()
        #expect(!FileManager.default.fileExists(atPath: dead.path))
        #expect(FileManager.default.fileExists(atPath: live.path))
    }

    @Test func lostIndexRebuiltIntoDrafts() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(at: temporary.folder.appendingPathComponent("index.sqlite\(suffix)"))
        }
        let message = try #require(try temporary.reopen().message(id: stored.id))
        #expect(message.folder == .drafts)
        #expect(message.size == sampleContent.count)
    }

    @Test func emptiedIndexRebuiltIntoDrafts() throws {
        let temporary = try TemporaryStore()
        let stored = try temporary.store.add(newMessage(), content: sampleContent)
        // An index file cut to 0 bytes, as a crash on some file systems leaves it, has no schema.
        // The store still open here keeps its file, so the empty one is a new file in its place.
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(at: temporary.folder.appendingPathComponent("index.sqlite\(suffix)"))
        }
        try Data().write(to: temporary.folder.appendingPathComponent("index.sqlite"))
        let message = try #require(try temporary.reopen().message(id: stored.id))
        #expect(message.folder == .drafts)
        #expect(message.size == sampleContent.count)
    }
}
