import Foundation
@testable import MailStore
import OutboxTestSupport
import Testing
@testable import OutboxCLI

/// `outbox send --queue-only` into a store on a file system that fills up while it stores the message.
///
/// The store is copied onto a small tmpfs mounted in a private mount namespace of the child
/// (`unshare --user --map-root-user --mount`), so nothing outside the child sees the mount and it
/// goes away with the child. The tmpfs is filled with a file, which is then shortened by the room the
/// test leaves. Where user namespaces or mounts are not permitted, the test instead limits the file
/// size of the child with RLIMIT_FSIZE (`prlimit --fsize`), with SIGXFSZ ignored, so that writes past
/// the limit fail with EFBIG.
@Suite(.serialized)
struct DiskFullTests {
    /// The content of the message that does not fit: 1 MiB of text lines.
    private static let largeMessage: String = {
        let line = String(repeating: "0123456789abcdef", count: 4) + "\n"
        return QueueFixture.message(marker: "large") + String(repeating: line, count: 16 * 1024)
    }()

    /// Exit status of the script when it may not mount the tmpfs.
    private static let mountNotPermitted: Int32 = 200

    /// Mounts the tmpfs, copies the store onto it, fills it until `room` KiB are left, runs
    /// `outbox send`, and copies the store back out as the failed command left it. Its arguments are
    /// the store, the mount point, the outbox executable, the message file, the folder for the copy
    /// and the room in KiB. Then comes `stdin`, to read the message from standard input with TMPDIR
    /// on the tmpfs, or `file`, to pass it with --file. The arguments of `outbox send` follow.
    private static let tmpfsScript = """
        set -u
        store="$1" mountpoint="$2" outbox="$3" message="$4" copy="$5" room="$6" input="$7"
        shift 7
        mount -t tmpfs -o size=4m,mode=0700 tmpfs "$mountpoint" || exit 200
        cp -a "$store" "$mountpoint/store" || exit 201
        dd if=/dev/zero of="$mountpoint/filler" bs=64k 2>/dev/null
        if [ "$room" -gt 0 ]; then truncate -s "-${room}K" "$mountpoint/filler" || exit 202; fi
        if [ "$input" = stdin ]; then
            TMPDIR="$mountpoint" "$outbox" send --queue-only --store "$mountpoint/store" "$@" < "$message"
        else
            "$outbox" send --queue-only --store "$mountpoint/store" --file "$message" "$@"
        fi
        status=$?
        rm -f "$mountpoint/filler"
        cp -a "$mountpoint/store/." "$copy" || exit 203
        exit $status
        """

    /// Runs `outbox send` with the file size limited to `limit` octets. A shell ignores SIGXFSZ
    /// before it runs the command, and the command keeps that setting.
    private static let fileSizeLimitScript = """
        trap '' XFSZ
        limit="$1"
        shift
        exec prlimit --fsize="$limit" "$@"
        """

    // With SQLite 3.40, 0 KiB of room fails the opening of the index, 40 KiB the new index entry,
    // and 256 KiB the content file. The checks hold whichever step fails.
    @Test(arguments: [0, 40, 256])
    func fullDiskKeepsStoredMessages(roomKiB: Int) async throws {
        let fixture = try QueueFixture(port: try findFreeLoopbackPort())
        defer { fixture.remove() }
        let before = try queueEarlierMessages(fixture)

        let run = try await sendOnFullDisk(fixture, roomKiB: roomKiB, standardInput: false)
        #expect(run.status == ExitCode.ioError.rawValue, "\(run.errorOutput)")
        if run.usedTmpfs {
            #expect(run.errorOutput.contains("is full"), "\(run.errorOutput)")
        }
        try expectUnchanged(run.store, before: before)
    }

    /// A message read from standard input is copied to a temporary file first. When that file
    /// cannot be written, the error names it and the store is left as it was.
    @Test func fullTemporaryFolder() async throws {
        let fixture = try QueueFixture(port: try findFreeLoopbackPort())
        defer { fixture.remove() }
        let before = try queueEarlierMessages(fixture)

        let run = try await sendOnFullDisk(fixture, roomKiB: 256, standardInput: true)
        #expect(run.status == ExitCode.ioError.rawValue, "\(run.errorOutput)")
        #expect(run.errorOutput.contains("the temporary file"), "\(run.errorOutput)")
        #expect(run.errorOutput.contains("TMPDIR"), "\(run.errorOutput)")
        if run.usedTmpfs {
            #expect(run.errorOutput.contains("No space left on device"), "\(run.errorOutput)")
        }
        try expectUnchanged(run.store, before: before)
    }

    private struct FullDiskRun {
        let status: Int32
        let errorOutput: String
        /// The store as the failed command left it.
        let store: URL
        let usedTmpfs: Bool
    }

    /// Queues three messages and returns the store's messages.
    private func queueEarlierMessages(_ fixture: QueueFixture) throws -> [String: StoredSnapshot] {
        let earlier = try fixture.queueDirectly(count: 3, prefix: "earlier-\(UUID().uuidString.prefix(8))")
        let before = try snapshot(of: fixture.storeURL)
        #expect(before.count == earlier.count)
        return before
    }

    /// Runs `outbox send --queue-only` of the large message on a full tmpfs, or with a file size
    /// limit where no tmpfs can be mounted.
    private func sendOnFullDisk(_ fixture: QueueFixture, roomKiB: Int, standardInput: Bool) async throws -> FullDiskRun {
        let messageFile = fixture.directory.appendingPathComponent("large.eml")
        try Data(Self.largeMessage.utf8).write(to: messageFile)
        let mountpoint = fixture.directory.appendingPathComponent("tmpfs")
        let copy = fixture.directory.appendingPathComponent("copy")
        for folder in [mountpoint, copy] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        let outbox = try ChildProcess.outboxURL.path
        let sendArguments = ["-t"] + fixture.serverArguments

        let unshare = URL(fileURLWithPath: "/usr/bin/unshare")
        if FileManager.default.isExecutableFile(atPath: unshare.path) {
            let child = try ChildProcess(
                executable: unshare,
                arguments: ["--user", "--map-root-user", "--mount", "/bin/sh", "-c", Self.tmpfsScript, "sh",
                            fixture.storeURL.path, mountpoint.path, outbox, messageFile.path, copy.path,
                            String(roomKiB), standardInput ? "stdin" : "file"]
                    + sendArguments)
            let status = try await child.wait(timeout: .seconds(30))
            // unshare starts its own errors, such as a user namespace that is not permitted, with its
            // name or path, and then the script never ran.
            let scriptRan = !child.errorOutput.hasPrefix("unshare:") && !child.errorOutput.hasPrefix("\(unshare.path):")
            if scriptRan, status != Self.mountNotPermitted {
                print("DiskFullTests(\(roomKiB) KiB left): tmpfs, exit status \(status): \(child.errorOutput)")
                return FullDiskRun(status: status, errorOutput: child.errorOutput, store: copy, usedTmpfs: true)
            }
        }

        // No mount: the limit leaves room for the index to grow a little, but not for the message.
        let limit = String(256 * 1024)
        var arguments = ["-c", Self.fileSizeLimitScript, "sh", limit, outbox, "send", "--queue-only",
                         "--store", fixture.storeURL.path] + sendArguments
        if !standardInput {
            arguments += ["--file", messageFile.path]
        }
        let limited = try ChildProcess(
            executable: URL(fileURLWithPath: "/bin/sh"), arguments: arguments,
            input: standardInput ? Self.largeMessage : nil)
        let limitedStatus = try await limited.wait(timeout: .seconds(30))
        print("DiskFullTests(\(roomKiB) KiB left): RLIMIT_FSIZE, exit status \(limitedStatus): \(limited.errorOutput)")
        return FullDiskRun(
            status: limitedStatus, errorOutput: limited.errorOutput, store: fixture.storeURL, usedTmpfs: false)
    }

    /// Checks that the store at `url` has no file or index entry left by the failed command, and
    /// opens with the earlier messages as they were.
    private func expectUnchanged(_ url: URL, before: [String: StoredSnapshot]) throws {
        let contentFiles = try FileManager.default.contentsOfDirectory(
            atPath: url.appendingPathComponent("messages").path)
        #expect(Set(contentFiles) == Set(before.keys.map { "\($0).eml" }))
        let temporaryFiles = try FileManager.default.contentsOfDirectory(
            atPath: url.appendingPathComponent("tmp").path)
        #expect(temporaryFiles.isEmpty)

        let after = try snapshot(of: url)
        #expect(after == before)
        let store = try MailStore(url: url)
        let incoming = try store.withLock { () throws(StoreError) in
            try store.index.query("SELECT count(*) FROM messages WHERE folder = 'incoming'")
        }
        #expect(incoming.first?.first?.int == 0)
    }

    /// Returns the messages of the store at `url` by id: folder, Message-ID and content.
    private func snapshot(of url: URL) throws -> [String: StoredSnapshot] {
        let store = try MailStore(url: url)
        var messages: [String: StoredSnapshot] = [:]
        for message in try store.messages() {
            let content = try Data(contentsOf: store.contentURL(id: message.id))
            messages[message.id] = StoredSnapshot(folder: message.folder, messageID: message.messageID, content: content)
        }
        return messages
    }
}

private struct StoredSnapshot: Equatable {
    let folder: Folder
    let messageID: String?
    let content: Data
}
