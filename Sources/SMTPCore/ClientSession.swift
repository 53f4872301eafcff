/// The client side of an SMTP session as a state machine that does no I/O.
///
/// The driver feeds it what happens (bytes received, the connection closed, a timeout) and calls its
/// methods for what the user wants (send a message, quit). Each call returns the actions the driver
/// must carry out, in order: write bytes, stream the message content, report a result, close.
///
/// A session goes greeting, EHLO (or HELO when EHLO is not recognized), then any number of
/// transactions, then QUIT. With PIPELINING (RFC 2920) a transaction's MAIL, RCPT and DATA commands
/// are written together and their replies read in order. The next transaction may start as soon as
/// the previous one's content is written, before its end-of-data reply arrives: RFC 2920 section 3.1
/// lets message content begin a group of pipelined commands, so one round trip serves each message.
public struct ClientSession: Sendable {
    public struct Configuration: Sendable {
        /// The domain or address literal sent with EHLO and HELO.
        public var clientName: String
        /// Whether to pipeline commands when the server offers PIPELINING.
        public var usePipelining: Bool
        public var replyLimits: ReplyParser.Limits
        /// Whether and when to send STARTTLS. Ignored when `isEncrypted` is true from the start.
        public var startTLS: StartTLSPolicy
        /// Whether the connection is already encrypted, as with implicit TLS on port 465.
        public var isEncrypted: Bool
        /// Whether the server is on this machine (a loopback address), where an unencrypted
        /// connection exposes nothing to a network.
        public var isLoopback: Bool
        /// How to log in after EHLO, or nil to send mail without AUTH.
        public var authentication: AuthenticationConfiguration?

        public init(
            clientName: String, usePipelining: Bool = true, replyLimits: ReplyParser.Limits = .init(),
            startTLS: StartTLSPolicy = .never, isEncrypted: Bool = false, isLoopback: Bool = false,
            authentication: AuthenticationConfiguration? = nil
        ) {
            self.clientName = clientName
            self.usePipelining = usePipelining
            self.replyLimits = replyLimits
            self.startTLS = startTLS
            self.isEncrypted = isEncrypted
            self.isLoopback = isLoopback
            self.authentication = authentication
        }
    }

    /// The next step for the driver.
    public enum Action: Sendable, Hashable {
        /// Write these bytes to the server. Consecutive writes may be coalesced into one.
        case write([UInt8])
        /// Write these bytes, which carry a secret, and show `transcript` in their place in any log.
        case writeRedacted([UInt8], transcript: String)
        /// Perform the TLS handshake on the connection, then call `tlsEstablished()`. Bytes that
        /// arrived before it were already rejected.
        case startTLS
        /// Send the content of the oldest transaction still in progress through a `DataEncoder`, then
        /// call `messageContentSent()`.
        case sendMessageContent
        /// The session is open and idle: start a transaction or quit.
        case ready(Capabilities)
        /// The oldest transaction in progress is over. Transactions complete in the order they started.
        case transactionCompleted(Result<TransactionResult, SMTPError>)
        /// The session cannot go on: report the error and close the connection. Every transaction
        /// still in progress failed with this error.
        case fail(SMTPError)
        /// Close the connection. The session is over.
        case close
    }

    enum State: Sendable {
        case awaitingGreeting
        case awaitingEHLO
        case awaitingHELO
        case awaitingStartTLS
        case tlsHandshake
        case authenticating(AuthenticationExchange)
        /// EHLO or HELO succeeded. Transactions, if any, are in `transactions`.
        case open
        case quitting
        case closed
    }

    public let configuration: Configuration
    public internal(set) var capabilities = Capabilities.none
    var state = State.awaitingGreeting
    /// Transactions whose replies are still to come, oldest first. At most two: one waiting for its
    /// end-of-data reply and one pipelined behind it.
    var transactions: [TransactionState] = []
    var parser: ReplyParser
    /// Whether the connection is encrypted: from the start, or after STARTTLS and the handshake.
    public internal(set) var isEncrypted: Bool
    /// Whether the session logged in with AUTH.
    public internal(set) var isAuthenticated = false
    /// The server's greeting.
    public private(set) var greeting: SMTPReply?
    /// The capabilities the server advertised before STARTTLS, which the session no longer trusts.
    public internal(set) var capabilitiesBeforeTLS: Capabilities?
    /// The SASL mechanism the session logged in with.
    public internal(set) var authenticationMechanism: String?
    /// The base64 responses sent during AUTH, which carry credentials.
    public internal(set) var sentSecrets: [String] = []
    /// The number of replies read so far, so that a driver can tell when a reply is complete.
    public private(set) var replyCount = 0
    /// Set when a transaction ended before its end of data, so the server may still hold its envelope.
    var needsReset = false

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.parser = ReplyParser(limits: configuration.replyLimits)
        self.isEncrypted = configuration.isEncrypted
    }

    /// The phase whose reply the session is waiting for, which sets the timeout; nil when idle.
    public var awaitedPhase: SMTPPhase? {
        switch state {
        case .awaitingGreeting: .greeting
        case .awaitingEHLO: .ehlo
        case .awaitingHELO: .helo
        case .awaitingStartTLS, .tlsHandshake: .startTLS
        case .authenticating: .auth
        case .closed: nil
        case .quitting: .quit
        case .open:
            transactions.first.flatMap { $0.sendingContent ? .dataTransfer : $0.expected.first?.phase }
        }
    }

    /// Whether the session is open and idle, so that a transaction can start.
    public var isReady: Bool {
        if case .open = state { transactions.isEmpty } else { false }
    }

    /// Whether `send(_:)` may be called now: when the session is idle, or, with pipelining, when the
    /// only transaction in progress has written its content and waits for its end-of-data reply.
    public var canSend: Bool {
        guard case .open = state else { return false }
        guard let current = transactions.first else { return true }
        return transactions.count == 1 && isPipelining && current.expected == [.endOfData] && current.unsent.isEmpty
    }

    /// Whether bytes from the server are buffered that no reply has used yet.
    public var hasBufferedInput: Bool { parser.hasBufferedBytes }

    var isPipelining: Bool { configuration.usePipelining && capabilities.supportsPipelining }

    // MARK: - Events from the connection

    /// Handles bytes received from the server.
    public mutating func receive(_ bytes: some Sequence<UInt8>) -> [Action] {
        parser.append(bytes)
        return processBufferedReplies()
    }

    /// Handles the complete replies in the parser's buffer. While a transaction's content is being
    /// sent, replies stay buffered. A server that replies before the final "." (with 451 or 554, say)
    /// is replying to the message, and the content must first be sent in full or abandoned.
    private mutating func processBufferedReplies() -> [Action] {
        var actions: [Action] = []
        while !isOver, transactions.first?.sendingContent != true {
            let reply: SMTPReply
            do {
                guard let next = try parser.nextReply() else { break }
                let parsed = capabilities.supportsEnhancedStatusCodes ? next.readingEnhancedStatusCode() : next
                reply = sentSecrets.isEmpty ? parsed : parsed.redacting(sentSecrets)
                replyCount += 1
            } catch {
                actions += fail(SMTPError(
                    phase: awaitedPhase ?? .greeting, kind: .protocolViolation(error.description), isTemporary: true))
                break
            }
            actions += handle(reply)
        }
        return actions
    }

    /// Handles the server closing the connection.
    public mutating func connectionClosed() -> [Action] {
        switch state {
        case .closed:
            return []
        case .quitting:
            state = .closed
            return [.close]
        default:
            return fail(SMTPError(phase: awaitedPhase ?? .mail, kind: .connectionClosed, isTemporary: true))
        }
    }

    /// Handles a timeout or the overall deadline passing while the session waited for the server.
    public mutating func timedOut(_ detail: String) -> [Action] {
        guard !isOver else { return [] }
        return fail(SMTPError(phase: awaitedPhase ?? .greeting, kind: .timedOut(detail), isTemporary: true))
    }

    /// Handles a failure of the connection itself, such as a reset or a write error.
    public mutating func connectionFailed(_ detail: String) -> [Action] {
        guard !isOver else { return [] }
        return fail(SMTPError(
            phase: awaitedPhase ?? .connect, kind: .connectionFailed(detail), isTemporary: true))
    }

    // MARK: - Requests from the user

    /// Starts a transaction. Valid only when `canSend`.
    ///
    /// Checks the message against the server's SIZE limit and its 8BITMIME and SMTPUTF8 support first.
    /// When a check fails, or a command argument is invalid, the transaction completes with an error
    /// at once and nothing is written. That completion comes before those of transactions still in
    /// progress, so a driver that pipelines must check for it.
    public mutating func send(_ transaction: Transaction) -> [Action] {
        precondition(canSend, "ClientSession.send called while the session cannot start a transaction")
        let commands: [(Expected, [UInt8])]
        do {
            commands = try makeCommands(for: transaction)
        } catch {
            return [.transactionCompleted(.failure(error))]
        }
        var newTransaction = TransactionState(
            transaction: transaction, recipientResults: Array(repeating: nil, count: transaction.recipients.count))
        needsReset = false
        if isPipelining {
            newTransaction.expected = commands.map(\.0)
            transactions.append(newTransaction)
            return [.write(commands.flatMap(\.1))]
        }
        var remaining = commands
        let first = remaining.removeFirst()
        newTransaction.expected = [first.0]
        newTransaction.unsent = remaining
        transactions.append(newTransaction)
        return [.write(first.1)]
    }

    /// Reports that the message content, with its final ".", has been written.
    public mutating func messageContentSent() -> [Action] {
        guard case .open = state, let index = transactions.firstIndex(where: \.sendingContent) else {
            // The session ended while the content was being written, so there is nothing to wait for.
            return []
        }
        transactions[index].sendingContent = false
        transactions[index].expected = [.endOfData]
        return processBufferedReplies()
    }

    /// Reports that the message content could not be sent in full, because it failed to encode or
    /// could not be read. The connection must be closed without the final ".", so that the server
    /// drops the partial message.
    public mutating func messageContentFailed(_ error: SMTPError) -> [Action] {
        fail(error)
    }

    /// Ends the session politely. Valid when `isReady`; otherwise the session just closes.
    public mutating func quit() -> [Action] {
        switch state {
        case .open where transactions.isEmpty:
            state = .quitting
            return [.write(Array("QUIT\r\n".utf8))]
        case .closed:
            return []
        default:
            state = .closed
            transactions = []
            return [.close]
        }
    }

    // MARK: - Replies outside transactions

    var isOver: Bool {
        if case .closed = state { true } else { false }
    }

    private mutating func handle(_ reply: SMTPReply) -> [Action] {
        switch state {
        case .awaitingGreeting:
            return handleGreeting(reply)
        case .awaitingEHLO:
            return handleEHLO(reply)
        case .awaitingHELO:
            guard reply.isPositiveCompletion else { return failAfterReply(reply, phase: .helo) }
            capabilities = .none
            return afterGreetingExchange()
        case .awaitingStartTLS:
            return handleStartTLSReply(reply)
        case .tlsHandshake:
            return fail(SMTPError(
                phase: .startTLS, kind: .protocolViolation("reply during the TLS handshake: \(reply)"), reply: reply,
                isTemporary: true))
        case .authenticating(let exchange):
            return handleAuthenticationReply(reply, exchange: exchange)
        case .open where transactions.isEmpty:
            if reply.code == 421 {
                return fail(.rejected(reply, phase: .mail))
            }
            return fail(SMTPError(
                phase: .mail, kind: .protocolViolation("unexpected reply while idle: \(reply)"), reply: reply,
                isTemporary: true))
        case .open:
            return handleTransactionReply(reply)
        case .quitting:
            state = .closed
            return [.close]
        case .closed:
            return []
        }
    }

    private mutating func handleGreeting(_ reply: SMTPReply) -> [Action] {
        greeting = reply
        guard reply.code == 220 else {
            if reply.isTransientNegative || reply.isPermanentNegative {
                return failAfterReply(reply, phase: .greeting)
            }
            return fail(SMTPError(
                phase: .greeting, kind: .protocolViolation("the greeting is \(reply), not 220"), reply: reply,
                isTemporary: true))
        }
        state = .awaitingEHLO
        return writeOrFail(.ehlo(domain: configuration.clientName), phase: .ehlo)
    }

    private mutating func handleEHLO(_ reply: SMTPReply) -> [Action] {
        if reply.isPositiveCompletion {
            capabilities = Capabilities(ehloReply: reply)
            return afterGreetingExchange()
        }
        // RFC 5321 section 3.2: fall back to HELO only when EHLO is not recognized. A 4xx, 421 included,
        // is a temporary refusal by a server that may well speak ESMTP.
        if reply.code == 500 || reply.code == 502 {
            state = .awaitingHELO
            return writeOrFail(.helo(domain: configuration.clientName), phase: .helo)
        }
        return failAfterReply(reply, phase: .ehlo)
    }

    mutating func writeOrFail(_ command: SMTPCommand, phase: SMTPPhase) -> [Action] {
        do {
            return [.write(try command.encoded())]
        } catch {
            return fail(SMTPError(phase: phase, kind: .invalidArgument(error), isTemporary: false))
        }
    }

    // MARK: - Failure

    /// Ends the session after a negative reply outside a transaction. After a 421 the server is closing
    /// the channel (RFC 5321 section 3.8), so the client just closes. After other rejections it sends
    /// QUIT without waiting for the reply.
    mutating func failAfterReply(_ reply: SMTPReply, phase: SMTPPhase) -> [Action] {
        let error = SMTPError.rejected(reply, phase: phase)
        state = .closed
        if reply.code == 421 {
            return [.fail(error), .close]
        }
        return [.fail(error), .write(Array("QUIT\r\n".utf8)), .close]
    }

    /// Ends the session. The error carries the recipient results of the oldest transaction in progress.
    mutating func fail(_ error: SMTPError) -> [Action] {
        var error = error
        if let current = transactions.first, error.recipientResults.isEmpty {
            error = SMTPError(
                phase: error.phase, kind: error.kind, reply: error.reply, isTemporary: error.isTemporary,
                recipientResults: current.recipientResults.compactMap { $0 })
        }
        state = .closed
        transactions = []
        return [.fail(error), .close]
    }
}
