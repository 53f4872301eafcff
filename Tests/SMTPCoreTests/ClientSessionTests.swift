import Testing
@testable import SMTPCore

private let ehloFull = """
    250-mx.example.test\r
    250-PIPELINING\r
    250-SIZE 1000\r
    250-8BITMIME\r
    250-SMTPUTF8\r
    250-DSN\r
    250 ENHANCEDSTATUSCODES\r

    """

private let ehloPlain = "250-mx.example.test\r\n250 SIZE\r\n"

/// Drives a session as a driver would and records what it writes and reports.
private struct Harness {
    var session = ClientSession(configuration: .init(clientName: "client.example.test"))
    var written: [String] = []
    var events: [ClientSession.Action] = []

    mutating func server(_ text: String, byteByByte: Bool = false) {
        if byteByByte {
            for byte in text.utf8 {
                record(session.receive([byte]))
            }
        } else {
            record(session.receive(Array(text.utf8)))
        }
    }

    mutating func record(_ actions: [ClientSession.Action]) {
        for action in actions {
            if case .write(let bytes) = action {
                written.append(String(decoding: bytes, as: UTF8.self))
            } else {
                events.append(action)
            }
        }
    }

    mutating func open(ehlo: String = ehloFull) {
        server("220 mx.example.test ESMTP\r\n")
        server(ehlo)
    }

    var lastResult: Result<TransactionResult, SMTPError>? {
        for event in events.reversed() {
            if case .transactionCompleted(let result) = event { return result }
        }
        return nil
    }

    var failure: SMTPError? {
        for event in events {
            if case .fail(let error) = event { return error }
        }
        return nil
    }

    var closed: Bool { events.contains(.close) }
}

private func transaction(
    from sender: String = "a@example.test", to recipients: [String] = ["b@example.test"],
    content: String = "Subject: x\r\n\r\nhi\r\n"
) throws -> Transaction {
    let statistics = try DataEncoder.scan([Array(content.utf8)])
    return Transaction(sender: sender, recipients: recipients.map { Recipient($0) }, content: statistics)
}

struct ClientSessionTests {
    @Test func greetingThenEHLO() {
        var harness = Harness()
        harness.server("220 mx.example.test ESMTP\r\n")
        #expect(harness.written == ["EHLO client.example.test\r\n"])
        harness.server(ehloFull)
        #expect(harness.session.isReady)
        #expect(harness.session.capabilities.supportsPipelining)
    }

    @Test func pipelinedTransactionInOneWrite() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction(to: ["b@example.test", "c@example.test"])))
        #expect(harness.written.last == "MAIL FROM:<a@example.test> SIZE=18\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n")
        harness.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n")
        #expect(harness.events.last == .sendMessageContent)
        #expect(harness.session.awaitedPhase == .dataTransfer)
        harness.record(harness.session.messageContentSent())
        #expect(harness.session.awaitedPhase == .endOfData)
        harness.server("250 2.0.0 Ok: queued as ABC\r\n")
        guard case .success(let result)? = harness.lastResult else {
            Issue.record("no success: \(harness.events)")
            return
        }
        #expect(result.accepted.count == 2)
        #expect(result.reply.enhancedCode?.description == "2.0.0")
        #expect(result.reply.text == "Ok: queued as ABC")
        #expect(harness.session.isReady)
    }

    @Test func byteAtATimeSameAsWhole() throws {
        var whole = Harness()
        var drip = Harness()
        let replies = "220 mx\r\n" + ehloFull
        whole.server(replies)
        drip.server(replies, byteByByte: true)
        #expect(whole.written == drip.written)
        #expect(whole.events == drip.events)
    }

    @Test func withoutPipeliningOneCommandAtATime() throws {
        var harness = Harness()
        harness.open(ehlo: ehloPlain)
        harness.record(harness.session.send(try transaction(to: ["b@example.test", "c@example.test"])))
        #expect(harness.written.last == "MAIL FROM:<a@example.test> SIZE=18\r\n")
        harness.server("250 ok\r\n")
        #expect(harness.written.last == "RCPT TO:<b@example.test>\r\n")
        harness.server("550 no such user\r\n")
        #expect(harness.written.last == "RCPT TO:<c@example.test>\r\n")
        harness.server("250 ok\r\n")
        #expect(harness.written.last == "DATA\r\n")
        harness.server("354 go\r\n")
        harness.record(harness.session.messageContentSent())
        harness.server("250 queued\r\n")
        guard case .success(let result)? = harness.lastResult else {
            Issue.record("no success")
            return
        }
        #expect(result.rejected.map(\.address) == ["b@example.test"])
        #expect(result.rejected.first?.reply.code == 550)
        #expect(result.accepted.map(\.address) == ["c@example.test"])
    }

    @Test func withoutPipeliningAllRejectedSkipsData() throws {
        var harness = Harness()
        harness.open(ehlo: ehloPlain)
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n")
        harness.server("550 5.1.1 no such user\r\n")
        #expect(!harness.written.contains("DATA\r\n"))
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.kind == .allRecipientsRejected)
        #expect(error.phase == .rcpt)
        #expect(!error.isTemporary)
    }

    @Test func allRejectedButDataAcceptedSendsLoneDot() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction(to: ["x@example.test", "y@example.test"])))
        harness.server("250 ok\r\n450 4.2.0 try later\r\n550 5.1.1 unknown\r\n354 go\r\n")
        #expect(harness.written.last == ".\r\n")
        #expect(!harness.events.contains(.sendMessageContent))
        harness.server("554 no valid recipients\r\n")
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.kind == .allRecipientsRejected)
        #expect(error.recipientResults.map(\.reply.code) == [450, 550])
        #expect(!error.isTemporary)
        #expect(harness.session.isReady)
    }

    @Test func allTemporaryRejectionsAreTemporary() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n451 4.3.0 later\r\n554 no valid recipients\r\n")
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.isTemporary)
    }

    @Test func rsetBeforeNextTransactionAfterFailure() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        harness.server("550 sender rejected\r\n503 need MAIL\r\n503 need RCPT\r\n")
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.phase == .mail)
        #expect(error.reply?.code == 550)
        harness.record(harness.session.send(try transaction()))
        #expect(harness.written.last?.hasPrefix("RSET\r\nMAIL FROM:") == true)
    }

    @Test func noRsetAfterSuccess() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n250 ok\r\n354 go\r\n")
        harness.record(harness.session.messageContentSent())
        harness.server("250 queued\r\n")
        harness.record(harness.session.send(try transaction()))
        #expect(harness.written.last?.hasPrefix("MAIL FROM:") == true)
    }

    @Test("EHLO falls back to HELO", arguments: ["500 unrecognized\r\n", "502 not implemented\r\n"])
    func ehloFallsBackToHelo(reply: String) {
        var harness = Harness()
        harness.server("220 old.example.test\r\n")
        harness.server(reply)
        #expect(harness.written.last == "HELO client.example.test\r\n")
        harness.server("250 old.example.test\r\n")
        #expect(harness.session.isReady)
        #expect(harness.session.capabilities.extensions.isEmpty)
    }

    @Test("EHLO refusal ends session without HELO", arguments: [
        ("421 4.3.2 shutting down\r\n", true), ("450 busy\r\n", true), ("554 go away\r\n", false),
        ("504 odd\r\n", false),
    ])
    func ehloRefusalNoHelo(reply: String, temporary: Bool) {
        var harness = Harness()
        harness.server("220 mx.example.test\r\n")
        harness.server(reply)
        #expect(!harness.written.contains { $0.hasPrefix("HELO") })
        #expect(harness.failure?.phase == .ehlo)
        #expect(harness.failure?.isTemporary == temporary)
        #expect(harness.closed)
    }

    @Test func greeting421ClosesWithoutQuit() {
        var harness = Harness()
        harness.server("421 4.3.2 busy\r\n")
        #expect(harness.written.isEmpty)
        #expect(harness.failure?.phase == .greeting)
        #expect(harness.failure?.kind == .serviceNotAvailable)
        #expect(harness.failure?.isTemporary == true)
        #expect(harness.closed)
    }

    @Test func greeting554SendsQuit() {
        var harness = Harness()
        harness.server("554 5.7.1 no service\r\n")
        #expect(harness.written == ["QUIT\r\n"])
        #expect(harness.failure?.isTemporary == false)
    }

    @Test("421 during transaction ends session", arguments: [
        "421 4.3.2 bye\r\n", "250 ok\r\n421 4.3.2 bye\r\n", "250 ok\r\n250 ok\r\n421 4.3.2 bye\r\n",
    ])
    func serviceClosingMidTransaction(replies: String) throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        let writesBefore = harness.written.count
        harness.server(replies)
        #expect(harness.written.count == writesBefore, "nothing written after 421, RSET included")
        #expect(harness.failure?.kind == .serviceNotAvailable)
        #expect(harness.failure?.isTemporary == true)
        #expect(harness.closed)
    }

    @Test func serviceClosingAfterEndOfData() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n250 ok\r\n354 go\r\n")
        harness.record(harness.session.messageContentSent())
        harness.server("421 4.4.2 timeout\r\n")
        #expect(harness.failure?.phase == .endOfData)
        #expect(harness.failure?.recipientResults.count == 1)
        #expect(harness.closed)
    }

    @Test func endOfDataRejection() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n250 ok\r\n354 go\r\n")
        harness.record(harness.session.messageContentSent())
        harness.server("554 5.6.0 spam\r\n")
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.phase == .endOfData)
        #expect(error.reply?.enhancedCode?.description == "5.6.0")
        #expect(!error.isTemporary)
    }

    @Test func sizeOverLimitFailsBeforeMail() throws {
        var harness = Harness()
        harness.open()
        let writes = harness.written.count
        harness.record(harness.session.send(try transaction(content: String(repeating: "x\r\n", count: 400))))
        #expect(harness.written.count == writes)
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.kind == .messageTooLarge(size: 1200, limit: 1000))
        #expect(!error.isTemporary)
        #expect(harness.session.isReady)
    }

    @Test func eightBitSendsBodyParameter() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction(content: "Subject: café\r\n\r\n")))
        #expect(harness.written.last?.hasPrefix("MAIL FROM:<a@example.test> SIZE=18 BODY=8BITMIME\r\n") == true)
    }

    @Test func eightBitWithout8BitMIMEFails() throws {
        var harness = Harness()
        harness.open(ehlo: ehloPlain)
        let writes = harness.written.count
        harness.record(harness.session.send(try transaction(content: "café\r\n")))
        #expect(harness.written.count == writes)
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.kind == .extensionNotSupported("8BITMIME"))
        #expect(error.description.contains("8BITMIME"))
    }

    @Test func utf8AddressSendsSMTPUTF8() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction(to: ["josé@example.test"])))
        #expect(harness.written.last?.hasPrefix("MAIL FROM:<a@example.test> SIZE=18 SMTPUTF8\r\n") == true)
    }

    @Test func utf8AddressWithoutSMTPUTF8Fails() throws {
        var harness = Harness()
        harness.open(ehlo: ehloPlain)
        harness.record(harness.session.send(try transaction(to: ["josé@example.test"])))
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.kind == .extensionNotSupported("SMTPUTF8"))
    }

    @Test func dsnParametersWhenOffered() throws {
        var harness = Harness()
        harness.open()
        var request = try transaction()
        request.deliveryStatus = DeliveryStatusRequest(returnContent: .headers, envelopeID: "id+1")
        request.recipients = [Recipient("b@example.test", notify: .on(success: true, failure: true, delay: false), includeOriginalRecipient: true)]
        harness.record(harness.session.send(request))
        #expect(harness.written.last == "MAIL FROM:<a@example.test> SIZE=18 RET=HDRS ENVID=id+2B1\r\nRCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.test\r\nDATA\r\n")
    }

    @Test func dsnParametersOmittedWhenNotOffered() throws {
        var harness = Harness()
        harness.open(ehlo: ehloPlain)
        var request = try transaction()
        request.deliveryStatus = DeliveryStatusRequest(returnContent: .full, envelopeID: "x")
        request.recipients = [Recipient("b@example.test", notify: .never, includeOriginalRecipient: true)]
        harness.record(harness.session.send(request))
        #expect(harness.written.last == "MAIL FROM:<a@example.test> SIZE=18\r\n")
    }

    @Test func injectedRecipientNothingWritten() throws {
        var harness = Harness()
        harness.open()
        let writes = harness.written.count
        harness.record(harness.session.send(try transaction(to: ["b@example.test", "c@example.test>\r\nRCPT TO:<d@example.test"])))
        #expect(harness.written.count == writes)
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("no failure")
            return
        }
        #expect(error.phase == .rcpt)
        #expect(!error.isTemporary)
    }

    @Test("connection closed reports the phase", arguments: [0, 1, 2])
    func connectionClosedPhase(step: Int) throws {
        var harness = Harness()
        let expected: SMTPPhase
        switch step {
        case 0:
            expected = .greeting
        case 1:
            harness.server("220 mx\r\n")
            expected = .ehlo
        default:
            harness.open()
            harness.record(harness.session.send(try transaction()))
            harness.server("250 ok\r\n")
            expected = .rcpt
        }
        harness.record(harness.session.connectionClosed())
        #expect(harness.failure?.phase == expected)
        #expect(harness.failure?.kind == .connectionClosed)
        #expect(harness.failure?.isTemporary == true)
    }

    @Test func garbageReplyIsProtocolViolation() {
        var harness = Harness()
        harness.server("220 mx\r\n")
        harness.server("HTTP/1.1 400 Bad Request\r\n")
        #expect(harness.failure?.phase == .ehlo)
        guard case .protocolViolation? = harness.failure?.kind else {
            Issue.record("expected a protocol violation, got \(String(describing: harness.failure))")
            return
        }
        #expect(harness.closed)
    }

    @Test func replyDuringContentWaitsForEnd() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n250 ok\r\n354 go\r\n554 5.7.1 stop\r\n")
        #expect(harness.events.last == .sendMessageContent)
        #expect(harness.failure == nil)
        harness.record(harness.session.messageContentSent())
        guard case .failure(let error)? = harness.lastResult else {
            Issue.record("expected the early reply to fail the message")
            return
        }
        #expect(error.phase == .endOfData)
        #expect(error.reply?.code == 554)
        #expect(!error.isTemporary)
    }

    @Test func quitThenClose() {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.quit())
        #expect(harness.written.last == "QUIT\r\n")
        #expect(harness.session.awaitedPhase == .quit)
        harness.server("221 bye\r\n")
        #expect(harness.closed)
        #expect(harness.failure == nil)
    }

    @Test func nextTransactionPipelinedAfterContent() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction(to: ["b@example.test"])))
        #expect(!harness.session.canSend)
        harness.server("250 ok\r\n250 ok\r\n354 go\r\n")
        harness.record(harness.session.messageContentSent())
        #expect(harness.session.canSend)
        harness.record(harness.session.send(try transaction(to: ["c@example.test"])))
        #expect(harness.written.last == "MAIL FROM:<a@example.test> SIZE=18\r\nRCPT TO:<c@example.test>\r\nDATA\r\n")
        #expect(!harness.session.canSend)
        #expect(harness.session.awaitedPhase == .endOfData)

        harness.server("250 first queued\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        let completed = harness.events.compactMap { event -> Result<TransactionResult, SMTPError>? in
            if case .transactionCompleted(let result) = event { result } else { nil }
        }
        #expect(completed.count == 1)
        #expect(harness.events.last == .sendMessageContent)
        harness.record(harness.session.messageContentSent())
        harness.server("250 second queued\r\n")
        guard case .success(let second)? = harness.lastResult else {
            Issue.record("no success")
            return
        }
        #expect(second.reply.text == "second queued")
        #expect(second.accepted.map(\.address) == ["c@example.test"])
        #expect(harness.session.isReady)
    }

    @Test func rejectedContentDoesNotAffectPipelinedNext() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n250 ok\r\n354 go\r\n")
        harness.record(harness.session.messageContentSent())
        harness.record(harness.session.send(try transaction()))
        harness.server("554 5.7.1 spam\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        let results = harness.events.compactMap { event -> Result<TransactionResult, SMTPError>? in
            if case .transactionCompleted(let result) = event { result } else { nil }
        }
        #expect(results.count == 1)
        guard case .failure(let error)? = results.first else {
            Issue.record("first message not rejected")
            return
        }
        #expect(error.phase == .endOfData)
        #expect(harness.events.last == .sendMessageContent)
        harness.record(harness.session.messageContentSent())
        harness.server("250 queued\r\n")
        guard case .success? = harness.lastResult else {
            Issue.record("second message not sent")
            return
        }
        #expect(!harness.written.contains { $0.hasPrefix("RSET") })
    }

    @Test func serviceClosingFailsBothPipelinedTransactions() throws {
        var harness = Harness()
        harness.open()
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n250 ok\r\n354 go\r\n")
        harness.record(harness.session.messageContentSent())
        harness.record(harness.session.send(try transaction()))
        harness.server("421 4.3.2 shutting down\r\n")
        #expect(harness.failure?.phase == .endOfData)
        #expect(harness.failure?.kind == .serviceNotAvailable)
        #expect(harness.closed)
        #expect(!harness.session.canSend)
    }

    @Test func noPipelinedNextWithoutPipelining() throws {
        var harness = Harness()
        harness.open(ehlo: ehloPlain)
        harness.record(harness.session.send(try transaction()))
        harness.server("250 ok\r\n")
        harness.server("250 ok\r\n")
        harness.server("354 go\r\n")
        harness.record(harness.session.messageContentSent())
        #expect(!harness.session.canSend)
    }
}
