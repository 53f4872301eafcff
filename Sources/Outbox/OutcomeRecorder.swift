import Foundation
import MailStore

/// Records delivery outcomes in the store on a queue of its own, several in one transaction.
///
/// A transaction per outcome would cost most of a flush's time. Each commit writes the changed index
/// pages to the WAL and takes the file locks again. Connections that finish messages at the same
/// moment would also wait for one another's commits. Instead each outcome joins a queue, and one
/// commit records every outcome waiting at that moment. The connections submit outcomes through a `Lane`,
/// which keeps each of them at most one outcome ahead of the store.
final class OutcomeRecorder: @unchecked Sendable {
    /// A closure called once the outcome is committed, or with the error when it could not be.
    typealias Completion = @Sendable (Result<Void, StoreError>) -> Void

    private struct Pending {
        let sequence: UInt64
        let id: String
        let update: DeliveryUpdate
        let completion: Completion
    }

    private let store: MailStore
    private let owner: String
    private let queue = DispatchQueue(label: "outbox.outcome-recorder")
    // Guards the properties below.
    private let condition = NSCondition()
    private var pending: [Pending] = []
    private var lastSequence: UInt64 = 0
    private var recordedThrough: UInt64 = 0
    private var draining = false

    init(store: MailStore, owner: String) {
        self.store = store
        self.owner = owner
    }

    /// Queues an outcome and returns its sequence number, for `waitUntilRecorded(through:)`.
    func submit(_ id: String, _ update: DeliveryUpdate, completion: @escaping Completion) -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        lastSequence += 1
        pending.append(Pending(sequence: lastSequence, id: id, update: update, completion: completion))
        if !draining {
            draining = true
            queue.async { self.drain() }
        }
        return lastSequence
    }

    /// Returns once every outcome up to `sequence` is committed and its completion has run.
    func waitUntilRecorded(through sequence: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        while recordedThrough < sequence {
            condition.wait()
        }
    }

    /// Commits the waiting outcomes, group after group, until none is left.
    private func drain() {
        while true {
            condition.lock()
            let group = pending
            pending.removeAll(keepingCapacity: true)
            if group.isEmpty {
                draining = false
                condition.unlock()
                return
            }
            condition.unlock()

            let now = Date()
            do {
                try store.record(group.map { ($0.id, $0.update) }, owner: owner, now: now)
                for item in group {
                    item.completion(.success(()))
                }
            } catch {
                // One bad outcome, such as a message deleted meanwhile, fails the whole transaction.
                // Recording the group's outcomes one by one then keeps the others.
                for item in group {
                    do {
                        try store.record(item.id, owner: owner, item.update, now: now)
                        item.completion(.success(()))
                    } catch {
                        item.completion(.failure(error))
                    }
                }
            }

            condition.lock()
            recordedThrough = group[group.count - 1].sequence
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The outcomes of one connection. Each submission waits until the connection's previous outcome
    /// is committed. The connection's next message thus overlaps the commit of the one before it.
    /// At most two of its messages at a time are delivered without a recorded outcome: the one
    /// whose outcome is being recorded and the one whose reply is awaited.
    final class Lane: @unchecked Sendable {
        private let recorder: OutcomeRecorder
        // Guarded by the recorder's condition.
        private var last: UInt64 = 0

        init(_ recorder: OutcomeRecorder) {
            self.recorder = recorder
        }

        func record(_ id: String, _ update: DeliveryUpdate, completion: @escaping Completion) {
            let sequence = recorder.submit(id, update, completion: completion)
            recorder.condition.lock()
            let previous = last
            last = sequence
            recorder.condition.unlock()
            recorder.waitUntilRecorded(through: previous)
        }

        /// Returns once every outcome of this lane is committed.
        func waitUntilRecorded() {
            recorder.condition.lock()
            let sequence = last
            recorder.condition.unlock()
            recorder.waitUntilRecorded(through: sequence)
        }
    }
}
