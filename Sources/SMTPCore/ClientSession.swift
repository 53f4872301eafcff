/// The client side of an SMTP session as a state machine that does no I/O.
///
/// The driver feeds it what happens (bytes received, the connection closed, a timeout) and calls its
/// methods for what the user wants (send a message, quit). Each call returns the actions the driver
/// must carry out, in order: write bytes, stream the message content, report a result, close.
///
/// A session goes greeting, EHLO (or HELO when EHLO is not recognized), then any number of
/// transactions, then QUIT. With PIPELINING (RFC 2920) a transaction's MAIL, RCPT and DATA commands
/// are written together and their replies read in order.
public struct ClientSession: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// The domain or address literal sent with EHLO and HELO.
        public var clientName: String
        /// Whether to pipeline commands when the server offers PIPELINING.
        public var usePipelining: Bool
        public var replyLimits: ReplyParser.Limits

        public init(clientName: String, usePipelining: Bool = true, replyLimits: ReplyParser.Limits = .init()) {
            self.clientName = clientName
            self.usePipelining = usePipelining
            self.replyLimits = replyLimits
        }
    }

    /// What the driver must do next.
    public enum Action: Sendable, Hashable {
        /// Write these bytes to the server. Consecutive writes may be coalesced into one.
        case write([UInt8])
        /// Send the message content through a `DataEncoder`, then call `messageContentSent()`.
        case sendMessageContent
        /// The session is open and idle: start a transaction or quit.
        case ready(Capabilities)
        /// The transaction started with `send(_:)` is over.
        case transactionCompleted(Result<TransactionResult, SMTPError>)
        /// The session cannot go on: report the error and close the connection. Any transaction in
        /// progress failed with this error.
        case fail(SMTPError)
        /// Close the connection. The session is over.
        case close
    }

    private enum Expected: Sendable, Hashable {
        case rset
        case mail
        case rcpt(Int)
        case data
        case endOfData
        /// The reply to the lone "." sent when DATA was accepted but there is nothing to send.
        case abandonedData

        var phase: SMTPPhase {
            switch self {
            case .rset: .rset
            case .mail: .mail
            case .rcpt: .rcpt
            case .data: .data
            case .endOfData, .abandonedData: .endOfData
            }
        }
    }

    private struct TransactionState: Sendable {
        var transaction: Transaction
        var expected: [Expected] = []
        /// Commands not yet written, when the server does not pipeline.
        var unsent: [(Expected, [UInt8])] = []
        var recipientResults: [RecipientResult?]
        var failure: SMTPError?
        var sendingContent = false

        var acceptedCount: Int { recipientResults.count { $0?.isAccepted == true } }
    }

    private enum State: Sendable {
        case awaitingGreeting
        case awaitingEHLO
        case awaitingHELO
        case ready
        case transaction(TransactionState)
        case quitting
        case closed
    }

    public let configuration: Configuration
    public private(set) var capabilities = Capabilities.none
    private var state = State.awaitingGreeting
    private var parser: ReplyParser
    /// Set when a transaction ended before its end of data, so the server may still hold its envelope.
    private var needsReset = false

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.parser = ReplyParser(limits: configuration.replyLimits)
    }

    /// The phase whose reply the session is waiting for, which sets the timeout; nil when idle.
    public var awaitedPhase: SMTPPhase? {
        switch state {
        case .awaitingGreeting: .greeting
        case .awaitingEHLO: .ehlo
        case .awaitingHELO: .helo
        case .ready, .closed: nil
        case .quitting: .quit
        case .transaction(let transaction):
            transaction.sendingContent ? .dataTransfer : transaction.expected.first?.phase
        }
    }

    /// Whether the session is open and idle, so that a transaction can start.
    public var isReady: Bool {
        if case .ready = state { true } else { false }
    }

    /// Whether bytes from the server are buffered that no reply has used yet.
    public var hasBufferedInput: Bool { parser.hasBufferedBytes }

    // MARK: - Events from the connection

    /// Handles bytes received from the server.
    public mutating func receive(_ bytes: some Sequence<UInt8>) -> [Action] {
        parser.append(bytes)
        var actions: [Action] = []
        while !isOver {
            let reply: SMTPReply
            do {
                guard let next = try parser.nextReply() else { break }
                reply = capabilities.supportsEnhancedStatusCodes ? next.readingEnhancedStatusCode() : next
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
        case .ready:
            return fail(SMTPError(phase: .mail, kind: .connectionClosed, isTemporary: true))
        default:
            return fail(SMTPError(phase: awaitedPhase ?? .greeting, kind: .connectionClosed, isTemporary: true))
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

    /// Starts a transaction. Valid only when `isReady`.
    ///
    /// Checks the message against the server's SIZE limit and its 8BITMIME and SMTPUTF8 support first.
    /// When a check fails, or a command argument is invalid, the transaction completes with an error
    /// at once and nothing is written.
    public mutating func send(_ transaction: Transaction) -> [Action] {
        guard case .ready = state else {
            preconditionFailure("ClientSession.send called while the session is not ready")
        }
        let commands: [(Expected, [UInt8])]
        do {
            commands = try makeCommands(for: transaction)
        } catch {
            return [.transactionCompleted(.failure(error))]
        }

        var transactionState = TransactionState(
            transaction: transaction, recipientResults: Array(repeating: nil, count: transaction.recipients.count))
        needsReset = false
        if configuration.usePipelining && capabilities.supportsPipelining {
            transactionState.expected = commands.map(\.0)
            state = .transaction(transactionState)
            return [.write(commands.flatMap(\.1))]
        }
        var remaining = commands
        let first = remaining.removeFirst()
        transactionState.expected = [first.0]
        transactionState.unsent = remaining
        state = .transaction(transactionState)
        return [.write(first.1)]
    }

    /// Reports that the message content, with its final ".", has been written.
    public mutating func messageContentSent() -> [Action] {
        guard case .transaction(var transaction) = state, transaction.sendingContent else {
            preconditionFailure("ClientSession.messageContentSent called while no content was being sent")
        }
        transaction.sendingContent = false
        transaction.expected = [.endOfData]
        state = .transaction(transaction)
        return []
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
        case .ready:
            state = .quitting
            return [.write(Array("QUIT\r\n".utf8))]
        case .closed:
            return []
        default:
            state = .closed
            return [.close]
        }
    }

    // MARK: - Replies

    private var isOver: Bool {
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
            state = .ready
            return [.ready(capabilities)]
        case .ready:
            if reply.code == 421 {
                return fail(.rejected(reply, phase: .mail))
            }
            return fail(SMTPError(
                phase: .mail, kind: .protocolViolation("unexpected reply while idle: \(reply)"), reply: reply,
                isTemporary: true))
        case .transaction(var transaction):
            let actions = handleTransactionReply(reply, transaction: &transaction)
            if case .transaction = state {
                state = .transaction(transaction)
                return actions + finishTransactionIfDone()
            }
            return actions
        case .quitting:
            state = .closed
            return [.close]
        case .closed:
            return []
        }
    }

    private mutating func handleGreeting(_ reply: SMTPReply) -> [Action] {
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
            state = .ready
            return [.ready(capabilities)]
        }
        // RFC 5321 section 3.2: fall back to HELO only when EHLO is not recognized. A 4xx, 421 included,
        // is a temporary refusal by a server that may well speak ESMTP.
        if reply.code == 500 || reply.code == 502 {
            state = .awaitingHELO
            return writeOrFail(.helo(domain: configuration.clientName), phase: .helo)
        }
        return failAfterReply(reply, phase: .ehlo)
    }

    private mutating func handleTransactionReply(_ reply: SMTPReply, transaction: inout TransactionState) -> [Action] {
        guard !transaction.expected.isEmpty else {
            if reply.code == 421 {
                return fail(.rejected(reply, phase: .dataTransfer), transaction: transaction)
            }
            return fail(SMTPError(
                phase: .dataTransfer, kind: .protocolViolation("reply before the end of the message: \(reply)"),
                reply: reply, isTemporary: true), transaction: transaction)
        }
        let expected = transaction.expected.removeFirst()
        if reply.code == 421 {
            return fail(.rejected(reply, phase: expected.phase), transaction: transaction)
        }
        switch expected {
        case .rset:
            if !reply.isPositiveCompletion, transaction.failure == nil {
                transaction.failure = .rejected(reply, phase: .rset)
            }
        case .mail:
            if !reply.isPositiveCompletion, transaction.failure == nil {
                transaction.failure = .rejected(reply, phase: .mail)
            }
        case .rcpt(let index):
            transaction.recipientResults[index] = RecipientResult(
                address: transaction.transaction.recipients[index].address, reply: reply)
        case .data:
            return handleDataReply(reply, transaction: &transaction)
        case .endOfData:
            if !reply.isPositiveCompletion {
                transaction.failure = SMTPError(
                    phase: .endOfData, kind: reply.code == 421 ? .serviceNotAvailable : .rejected, reply: reply,
                    isTemporary: !reply.isPermanentNegative, recipientResults: transaction.recipientResults.compactMap { $0 })
            } else {
                let result = TransactionResult(recipients: transaction.recipientResults.compactMap { $0 }, reply: reply)
                state = .ready
                return [.transactionCompleted(.success(result))]
            }
        case .abandonedData:
            break
        }
        return writeNextUnsent(&transaction)
    }

    private mutating func handleDataReply(_ reply: SMTPReply, transaction: inout TransactionState) -> [Action] {
        if transaction.failure == nil, transaction.acceptedCount == 0 {
            transaction.failure = allRecipientsRejected(transaction)
        }
        guard reply.code == 354 else {
            if transaction.failure == nil {
                transaction.failure = SMTPError(
                    phase: .data, kind: reply.isPositiveCompletion ? .protocolViolation("DATA answered \(reply)") : .rejected,
                    reply: reply, isTemporary: !reply.isPermanentNegative,
                    recipientResults: transaction.recipientResults.compactMap { $0 })
            }
            return []
        }
        guard transaction.failure == nil else {
            // RFC 2920 section 3.1: when DATA is accepted after every RCPT failed, end the empty
            // transaction with a lone "." rather than send the message.
            transaction.expected = [.abandonedData]
            return [.write(Array(".\r\n".utf8))]
        }
        transaction.sendingContent = true
        return [.sendMessageContent]
    }

    private func allRecipientsRejected(_ transaction: TransactionState) -> SMTPError {
        let results = transaction.recipientResults.compactMap { $0 }
        let allTemporary = results.allSatisfy { !$0.reply.isPermanentNegative }
        return SMTPError(
            phase: .rcpt, kind: .allRecipientsRejected, reply: results.first?.reply, isTemporary: allTemporary,
            recipientResults: results)
    }

    /// Writes the next command when the server does not pipeline, or gives up the rest after a failure.
    private func writeNextUnsent(_ transaction: inout TransactionState) -> [Action] {
        guard transaction.expected.isEmpty, !transaction.unsent.isEmpty else { return [] }
        if transaction.failure != nil {
            transaction.unsent = []
            return []
        }
        let next = transaction.unsent.removeFirst()
        if next.0 == .data, transaction.acceptedCount == 0 {
            transaction.failure = allRecipientsRejected(transaction)
            transaction.unsent = []
            return []
        }
        transaction.expected = [next.0]
        return [.write(next.1)]
    }

    private mutating func finishTransactionIfDone() -> [Action] {
        guard case .transaction(let transaction) = state, transaction.expected.isEmpty,
              transaction.unsent.isEmpty, !transaction.sendingContent
        else { return [] }
        state = .ready
        needsReset = true
        let failure = transaction.failure ?? SMTPError(
            phase: .data, kind: .protocolViolation("the transaction ended without a result"), isTemporary: true)
        return [.transactionCompleted(.failure(failure))]
    }

    // MARK: - Commands

    private func makeCommands(for transaction: Transaction) throws(SMTPError) -> [(Expected, [UInt8])] {
        let content = transaction.content
        if let limit = capabilities.maximumMessageSize, content.size > limit {
            throw SMTPError(phase: .mail, kind: .messageTooLarge(size: content.size, limit: limit), isTemporary: false)
        }
        if content.contains8BitData, !capabilities.supports8BitMIME {
            throw SMTPError(phase: .mail, kind: .extensionNotSupported("8BITMIME"), isTemporary: false)
        }
        let addresses = [transaction.sender] + transaction.recipients.map(\.address)
        let needsUTF8 = addresses.contains { $0.utf8.contains { $0 >= 0x80 } }
        if needsUTF8, !capabilities.supportsSMTPUTF8 {
            throw SMTPError(phase: .mail, kind: .extensionNotSupported("SMTPUTF8"), isTemporary: false)
        }
        guard !transaction.recipients.isEmpty else {
            throw SMTPError(phase: .rcpt, kind: .allRecipientsRejected, isTemporary: false)
        }

        var mailParameters: [ESMTPParameter] = []
        if capabilities.supportsSize {
            mailParameters.append(ESMTPParameter("SIZE", String(content.size)))
        }
        if content.contains8BitData {
            mailParameters.append(ESMTPParameter("BODY", "8BITMIME"))
        }
        if needsUTF8 {
            mailParameters.append(ESMTPParameter("SMTPUTF8"))
        }
        if capabilities.supportsDSN, let request = transaction.deliveryStatus {
            if let returnContent = request.returnContent {
                mailParameters.append(ESMTPParameter("RET", returnContent.rawValue))
            }
            if let envelopeID = request.envelopeID {
                mailParameters.append(ESMTPParameter("ENVID", XText.encode(envelopeID)))
            }
        }

        var commands: [(Expected, [UInt8])] = []
        if needsReset {
            commands.append((.rset, try encode(.rset, phase: .rset)))
        }
        commands.append((.mail, try encode(.mail(from: transaction.sender, parameters: mailParameters), phase: .mail)))
        for (index, recipient) in transaction.recipients.enumerated() {
            var parameters: [ESMTPParameter] = []
            if capabilities.supportsDSN {
                if let notify = recipient.notify?.parameterValue {
                    parameters.append(ESMTPParameter("NOTIFY", notify))
                }
                if recipient.includeOriginalRecipient {
                    let isASCII = recipient.address.utf8.allSatisfy { $0 < 0x80 }
                    let value = isASCII
                        ? "rfc822;" + XText.encode(recipient.address)
                        : "utf-8;" + XText.encodeUTF8Address(recipient.address)
                    parameters.append(ESMTPParameter("ORCPT", value))
                }
            }
            commands.append((.rcpt(index), try encode(.rcpt(to: recipient.address, parameters: parameters), phase: .rcpt)))
        }
        commands.append((.data, try encode(.data, phase: .data)))
        return commands
    }

    private func encode(_ command: SMTPCommand, phase: SMTPPhase) throws(SMTPError) -> [UInt8] {
        do {
            return try command.encoded()
        } catch {
            throw SMTPError(phase: phase, kind: .invalidArgument(error), isTemporary: false)
        }
    }

    private mutating func writeOrFail(_ command: SMTPCommand, phase: SMTPPhase) -> [Action] {
        do {
            return [.write(try command.encoded())]
        } catch {
            return fail(SMTPError(phase: phase, kind: .invalidArgument(error), isTemporary: false))
        }
    }

    // MARK: - Failure

    /// Ends the session after a negative reply outside a transaction. RFC 5321 section 3.8: after a
    /// 421 the server is closing the channel, so the client just closes; after other refusals it sends
    /// QUIT without waiting for the reply.
    private mutating func failAfterReply(_ reply: SMTPReply, phase: SMTPPhase) -> [Action] {
        let error = SMTPError.rejected(reply, phase: phase)
        state = .closed
        if reply.code == 421 {
            return [.fail(error), .close]
        }
        return [.fail(error), .write(Array("QUIT\r\n".utf8)), .close]
    }

    private mutating func fail(_ error: SMTPError, transaction: TransactionState? = nil) -> [Action] {
        var error = error
        if let transaction, error.recipientResults.isEmpty {
            error = SMTPError(
                phase: error.phase, kind: error.kind, reply: error.reply, isTemporary: error.isTemporary,
                recipientResults: transaction.recipientResults.compactMap { $0 })
        }
        state = .closed
        return [.fail(error), .close]
    }
}
