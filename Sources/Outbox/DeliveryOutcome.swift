import Foundation
import MailStore
import SMTPCore

/// Turns the result of one attempt into the new state of a stored message: each recipient's state,
/// the folder, and the time of the next attempt.
struct DeliveryOutcome {
    let policy: RetryPolicy
    let now: Date

    /// Returns the update for `message` after an attempt that sent to the recipients at `attempted`, the
    /// positions in `message.recipients`, in the order they were given to the server.
    func update(
        for message: StoredMessage, attempted: [Int], result: Result<TransactionResult, SMTPError>
    ) -> DeliveryUpdate {
        var recipients = message.recipients
        var outcomeUnknown = false
        var lastError: String?
        switch result {
        case .success(let transaction):
            for (offset, position) in attempted.enumerated() {
                let reply = Self.reply(for: recipients[position].address, at: offset, in: transaction.recipients)
                guard let reply else { continue }
                if reply.isPositiveCompletion {
                    recipients[position].state = .delivered
                    recipients[position].reply = StoredReply(reply)
                    recipients[position].error = nil
                } else {
                    recipients[position].state = reply.isPermanentNegative ? .failed : .deferred
                    recipients[position].reply = StoredReply(reply)
                }
            }
            let refused = attempted.filter { recipients[$0].state != .delivered }
            if !refused.isEmpty {
                lastError = "The server rejected \(refused.count) of \(attempted.count) recipients."
            }
        case .failure(let error):
            lastError = error.description
            outcomeUnknown = Self.isOutcomeUnknown(error)
            for (offset, position) in attempted.enumerated() {
                let rcptReply = Self.reply(for: recipients[position].address, at: offset, in: error.recipientResults)
                if let rcptReply, !rcptReply.isPositiveCompletion {
                    // Refused at RCPT: the recipient's own reply decides.
                    recipients[position].state = rcptReply.isPermanentNegative ? .failed : .deferred
                    recipients[position].reply = StoredReply(rcptReply)
                    continue
                }
                recipients[position].state = error.isTemporary ? .deferred : .failed
                recipients[position].reply = error.reply.map(StoredReply.init)
                recipients[position].error = outcomeUnknown
                    ? "The server did not confirm the message after it was sent, so it may have been delivered: \(error)"
                    : error.description
            }
        }

        var nextAttempt: Date?
        if recipients.contains(where: { $0.state.isOutstanding }) {
            if policy.hasExpired(queued: message.queued, now: now) {
                let age = Self.describe(policy.maximumAge)
                for position in recipients.indices where recipients[position].state.isOutstanding {
                    recipients[position].state = .failed
                    recipients[position].error = "Gave up after \(age) in the outbox. "
                        + "Last error: \(recipients[position].error ?? recipients[position].reply?.description ?? "none")"
                }
                lastError = "Gave up after \(age) in the outbox. Last error: \(lastError ?? "none")"
            } else {
                nextAttempt = now.addingTimeInterval(policy.delay(afterAttempts: message.attempts + 1))
            }
        }
        let folder: Folder
        if recipients.contains(where: { $0.state.isOutstanding }) {
            folder = .outbox
        } else if recipients.contains(where: { $0.state == .failed }) {
            folder = .failed
        } else {
            folder = .sent
        }
        return DeliveryUpdate(
            recipients: recipients, folder: folder, nextAttempt: nextAttempt, lastError: lastError,
            outcomeUnknown: outcomeUnknown)
    }

    /// Returns a duration in the largest unit that fits it whole: days, hours, minutes or seconds.
    static func describe(_ seconds: TimeInterval) -> String {
        let units: [(TimeInterval, String)] = [(86400, "day"), (3600, "hour"), (60, "minute")]
        for (size, name) in units where seconds >= size {
            let count = (seconds / size * 10).rounded() / 10
            let text = count == count.rounded() ? String(Int(count)) : String(count)
            return "\(text) \(name)\(count == 1 ? "" : "s")"
        }
        let whole = Int(seconds.rounded())
        return "\(whole) second\(whole == 1 ? "" : "s")"
    }

    /// Returns whether the message may have been delivered although no reply confirmed it: after the final
    /// "." the connection ended, timed out or was cancelled, or the server sent something that is not a
    /// valid reply. A garbled line does not show whether the server took the message.
    static func isOutcomeUnknown(_ error: SMTPError) -> Bool {
        guard error.phase == .endOfData else { return false }
        switch error.kind {
        case .connectionClosed, .timedOut, .cancelled, .protocolViolation: return true
        default: return false
        }
    }

    /// Returns the reply to the RCPT of the recipient at `offset`, matched by position and checked by address.
    private static func reply(for address: String, at offset: Int, in results: [RecipientResult]) -> SMTPReply? {
        if offset < results.count, results[offset].address == address {
            return results[offset].reply
        }
        return results.first { $0.address == address }?.reply
    }
}

extension StoredReply {
    init(_ reply: SMTPReply) {
        // The description starts with the code, which StoredReply keeps apart.
        self.init(code: reply.code, text: String(reply.description.dropFirst(4)))
    }
}
