import Foundation
import Synchronization
import Testing
@testable import MailStore
@testable import Outbox

/// The recorder that commits delivery outcomes in groups. Each test holds the store's lock on a
/// thread of its own, so that the recorder's commits wait, and checks the submitting side meanwhile.
@Suite struct OutcomeRecorderTests {
    /// Holds the store's lock on a thread of its own from `init` until `open()`.
    private final class StoreGate: @unchecked Sendable {
        private let held = DispatchSemaphore(value: 0)
        private let opened = DispatchSemaphore(value: 0)

        init(_ store: MailStore) {
            let thread = Thread { [held, opened] in
                try? store.withLock { () throws(StoreError) in
                    held.signal()
                    opened.wait()
                }
            }
            thread.start()
            held.wait()
        }

        func open() {
            opened.signal()
        }
    }

    private static func delivered() -> DeliveryUpdate {
        DeliveryUpdate(
            recipients: [StoredRecipient(address: "rcpt@example.org", state: .delivered, reply: StoredReply(code: 250, text: "OK"))],
            folder: .sent)
    }

    /// Returns once `condition` is true, or after `limit`.
    private static func wait(upTo limit: Duration = .seconds(10), for condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition(), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func laneWaitsForPreviousOutcome() async throws {
        let fixture = try SenderFixture()
        let first = try fixture.queue(port: 25)
        let second = try fixture.queue(port: 25)
        #expect(try fixture.store.claim(owner: "test", limit: 10).count == 2)
        let recorder = OutcomeRecorder(store: fixture.store, owner: "test")
        let lane = OutcomeRecorder.Lane(recorder)

        let gate = StoreGate(fixture.store)
        // Nothing of this lane is outstanding yet, so the first outcome is only queued.
        lane.record(first, Self.delivered()) { _ in }
        let returned = Atomic(false)
        Thread {
            lane.record(second, Self.delivered()) { _ in }
            returned.store(true, ordering: .sequentiallyConsistent)
        }.start()
        try await Task.sleep(for: .milliseconds(300))
        let returnedEarly = returned.load(ordering: .sequentiallyConsistent)
        #expect(!returnedEarly, "the second outcome did not wait for the first")

        gate.open()
        try await Self.wait { returned.load(ordering: .sequentiallyConsistent) }
        let returnedAfterCommit = returned.load(ordering: .sequentiallyConsistent)
        #expect(returnedAfterCommit)
        #expect(try fixture.message(first).folder == .sent)
        lane.waitUntilRecorded()
        #expect(try fixture.message(second).folder == .sent)
    }

    @Test func badOutcomeSparesItsGroup() async throws {
        let fixture = try SenderFixture()
        let ids = try (0..<3).map { _ in try fixture.queue(port: 25) }
        #expect(try fixture.store.claim(owner: "test", limit: 10).count == 3)
        let recorder = OutcomeRecorder(store: fixture.store, owner: "test")
        let results = Mutex<[String: Result<Void, StoreError>]>([:])
        let submitted = ids[0...1] + ["no-such-message"] + ids[2...]

        // With the lock held, the first commit waits. The outcomes after it pile up and are committed
        // as one group, with the missing message among them.
        let gate = StoreGate(fixture.store)
        var last: UInt64 = 0
        for id in submitted {
            last = recorder.submit(id, Self.delivered()) { result in
                results.withLock { $0[id] = result }
            }
        }
        gate.open()
        recorder.waitUntilRecorded(through: last)

        let seen = results.withLock { $0 }
        #expect(seen.count == 4)
        for id in ids {
            #expect((try? seen[id]?.get()) != nil, "\(id): \(String(describing: seen[id]))")
            #expect(try fixture.message(id).folder == .sent)
        }
        guard case .failure(let error)? = seen["no-such-message"] else {
            Issue.record("the missing message's outcome did not fail: \(String(describing: seen["no-such-message"]))")
            return
        }
        #expect(error == .noSuchMessage("no-such-message"))
    }
}
