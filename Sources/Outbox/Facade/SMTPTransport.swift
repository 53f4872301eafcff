import SMTPClient
import SMTPCore

/// A transport that sends over SMTP through a pool of connections to one server.
///
/// Up to `MailAccount.maximumConnections` connections are open at once, and each logs in once
/// and then sends message after message. Before an idle connection is reused, it is checked
/// without writing to it: when the server closed it or announced its end with 421 meanwhile, the
/// connection is replaced by a new one and the send goes on, because nothing of the message was
/// sent yet. A failure after the first command of the message is reported, never retried, so that
/// no message is sent twice.
///
/// NOTE: a server that closes the connection between that check and the first command of the
/// message still fails the send, with a retryable `MailError` of kind `connectionFailed`.
public final class SMTPTransport: MailTransport {
    /// The account the connections log in to.
    public let account: MailAccount
    private let pool: ConnectionPool
    private let transcript: TranscriptHandler?

    /// Creates a transport for `account`. No connection opens before the first send.
    ///
    /// - Parameter transcript: receives every command and reply line, for debugging. Secrets sent
    ///   during AUTH are redacted.
    public init(account: MailAccount, transcript: TranscriptHandler? = nil) {
        self.account = account
        self.transcript = transcript
        self.pool = ConnectionPool(
            maximumConnections: account.maximumConnections, maximumIdleTime: account.maximumIdleTime)
    }

    /// The number of connections open now, in use or idle.
    public var openConnections: Int {
        get async { await pool.openConnections }
    }

    public func send(_ message: OutgoingMessage, envelope: Envelope) async throws(MailError) -> SendResult {
        guard !envelope.recipients.isEmpty else {
            throw MailError(kind: .invalidEnvelope, detail: "the message has no recipients", isRetryable: false)
        }
        let connection = try await connectionForSending(envelope: envelope)
        let result: Result<TransactionResult, SMTPError>
        do {
            result = .success(try await connection.send(message, envelope: envelope))
        } catch {
            result = .failure(error)
        }
        await pool.checkIn(connection)
        switch result {
        case .success(let transaction):
            return SendResult(transaction)
        case .failure(let error):
            throw MailError(error, envelope: envelope)
        }
    }

    public func shutdown() async {
        await pool.shutdown()
    }

    /// Returns a checked-out connection that is open and idle: a pooled one that passed the idle
    /// check, or a new one.
    private func connectionForSending(envelope: Envelope) async throws(MailError) -> SMTPConnection {
        // Each pooled connection that fails the check is closed, so this ends after at most
        // `maximumConnections` of them, with a new connection.
        while true {
            if let pooled = try await pool.checkOut() {
                if await pooled.checkIdle() {
                    return pooled
                }
                transcript?(TranscriptLine(.note, "a pooled connection to \(account.server) was closed while idle; replacing it"))
                await pool.checkIn(nil)
                continue
            }
            do {
                let configuration = try await account.makeConfiguration()
                return try await SMTPConnection.open(configuration, transcript: transcript)
            } catch let error as MailError {
                await pool.checkIn(nil)
                throw error
            } catch let error as SMTPError {
                await pool.checkIn(nil)
                throw MailError(error, envelope: envelope)
            } catch {
                await pool.checkIn(nil)
                throw MailError(kind: .connectionFailed, detail: "\(error)", isRetryable: true)
            }
        }
    }
}
