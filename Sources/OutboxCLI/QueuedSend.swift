import Foundation
import MailStore
import Outbox
import SMTPClient
import SMTPCore

/// `outbox send` with `--queue`, `--queue-only` or `--hold`: the message goes into the store's
/// outbox first, and is sent from there.
struct QueuedSend {
    enum Mode {
        /// Try at once; after a temporary failure the message stays queued.
        case now
        /// Queue only; the next flush, or the next message that gets through to the server, sends it.
        case later
        /// Keep it until it is released.
        case held
    }

    let options: ArgumentParser.Result
    let configuration: SMTPClientConfiguration
    let transcript: TranscriptHandler?
    let console: Console
    /// The options as given, without the configuration file's settings, for the stored account.
    let commandLine: ArgumentParser.Result
    let account: AccountSettings
    let log: DeliveryLog

    func run(_ prepared: PreparedMessage, mode: Mode) async throws -> ExitCode {
        let store = try StoreOptions.openStore(options, environment: console.environment)
        let policy = try StoreOptions.retryPolicy(options, command: "send")
        let notices = try StoreOptions.failureNotices(options, command: "send")
        let account = StoreOptions.account(commandLine, reference: self.account.reference)
        let stored = try add(prepared, to: store, account: account, held: mode == .held)

        switch mode {
        case .held:
            console.printError("outbox send: held as \(stored.id); after 'outbox queue release \(stored.id)' the next flush sends it.")
            return .success
        case .later:
            console.printError("outbox send: queued as \(stored.id); 'outbox queue flush' sends it.")
            return .success
        case .now:
            break
        }

        // Other messages for the same route share this account, so the configuration already read,
        // password included, serves them too.
        let configuration = self.configuration
        let environment = console.environment
        let console = self.console
        let fallback = StoreOptions.resolver(
            environment: environment, warn: { console.printError("outbox send: \($0)") })
        let sender = OutboxSender(
            store: store, configuration: .init(connectionsPerServer: 1, retryPolicy: policy, failureNotices: notices),
            transcript: transcript,
            resolveAccount: { text in text == account ? configuration : try fallback(text) })
        let (message, report) = try await sender.sendNow(stored.id)
        for error in report.errors {
            console.printError("outbox send: \(error)")
        }
        let othersSent = report.sent.filter { $0 != stored.id }.count
        if othersSent > 0 {
            console.printError("outbox send: \(othersSent) other queued message(s) for the same server were sent too.")
        }
        let status = self.report(message)
        if log.isEnabled {
            log.write(logEntry(message, status: status).line, isError: status != .success, command: "send")
        }
        return status
    }

    /// Returns the log line of a message after an attempt: the last reply that a recipient got, or the
    /// error that kept the message from being sent.
    private func logEntry(_ message: StoredMessage, status: ExitCode) -> DeliveryLogEntry {
        var entry = DeliveryLogEntry(
            configuration: configuration, sender: message.sender, recipients: message.recipients.map(\.address),
            size: message.size)
        let reply = message.recipients.last { $0.reply != nil }?.reply
        entry.smtpStatus = reply?.code
        entry.smtpMessage = reply?.description
        entry.error = message.folder == .sent ? nil : message.lastError
        entry.exitCode = message.folder == .outbox ? .temporaryFailure : status
        return entry
    }

    /// Copies the message as it will be sent (without Bcc) into the store.
    private func add(
        _ prepared: PreparedMessage, to store: MailStore, account: String, held: Bool
    ) throws -> StoredMessage {
        let new = NewMessage(
            sender: prepared.envelope.sender,
            recipients: prepared.envelope.recipients.map {
                StoredRecipient(address: $0.address, parameters: StoredDeliveryStatus.parameters($0.notify))
            },
            account: account, route: StoreOptions.route(account: account, configuration: configuration),
            envelopeOptions: StoredDeliveryStatus.envelopeOptions(prepared.envelope.deliveryStatus),
            messageID: prepared.messageID, subject: prepared.subject, held: held)
        do {
            return try store.add(new) { writer in
                var reader = try prepared.message.content.makeReader()
                while let chunk = try reader.read(maxLength: 64 * 1024) {
                    try chunk.withUnsafeBytes { buffer in try writer.write(buffer) }
                }
            }
        } catch let error as StoreError {
            throw SendCommand.Failure(message: "Storing the message failed: \(error)", exitCode: ExitCode(error))
        } catch {
            throw SendCommand.Failure(message: "Reading the message failed: \(error)", exitCode: .ioError)
        }
    }

    /// Prints the outcome and returns the exit status: 0 when every recipient got it or the message
    /// is queued for another attempt.
    private func report(_ message: StoredMessage) -> ExitCode {
        if options.flag("-v") {
            for recipient in message.recipients {
                let outcome = recipient.reply?.description ?? recipient.error ?? recipient.state.rawValue
                console.print("<\(recipient.address)>: \(outcome)")
            }
        }
        switch message.folder {
        case .sent:
            return .success
        case .outbox where message.attempts == 0:
            // Another process, such as 'outbox queue run', claimed the message first.
            console.printError("outbox send: queued as \(message.id); another process is sending it.")
            return .success
        case .outbox:
            let when = message.nextAttempt.map { " after \(QueueCommand.format($0))" } ?? ""
            console.printError(
                "outbox send: not sent yet (\(message.lastError ?? "temporary failure")). It stays queued as "
                    + "\(message.id) and is tried again\(when), or at once by 'outbox queue flush --now'.")
            return .success
        default:
            console.printError("outbox send: message \(message.id) failed: \(message.lastError ?? "unknown error")")
            for recipient in message.recipients where recipient.state == .failed {
                let reason = recipient.reply?.description ?? recipient.error ?? ""
                console.printError("  <\(recipient.address)>: \(reason)")
            }
            let refusedAtRecipient = message.recipients.contains { $0.state == .failed && $0.reply?.code ?? 0 >= 500 }
            return refusedAtRecipient ? .noUser : .unavailable
        }
    }
}
