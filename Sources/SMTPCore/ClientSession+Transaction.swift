/// Transactions: building MAIL, RCPT and DATA, and reading their replies.
extension ClientSession {
    /// The reply a transaction waits for next.
    enum Expected: Sendable, Hashable {
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

    struct TransactionState: Sendable {
        var transaction: Transaction
        var expected: [Expected] = []
        /// Commands not yet written, when the server does not pipeline.
        var unsent: [(Expected, [UInt8])] = []
        var recipientResults: [RecipientResult?]
        var failure: SMTPError?
        var sendingContent = false

        var acceptedCount: Int { recipientResults.count { $0?.isAccepted == true } }
        var isDone: Bool { expected.isEmpty && unsent.isEmpty && !sendingContent }
    }

    /// Handles a reply that belongs to the oldest transaction in progress.
    mutating func handleTransactionReply(_ reply: SMTPReply) -> [Action] {
        guard let expected = transactions[0].expected.first else {
            if reply.code == 421 {
                return fail(.rejected(reply, phase: .dataTransfer))
            }
            return fail(SMTPError(
                phase: .dataTransfer, kind: .protocolViolation("reply before the end of the message: \(reply)"),
                reply: reply, isTemporary: true))
        }
        transactions[0].expected.removeFirst()
        if reply.code == 421 {
            return fail(.rejected(reply, phase: expected.phase))
        }

        var actions: [Action] = []
        switch expected {
        case .rset, .mail:
            if !reply.isPositiveCompletion, transactions[0].failure == nil {
                transactions[0].failure = .rejected(reply, phase: expected.phase)
            }
        case .rcpt(let index):
            let address = transactions[0].transaction.recipients[index].address
            transactions[0].recipientResults[index] = RecipientResult(address: address, reply: reply)
        case .data:
            actions = handleDataReply(reply)
        case .endOfData:
            if reply.isPositiveCompletion {
                let results = transactions.removeFirst().recipientResults.compactMap { $0 }
                return [.transactionCompleted(.success(TransactionResult(recipients: results, reply: reply)))]
                    + readyIfIdle()
            }
            transactions[0].failure = SMTPError(
                phase: .endOfData, kind: .rejected, reply: reply, isTemporary: !reply.isPermanentNegative,
                recipientResults: transactions[0].recipientResults.compactMap { $0 })
            // The server ends the transaction after its reply to the final ".", whatever the reply.
            return completeFailedTransaction(needsReset: false)
        case .abandonedData:
            break
        }
        actions += writeNextUnsent()
        if transactions[0].isDone {
            actions += completeFailedTransaction(needsReset: true)
        }
        return actions
    }

    private mutating func handleDataReply(_ reply: SMTPReply) -> [Action] {
        if transactions[0].failure == nil, transactions[0].acceptedCount == 0 {
            transactions[0].failure = allRecipientsRejected(transactions[0])
        }
        guard reply.code == 354 else {
            if transactions[0].failure == nil {
                let kind: SMTPError.Kind = reply.isPositiveCompletion
                    ? .protocolViolation("DATA answered \(reply)") : .rejected
                transactions[0].failure = SMTPError(
                    phase: .data, kind: kind, reply: reply, isTemporary: !reply.isPermanentNegative,
                    recipientResults: transactions[0].recipientResults.compactMap { $0 })
            }
            return []
        }
        guard transactions[0].failure == nil else {
            // RFC 2920 section 3.1: when DATA is accepted after every RCPT failed, end the empty
            // transaction with a lone "." rather than send the message.
            transactions[0].expected = [.abandonedData]
            return [.write(Array(".\r\n".utf8))]
        }
        transactions[0].sendingContent = true
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
    private mutating func writeNextUnsent() -> [Action] {
        guard transactions[0].expected.isEmpty, !transactions[0].unsent.isEmpty else { return [] }
        if transactions[0].failure != nil {
            transactions[0].unsent = []
            return []
        }
        let next = transactions[0].unsent.removeFirst()
        if next.0 == .data, transactions[0].acceptedCount == 0 {
            transactions[0].failure = allRecipientsRejected(transactions[0])
            transactions[0].unsent = []
            return []
        }
        transactions[0].expected = [next.0]
        return [.write(next.1)]
    }

    private mutating func completeFailedTransaction(needsReset: Bool) -> [Action] {
        let finished = transactions.removeFirst()
        self.needsReset = needsReset
        let failure = finished.failure ?? SMTPError(
            phase: .data, kind: .protocolViolation("the transaction ended without a result"), isTemporary: true)
        return [.transactionCompleted(.failure(failure))] + readyIfIdle()
    }

    private func readyIfIdle() -> [Action] {
        transactions.isEmpty ? [.ready(capabilities)] : []
    }

    // MARK: - Commands

    func makeCommands(for transaction: Transaction) throws(SMTPError) -> [(Expected, [UInt8])] {
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

        var commands: [(Expected, [UInt8])] = []
        if needsReset {
            commands.append((.rset, try encode(.rset, phase: .rset)))
        }
        let mail = SMTPCommand.mail(
            from: transaction.sender, parameters: mailParameters(for: transaction, needsUTF8: needsUTF8))
        commands.append((.mail, try encode(mail, phase: .mail)))
        for (index, recipient) in transaction.recipients.enumerated() {
            let rcpt = SMTPCommand.rcpt(to: recipient.address, parameters: rcptParameters(for: recipient))
            commands.append((.rcpt(index), try encode(rcpt, phase: .rcpt)))
        }
        commands.append((.data, try encode(.data, phase: .data)))
        return commands
    }

    private func mailParameters(for transaction: Transaction, needsUTF8: Bool) -> [ESMTPParameter] {
        var parameters: [ESMTPParameter] = []
        if capabilities.supportsSize {
            parameters.append(ESMTPParameter("SIZE", String(transaction.content.size)))
        }
        if transaction.content.contains8BitData {
            parameters.append(ESMTPParameter("BODY", "8BITMIME"))
        }
        if needsUTF8 {
            parameters.append(ESMTPParameter("SMTPUTF8"))
        }
        if capabilities.supportsDSN, let request = transaction.deliveryStatus {
            if let returnContent = request.returnContent {
                parameters.append(ESMTPParameter("RET", returnContent.rawValue))
            }
            if let envelopeID = request.envelopeID {
                parameters.append(ESMTPParameter("ENVID", XText.encode(envelopeID)))
            }
        }
        return parameters
    }

    private func rcptParameters(for recipient: Recipient) -> [ESMTPParameter] {
        guard capabilities.supportsDSN else { return [] }
        var parameters: [ESMTPParameter] = []
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
        return parameters
    }

    private func encode(_ command: SMTPCommand, phase: SMTPPhase) throws(SMTPError) -> [UInt8] {
        do {
            return try command.encoded()
        } catch {
            throw SMTPError(phase: phase, kind: .invalidArgument(error), isTemporary: false)
        }
    }
}
