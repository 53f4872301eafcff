import Foundation
import MailStore
import OutboxTestSupport
import Testing
@testable import OutboxCLI

#if canImport(Glibc)
import Glibc
#endif

/// The store and the sender under crashes, a full disk and concurrent processes, with the built
/// `outbox` executable as child processes and smtp-sink as the server.
@Suite(.enabled(if: SMTPSink.isAvailable, Comment(rawValue: SMTPSink.skipComment)), .serialized)
struct DurabilityTests {
    // MARK: - Killed flushes

    /// The connections that `outbox queue flush` opens to one server by default.
    private static let flushConnections = 4

    @Test(.timeLimit(.minutes(2)))
    func killedFlushLosesNothing() async throws {
        let messageCount = 1000
        let killCount = 20
        let sink = try await SMTPSink.start(dumpsMessages: true)
        defer { sink.stop() }
        let fixture = try QueueFixture(port: sink.port, parent: QueueFixture.fastParent)
        defer { fixture.remove() }

        let clock = ContinuousClock()
        let started = clock.now
        let markers = try fixture.queueDirectly(count: messageCount, prefix: "kill-\(UUID().uuidString.prefix(8))")
        let queuedAfter = clock.now - started

        // A flush sends about 1,000 messages a second to smtp-sink, so kills at random times alone
        // would mostly find it finished. Each flush is killed instead once it has moved a random
        // number of messages to Sent, or after a random delay of 20 to 300 ms, whichever comes first.
        let observer = try MailStore(url: fixture.storeURL)
        var killedCount = 0
        var killPoints: [String] = []
        for _ in 0..<killCount {
            let sentAtStart = try observer.counts()[.sent] ?? 0
            let target = Int.random(in: 1...50)
            let deadline = ContinuousClock.now + .milliseconds(Int.random(in: 20...300))
            let flush = try ChildProcess(outbox: fixture.queue("flush"))
            var sentByFlush = 0
            while ContinuousClock.now < deadline, sentByFlush < target, flush.process.isRunning {
                try await Task.sleep(for: .milliseconds(1))
                sentByFlush = (try observer.counts()[.sent] ?? 0) - sentAtStart
            }
            flush.kill()
            if flush.wasKilled {
                killedCount += 1
                killPoints.append("\(sentByFlush)/\(target)")
            }
        }
        let sentBeforeFinal = try MailStore(url: fixture.storeURL).messages(in: .sent).count
        // Every flush is dead, so no message may show as being sent.
        let stillLeased = try observer.messages(in: .outbox).filter { $0.leaseOwner != nil }
        #expect(stillLeased.isEmpty, "\(stillLeased.count) messages leased by killed flushes")
        let killsEndedAfter = clock.now - started

        let final = try ChildProcess(outbox: fixture.queue("flush"))
        let status = try await final.wait(timeout: .seconds(60))
        #expect(status == 0, "\(final.errorOutput)")
        let finishedAfter = clock.now - started

        let store = try MailStore(url: fixture.storeURL)
        let sent = try store.messages(in: .sent)
        #expect(sent.count == messageCount)
        #expect(try store.messages(in: .outbox).isEmpty)
        #expect(try store.messages(in: .failed).isEmpty)
        #expect(try store.messages(in: .drafts).isEmpty)
        let sentIDs = Set(sent.compactMap(\.messageID))
        let expectedIDs = Set(markers.map { "<\($0)@example.org>" })
        #expect(sentIDs == expectedIDs)
        let contentFiles = try FileManager.default.contentsOfDirectory(
            atPath: fixture.storeURL.appendingPathComponent("messages").path)
        #expect(contentFiles.count == messageCount)

        try await sink.waitForMessages(count: messageCount)
        let counts = try sink.markerCounts()
        let missing = markers.filter { counts[$0] == nil }
        #expect(missing.isEmpty, "never delivered: \(missing.prefix(10))")
        let unexpected = Set(counts.keys).subtracting(markers)
        #expect(unexpected.isEmpty, "unknown markers: \(unexpected.prefix(10))")
        let duplicated = counts.filter { $0.value > 1 }
        let duplicates = duplicated.values.reduce(0) { $0 + $1 - 1 }

        // A SIGKILL can only repeat a message whose final "." was written but whose reply was not yet
        // recorded. With PIPELINING, the sender writes the next message's content only after its 354
        // reply, which comes behind the reply to the previous ".", and a connection goes on to its
        // next message only once the outcome before the one just received is recorded. So each
        // connection has at most two such messages at a time: one whose outcome is being recorded
        // and one whose reply is awaited.
        let bound = killedCount * Self.flushConnections * 2
        print(
            "killedFlushLosesNothing: \(messageCount) messages queued in \(queuedAfter); \(killedCount) of "
                + "\(killCount) flushes killed after moving (to Sent/target) \(killPoints.joined(separator: " ")), "
                + "\(sentBeforeFinal) in Sent before the final flush; the final flush ended at \(finishedAfter) "
                + "(kills done at \(killsEndedAfter)); \(sink.receivedMessageCount()) transactions at smtp-sink, "
                + "\(duplicates) duplicate(s) in \(duplicated.count) message(s), bound \(bound)")
        #expect(duplicates <= bound, "duplicated: \(duplicated.sorted { $0.key < $1.key }.prefix(20))")
    }

    // MARK: - Concurrent senders

    @Test(.timeLimit(.minutes(2)))
    func concurrentSendsAndFlush() async throws {
        // Enough for the flush to run for about a second, while the sends start.
        let queuedCount = 600
        let senderCount = 8
        let messagesPerSender = 5
        let sink = try await SMTPSink.start(dumpsMessages: true)
        defer { sink.stop() }
        let fixture = try QueueFixture(port: sink.port)
        defer { fixture.remove() }
        let run = UUID().uuidString.prefix(8)
        var markers = try fixture.queueDirectly(count: queuedCount, prefix: "queued-\(run)")

        let clock = ContinuousClock()
        let started = clock.now
        let flush = try ChildProcess(outbox: fixture.queue("flush"))
        let results = try await withThrowingTaskGroup(of: [(marker: String, status: Int32, error: String)].self) { group in
            for sender in 0..<senderCount {
                group.addTask {
                    var results: [(marker: String, status: Int32, error: String)] = []
                    for number in 0..<messagesPerSender {
                        let marker = "send-\(run)-\(sender)-\(number)"
                        let child = try ChildProcess(
                            outbox: fixture.send("--queue"), input: QueueFixture.message(marker: marker))
                        let status = try await child.wait(timeout: .seconds(60))
                        results.append((marker, status, child.errorOutput))
                    }
                    return results
                }
            }
            var all: [(marker: String, status: Int32, error: String)] = []
            for try await results in group {
                all += results
            }
            return all
        }
        let sendsEndedAfter = clock.now - started
        let flushStatus = try await flush.wait(timeout: .seconds(60))
        #expect(flushStatus == 0, "\(flush.errorOutput)")
        #expect(!flush.errorOutput.localizedCaseInsensitiveContains("locked"), "\(flush.errorOutput)")
        for result in results {
            #expect(result.status == 0, "\(result.marker): \(result.error)")
            #expect(!result.error.localizedCaseInsensitiveContains("locked"), "\(result.marker): \(result.error)")
        }
        markers += results.map(\.marker)

        let store = try MailStore(url: fixture.storeURL)
        let sent = try store.messages(in: .sent)
        let sentIDs = sent.compactMap(\.messageID)
        #expect(sentIDs.count == markers.count)
        #expect(Set(sentIDs) == Set(markers.map { "<\($0)@example.org>" }))
        #expect(try store.messages(in: .outbox).isEmpty)
        #expect(try store.messages(in: .failed).isEmpty)
        #expect(try store.messages(in: .drafts).isEmpty)
        #expect(sent.allSatisfy { $0.attempts == 1 }, "messages tried more than once")

        // Leases keep two processes from sending one message, and nothing was killed, so each
        // message reaches the server exactly once.
        try await sink.waitForMessages(count: markers.count)
        let counts = try sink.markerCounts()
        let missing = markers.filter { counts[$0] == nil }
        #expect(missing.isEmpty, "never delivered: \(missing.prefix(10))")
        let duplicated = counts.filter { $0.value > 1 }
        #expect(duplicated.isEmpty, "delivered more than once: \(duplicated.prefix(10))")
        let sentBySends = results.map(\.error).filter { $0.contains("went out too") }.count
        print(
            "concurrentSendsAndFlush: \(markers.count) messages, \(sink.receivedMessageCount()) transactions "
                + "at smtp-sink; \(sentBySends) of \(results.count) sends also sent other queued messages; the sends "
                + "ended after \(sendsEndedAfter); the flush printed: \(flush.errorOutput)")
    }

    // MARK: - A server that comes back

    @Test(.timeLimit(.minutes(1)))
    func serverBackSendsDeferredMessages() async throws {
        // Nothing listens on the port at first, so the messages are deferred.
        let port = try findFreeLoopbackPort()
        let fixture = try QueueFixture(port: port)
        defer { fixture.remove() }
        let run = UUID().uuidString.prefix(8)
        let deferredMarkers = (0..<3).map { "deferred-\(run)-\($0)" }
        for marker in deferredMarkers {
            let child = try ChildProcess(outbox: fixture.send("--queue"), input: QueueFixture.message(marker: marker))
            let status = try await child.wait(timeout: .seconds(30))
            #expect(status == 0, "\(child.errorOutput)")
            #expect(child.errorOutput.contains("stays queued"), "\(child.errorOutput)")
        }
        let deferred = try MailStore(url: fixture.storeURL).messages(in: .outbox)
        #expect(deferred.count == deferredMarkers.count)
        #expect(deferred.allSatisfy { ($0.nextAttempt ?? .distantPast) > Date() }, "deferred messages due already")

        let sink = try await SMTPSink.start(dumpsMessages: true, port: port)
        defer { sink.stop() }
        let newMarker = "new-\(run)"
        let child = try ChildProcess(outbox: fixture.send("--queue"), input: QueueFixture.message(marker: newMarker))
        let status = try await child.wait(timeout: .seconds(30))
        #expect(status == 0, "\(child.errorOutput)")
        #expect(child.errorOutput.contains("3 other queued message(s) for the same server were sent too"), "\(child.errorOutput)")

        let store = try MailStore(url: fixture.storeURL)
        #expect(try store.messages(in: .outbox).isEmpty)
        #expect(try store.messages(in: .sent).count == deferredMarkers.count + 1)
        try await sink.waitForMessages(count: deferredMarkers.count + 1)
        let counts = try sink.markerCounts()
        for marker in deferredMarkers + [newMarker] {
            #expect(counts[marker] == 1, "\(marker) delivered \(counts[marker] ?? 0) times")
        }
    }
}
