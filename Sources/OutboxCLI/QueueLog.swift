import Foundation
import MailStore
import Outbox

/// The log lines of `outbox queue flush` and `outbox queue run`: one per message tried, in the
/// style of msmtp's log with the message id and the server of its route, and the service's starts,
/// stops and errors.
struct QueueLog {
    let log: DeliveryLog

    /// Writes a line for each message that the flush sent, failed or deferred.
    func messages(_ report: FlushReport, store: MailStore) {
        guard log.isEnabled else { return }
        let outcomes: [(ids: [String], status: ExitCode)] = [
            (report.sent, .success), (report.failed, .unavailable), (report.deferred, .temporaryFailure),
        ]
        for (ids, status) in outcomes {
            for id in ids {
                guard let message = try? store.message(id: id) else { continue }
                log.write(Self.line(message, status: status), isError: status != .success, command: "queue")
            }
        }
    }

    /// Writes a line about the service, such as a start, a stop or an error it handled.
    func event(_ text: String, isError: Bool = false) {
        guard log.isEnabled else { return }
        log.write(DeliveryLogEntry.clean(text), isError: isError, command: "queue")
    }

    static func line(_ message: StoredMessage, status: ExitCode) -> String {
        let reply = message.recipients.last { $0.reply != nil }?.reply
        var fields = [
            "id=\(message.id)", "host=\(OutboxSender.server(message.route))", "from=\(message.sender)",
            "recipients=\(message.recipients.map(\.address).joined(separator: ","))", "mailsize=\(message.size)",
        ]
        if let reply {
            fields.append("smtpstatus=\(reply.code)")
            fields.append("smtpmsg='\(DeliveryLogEntry.clean(reply.description))'")
        }
        if status != .success, let error = message.lastError {
            fields.append("errormsg='\(DeliveryLogEntry.clean(error))'")
        }
        fields.append("exitcode=\(status.name)")
        return fields.joined(separator: " ")
    }
}
