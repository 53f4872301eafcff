import Foundation
import MailStore
import Synchronization

/// The state of a flush, reported after each step.
public struct FlushProgress: Sendable, Hashable {
    /// The current step of a connection.
    public enum Activity: Sendable, Hashable, CustomStringConvertible {
        case starting
        case connecting(route: String)
        case sending(route: String)
        case quitting(route: String)
        case finished

        public var description: String {
            switch self {
            case .starting: "starting"
            case .connecting(let route): "connecting to \(OutboxSender.server(route))"
            case .sending(let route): "sending to \(OutboxSender.server(route))"
            case .quitting(let route): "closing the connection to \(OutboxSender.server(route))"
            case .finished: "finished"
            }
        }
    }

    /// The messages due when the flush started, and those that became due during it.
    public var total: Int
    /// Messages moved to Sent.
    public var sent: Int
    /// Messages moved to Failed.
    public var failed: Int
    /// Messages tried and left in the Outbox for a later attempt.
    public var deferred: Int
    /// The size of the messages finished so far, and of all of them, in octets.
    public var bytesSent: Int
    public var bytesTotal: Int
    /// The latest step of any connection.
    public var activity: Activity

    /// Messages not yet tried in this flush.
    public var pending: Int { max(0, total - sent - failed - deferred) }
}

/// The outcome of a flush.
public struct FlushReport: Sendable {
    /// The messages moved to Sent, to Failed, and those left in the Outbox, by id.
    public var sent: [String] = []
    public var failed: [String] = []
    public var deferred: [String] = []
    /// Messages sent whose delivery the server did not confirm, because the connection ended after
    /// the message and before the reply. They stay in the Outbox and are sent again.
    public var unknownOutcomes: [String] = []
    /// Errors that kept messages from being tried at all, such as an unreadable password.
    public var errors: [String] = []
}

/// Counts the outcomes of a flush from all its connections and passes each new state on.
final class ProgressTracker: Sendable {
    private struct State {
        var progress: FlushProgress
        var report = FlushReport()
    }

    private let state: Mutex<State>
    private let report: (@Sendable (FlushProgress) -> Void)?

    init(total: Int, bytesTotal: Int, report: (@Sendable (FlushProgress) -> Void)?) {
        state = Mutex(State(progress: FlushProgress(
            total: total, sent: 0, failed: 0, deferred: 0, bytesSent: 0, bytesTotal: bytesTotal,
            activity: .starting)))
        self.report = report
    }

    func setActivity(_ activity: FlushProgress.Activity) {
        update { $0.progress.activity = activity }
    }

    func addToTotal(_ summary: (count: Int, bytes: Int)?) {
        guard let summary else { return }
        update {
            $0.progress.total += summary.count
            $0.progress.bytesTotal += summary.bytes
        }
    }

    func messageFinished(_ message: StoredMessage, update change: DeliveryUpdate) {
        update { state in
            switch change.folder {
            case .sent:
                state.progress.sent += 1
                state.report.sent.append(message.id)
            case .failed:
                state.progress.failed += 1
                state.report.failed.append(message.id)
            default:
                state.progress.deferred += 1
                state.report.deferred.append(message.id)
            }
            if change.outcomeUnknown {
                state.report.unknownOutcomes.append(message.id)
            }
            state.progress.bytesSent += message.size
            // Messages that became due during the flush were not in the first count.
            state.progress.total = max(state.progress.total, state.progress.sent + state.progress.failed
                + state.progress.deferred)
            state.progress.bytesTotal = max(state.progress.bytesTotal, state.progress.bytesSent)
        }
    }

    func messageReleased(_ message: StoredMessage) {
        update { $0.report.errors.append("Message \(message.id) was not sent: the flush was cancelled.") }
    }

    func noteError(_ text: String) {
        update { $0.report.errors.append(text) }
    }

    func finish() -> FlushReport {
        update { $0.progress.activity = .finished }
        return state.withLock { $0.report }
    }

    private func update(_ change: (inout State) -> Void) {
        let progress = state.withLock { state in
            change(&state)
            return state.progress
        }
        report?(progress)
    }
}
