import Foundation
import SMTPCore

/// One message received in a capture session, with its envelope.
struct CapturedMessage: Sendable {
    /// The reverse-path of MAIL FROM without angle brackets, or an empty string for the null sender `<>`.
    let sender: String
    /// The forward-paths of the accepted RCPT commands, in the order received.
    let recipients: [String]
    /// The message as received after DATA: dot-unstuffed, with the client's line endings kept, and
    /// without the terminating line ".".
    let content: [UInt8]
    /// The domain the client gave with EHLO or HELO.
    let clientName: String
    /// The protocol name for the `with` clause of a Received field: SMTP after HELO, ESMTP after EHLO,
    /// and UTF8SMTP for a transaction with the SMTPUTF8 parameter (RFC 3848, RFC 6531 section 3.7.3).
    /// After EHLO, "S" is added under TLS and "A" after AUTH, as in ESMTPSA.
    let transferProtocol: String
    /// The TLS protocol version, such as `TLSv1.3`, or nil for a message received without TLS.
    var tlsProtocolVersion: String? = nil
    /// The user name that the client authenticated as, or nil for a message received without AUTH.
    var authenticatedUser: String? = nil
}

/// The server side of one SMTP session (RFC 5321), without I/O.
///
/// Pass the bytes read from the client to `receive(_:)`, then call `nextEvent()` until it returns nil,
/// and carry out each event in order: write a reply, save a message and report the outcome with
/// `finishMessage(_:)`, or close the connection. Commands are handled one at a time in the order
/// received, so pipelined commands (RFC 2920) get their replies in order. Bytes after a command line or
/// after the end of data stay buffered for the next command. Because the session never touches a socket,
/// the server puts a TLS stream under it after STARTTLS without changing the dialogue.
///
/// STARTTLS (RFC 3207) and AUTH (RFC 4954) are offered as `Security` configures them. A STARTTLS with
/// bytes buffered behind it gets 554 and the session closes, so that no plaintext command can be
/// injected into the TLS session (CVE-2011-0411).
struct CaptureSession {
    /// Bounds that keep a hostile or broken client from using unbounded memory or time.
    struct Limits: Sendable {
        /// The maximum length of a command line, in octets without CRLF. RFC 5321 section 4.5.3.1.4
        /// requires servers to accept 512 octets with CRLF, and the parameters of extensions add to that.
        var maxCommandLineLength = 4096
        /// The maximum length of a line of message data, in octets without CRLF: 998, the limit of RFC 5322
        /// section 2.1.1 and RFC 5321 section 4.5.3.1.6. Capture rejects longer lines, as many servers do.
        var maxTextLineLength = 998
        /// The maximum message size, in octets after dot-unstuffing, counted as SIZE counts it (RFC 1870).
        /// The default is 25 MiB.
        var maxMessageSize = 25 * 1024 * 1024
        /// The maximum number of recipients of one message. RFC 5321 section 4.5.3.1.8 requires servers to
        /// accept at least 100.
        var maxRecipients = 1000
        /// The number of rejected commands after which the session is closed with 421. Failed AUTH
        /// attempts count too.
        var maxErrors = 20
        /// The maximum length of a line of an AUTH exchange, in octets without CRLF: 12288, the minimum
        /// that RFC 4954 section 4 requires servers to accept.
        var maxAuthenticationLineLength = 12288
    }

    /// The STARTTLS and AUTH settings of a session: what it offers and what it requires.
    struct Security: Sendable {
        /// Whether EHLO offers STARTTLS while the connection is not yet encrypted.
        var offersStartTLS = false
        /// The credentials that AUTH accepts, or nil when AUTH is not offered.
        var credentials: CaptureCredentials?
        /// The SASL mechanisms that EHLO offers, from `SASLServerExchange.mechanisms`.
        var mechanisms = SASLServerExchange.mechanisms
        /// Whether AUTH is offered before TLS. Without it, AUTH before TLS gets 538.
        var allowsPlaintextAuthentication = false
        /// Whether MAIL before a successful AUTH gets 530.
        var requiresAuthentication = false
    }

    enum Event {
        case reply(SMTPReply)
        /// A complete message to save. Call `finishMessage(_:)` with the outcome before the next
        /// `nextEvent()`, which returns nil until then.
        case message(CapturedMessage)
        /// Close the connection after writing the replies before this event.
        case close
        /// Write the replies before this event, run the server side of the TLS handshake, and call
        /// `finishStartTLS(protocolVersion:)` once it succeeds. `nextEvent()` returns nil until then.
        case startTLS
    }

    /// The outcome of saving a message that `nextEvent()` handed over.
    enum SaveOutcome {
        /// The message was saved under this name.
        case saved(name: String)
        /// Saving failed. The client gets a temporary failure and may send the message again.
        case failed
        /// The server is shutting down and took no more messages.
        case refused
    }

    private enum Phase {
        case command
        case data(MessageDataReader)
        case savingMessage
        case startingTLS
        /// Reading the client's responses to AUTH challenges.
        case authenticating(SASLServerExchange)
        case closed
    }

    private struct Transaction {
        var sender: String
        var recipients: [String] = []
        var usesSMTPUTF8 = false
    }

    let serverName: String
    let limits: Limits
    let security: Security

    /// Whether MAIL starts a new transaction. When false, MAIL gets 421 and the session closes, which the
    /// server uses once it has saved as many messages as it was asked to.
    var acceptsMessages = true

    private var phase = Phase.command
    private var input: [UInt8] = []
    /// The offset in `input` of the first byte not yet consumed.
    private var inputStart = 0
    /// The offset from which to look for the next LF, so that a line arriving in pieces is scanned once.
    private var scanPosition = 0
    private var pendingEvents: [Event] = []
    /// The EHLO or HELO domain, or nil before either was accepted.
    private var clientName: String?
    private var isExtended = false
    private var transaction: Transaction?
    private var errorCount = 0
    /// The TLS protocol version once TLS is active, such as `TLSv1.3`; nil before.
    private(set) var tlsProtocolVersion: String?
    /// The user name of the successful AUTH, or nil before it.
    private(set) var authenticatedUser: String?

    init(serverName: String, limits: Limits = Limits(), security: Security = Security()) {
        self.serverName = serverName
        self.limits = limits
        self.security = security
    }

    /// The 220 reply to send when the client connects.
    var greeting: SMTPReply {
        SMTPReply(code: 220, lines: ["\(serverName) ESMTP outbox capture ready"])
    }

    /// The 421 reply to send before closing a connection whose client sent nothing for too long.
    var timeoutReply: SMTPReply {
        Self.reply(421, 4, 4, 2, "\(serverName) Timeout waiting for the client, closing connection")
    }

    /// The 421 reply to send before closing a connection because the server is stopping.
    var shutdownReply: SMTPReply {
        Self.reply(421, 4, 3, 2, "\(serverName) Service shutting down, closing connection")
    }

    /// Whether the session is reading message data after DATA.
    var isReceivingData: Bool {
        if case .data = phase {
            return true
        }
        return false
    }

    /// Appends bytes read from the client.
    mutating func receive(_ bytes: some Collection<UInt8>) {
        if case .closed = phase {
            return
        }
        // Drop consumed bytes once they are at least half of the buffer, so that a long session does
        // not keep everything it read.
        if inputStart > 0, inputStart >= input.count / 2 {
            input.removeSubrange(..<inputStart)
            scanPosition = max(scanPosition - inputStart, 0)
            inputStart = 0
        }
        input.append(contentsOf: bytes)
    }

    /// Returns the next thing to do, or nil when the session needs more input (or has closed, or waits
    /// for `finishMessage(_:)` or `finishStartTLS(protocolVersion:)`).
    mutating func nextEvent() -> Event? {
        while pendingEvents.isEmpty {
            switch phase {
            case .command, .authenticating:
                guard handleNextLine() else { return nil }
            case .data(var reader):
                // Release the phase's copy of the reader, so that appending to its content copies nothing.
                phase = .savingMessage
                let end = reader.consume(input, from: inputStart)
                inputStart = end ?? input.count
                scanPosition = inputStart
                guard end != nil else {
                    phase = .data(reader)
                    return nil
                }
                finishData(reader)
            case .savingMessage, .startingTLS, .closed:
                return nil
            }
        }
        return pendingEvents.removeFirst()
    }

    /// Replies to the end of data according to what became of the message that `nextEvent()` returned.
    mutating func finishMessage(_ outcome: SaveOutcome) {
        guard case .savingMessage = phase else {
            preconditionFailure("finishMessage called without a message being saved")
        }
        phase = .command
        switch outcome {
        case .saved(let name):
            pendingEvents.append(.reply(Self.reply(250, 2, 0, 0, "Message saved as \(name)")))
        case .failed:
            pendingEvents.append(.reply(Self.reply(451, 4, 3, 0, "Saving the message failed, try again later")))
        case .refused:
            close(with: Self.reply(421, 4, 3, 2, "\(serverName) Service shutting down, message not saved"))
        }
    }

    /// Marks the connection as encrypted from the start, for implicit TLS. Call it before the greeting.
    mutating func startWithTLS(protocolVersion: String) {
        tlsProtocolVersion = protocolVersion
    }

    /// Continues the session after the TLS handshake that the `.startTLS` event asked for. As RFC 3207
    /// section 4.2 requires, the session discards what the client sent before: the EHLO domain, any
    /// transaction and any AUTH. No input is kept, because the command was rejected if any followed it.
    mutating func finishStartTLS(protocolVersion: String) {
        guard case .startingTLS = phase else {
            preconditionFailure("finishStartTLS called without a STARTTLS in progress")
        }
        phase = .command
        input = []
        inputStart = 0
        scanPosition = 0
        clientName = nil
        isExtended = false
        transaction = nil
        authenticatedUser = nil
        tlsProtocolVersion = protocolVersion
    }

    // MARK: - Commands

    /// Handles one complete line from the input: a command, or a response during AUTH. Returns false when
    /// it needs more input.
    private mutating func handleNextLine() -> Bool {
        var exchange: SASLServerExchange?
        if case .authenticating(let current) = phase {
            exchange = current
        }
        let maxLength = exchange == nil ? limits.maxCommandLineLength : limits.maxAuthenticationLineLength
        let lineKind = exchange == nil ? "a command line" : "an AUTH response line"
        guard let lineEnd = findCommandLineEnd() else {
            // A line that cannot end within the limit is not buffered further.
            guard input.count - inputStart > maxLength + 1 else {
                return false
            }
            close(with: Self.reply(
                500, 5, 5, 2, "Line too long: \(lineKind) may have at most \(maxLength) octets, closing connection"))
            return true
        }
        let line = input[inputStart..<lineEnd]
        inputStart = lineEnd + 2
        scanPosition = inputStart
        if line.count > maxLength {
            phase = .command
            reject(500, 5, 5, 2, "Line too long: \(lineKind) may have at most \(maxLength) octets")
        } else if let exchange {
            handleAuthenticationResponse(line, exchange: exchange)
        } else {
            handleCommand(line)
        }
        return true
    }

    /// Returns the offset of the CR of the first CRLF in the unconsumed input, or nil.
    private mutating func findCommandLineEnd() -> Int? {
        var index = max(scanPosition, inputStart)
        while let lineFeed = input[index...].firstIndex(of: ASCII.lineFeed) {
            if lineFeed > inputStart, input[lineFeed - 1] == ASCII.carriageReturn {
                return lineFeed - 1
            }
            index = lineFeed + 1
        }
        // A CR at the end may be followed by LF in the next read, so scan it again then.
        scanPosition = max(input.count - 1, inputStart)
        return nil
    }

    private mutating func handleCommand(_ line: ArraySlice<UInt8>) {
        if line.contains(where: { $0 == 0 || $0 == ASCII.carriageReturn || $0 == ASCII.lineFeed }) {
            reject(500, 5, 5, 2, "Syntax error: the command contains a NUL, a bare CR or a bare LF")
            return
        }
        let verbEnd = line.firstIndex(of: ASCII.space) ?? line.endIndex
        let verb = String(decoding: line[..<verbEnd], as: UTF8.self).uppercased()
        let argument = line[verbEnd...].drop { $0 == ASCII.space }
        switch verb {
        case "EHLO", "HELO":
            handleHello(argument, isExtended: verb == "EHLO")
        case "MAIL":
            handleMail(argument)
        case "RCPT":
            handleRecipient(argument)
        case "DATA":
            handleData(argument)
        case "STARTTLS":
            handleStartTLS(argument)
        case "AUTH":
            handleAuth(argument)
        case "RSET":
            guard argument.isEmpty else {
                reject(501, 5, 5, 4, "Syntax: RSET takes no argument")
                return
            }
            transaction = nil
            pendingEvents.append(.reply(Self.reply(250, 2, 0, 0, "OK")))
        case "NOOP":
            pendingEvents.append(.reply(Self.reply(250, 2, 0, 0, "OK")))
        case "QUIT":
            close(with: Self.reply(221, 2, 0, 0, "\(serverName) closing connection"))
        case "GET", "POST", "PUT", "HEAD", "CONNECT", "OPTIONS", "DELETE", "PATCH", "TRACE":
            // A web page can make a browser send an HTTP request to a loopback port, and the lines of its
            // body would otherwise be read as SMTP commands. Postfix closes such sessions the same way.
            close(with: Self.reply(421, 4, 7, 0, "\(serverName) HTTP request received, closing connection"))
        default:
            if !verb.isEmpty, verb.utf8.allSatisfy({ ASCII.isLetter($0) }) {
                reject(502, 5, 5, 1, "Command not implemented")
            } else {
                reject(500, 5, 5, 2, "Syntax error, command unrecognized")
            }
        }
    }

    private mutating func handleHello(_ argument: ArraySlice<UInt8>, isExtended: Bool) {
        let verb = isExtended ? "EHLO" : "HELO"
        var domain = argument
        while domain.last == ASCII.space {
            domain = domain.dropLast()
        }
        guard !domain.isEmpty, domain.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            reject(501, 5, 5, 4, "Syntax: \(verb) domain, where the domain is printable ASCII without spaces")
            return
        }
        clientName = String(decoding: domain, as: UTF8.self)
        self.isExtended = isExtended
        transaction = nil
        guard isExtended else {
            pendingEvents.append(.reply(SMTPReply(code: 250, lines: ["\(serverName) greets \(clientName!)"])))
            return
        }
        var lines = [
            "\(serverName) greets \(clientName!)",
            "PIPELINING",
            "SIZE \(limits.maxMessageSize)",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        ]

        if security.offersStartTLS && tlsProtocolVersion == nil {
            lines.append("STARTTLS")
        }
        if offersAuthentication {
            lines.append("AUTH " + security.mechanisms.joined(separator: " "))
        }
        pendingEvents.append(.reply(SMTPReply(code: 250, lines: lines)))
    }

    private mutating func handleMail(_ argument: ArraySlice<UInt8>) {
        guard clientName != nil else {
            reject(503, 5, 5, 1, "Bad sequence of commands: send EHLO or HELO first")
            return
        }
        guard transaction == nil else {
            reject(503, 5, 5, 1, "Bad sequence of commands: a transaction is already in progress; send RSET first")
            return
        }
        guard acceptsMessages else {
            close(with: Self.reply(421, 4, 3, 2, "\(serverName) Service shutting down, closing connection"))
            return
        }
        guard authenticatedUser != nil || !security.requiresAuthentication else {
            let advice = offersAuthentication ? "send AUTH first" : "send STARTTLS, then AUTH"
            reject(530, 5, 7, 0, "Authentication required: \(advice)")
            return
        }

        let parsed: PathArgument
        switch PathArgument.parse(argument, keyword: "FROM:") {
        case .success(let value):
            parsed = value
        case .failure(let error):
            rejectPath(error, command: "MAIL FROM", enhancedSubject: 1, detail: 7)
            return
        }

        guard let usesSMTPUTF8 = checkMailParameters(parsed.parameters) else {
            return
        }
        guard usesSMTPUTF8 || parsed.path.allSatisfy({ $0 < 0x80 }) else {
            reject(553, 5, 6, 7, "The sender address contains non-ASCII characters, which need SMTPUTF8")
            return
        }

        let sender = String(decoding: parsed.path, as: UTF8.self)
        transaction = Transaction(sender: sender, usesSMTPUTF8: usesSMTPUTF8)
        pendingEvents.append(.reply(Self.reply(250, 2, 1, 0, "Sender <\(sender)> OK")))
    }

    /// Checks the parameters of MAIL FROM and queues a rejection for the first invalid one. Returns whether
    /// SMTPUTF8 was given, or nil after a rejection.
    private mutating func checkMailParameters(_ parameters: [PathArgument.Parameter]) -> Bool? {
        var usesSMTPUTF8 = false
        var seenKeywords: Set<String> = []
        for parameter in parameters {
            guard isExtended else {
                reject(555, 5, 5, 4, "MAIL FROM parameters need EHLO, but the session started with HELO")
                return nil
            }
            guard seenKeywords.insert(parameter.keyword).inserted else {
                reject(501, 5, 5, 4, "The MAIL FROM parameter \(parameter.keyword) is given twice")
                return nil
            }

            switch (parameter.keyword, parameter.value) {
            case ("SIZE", let value?):
                guard value.count <= 18, value.utf8.allSatisfy(ASCII.isDigit), let size = Int(value) else {
                    reject(501, 5, 5, 4, "Invalid SIZE value \"\(value)\": expected a number of octets")
                    return nil
                }
                guard size <= limits.maxMessageSize else {
                    reject(552, 5, 3, 4, "Message size exceeds the maximum of \(limits.maxMessageSize) octets")
                    return nil
                }
            case ("BODY", let value?):
                guard ["7BIT", "8BITMIME"].contains(value.uppercased()) else {
                    reject(501, 5, 5, 4, "Invalid BODY value \"\(value)\": expected 7BIT or 8BITMIME")
                    return nil
                }
            case ("SMTPUTF8", nil):
                usesSMTPUTF8 = true
            case ("SIZE", nil), ("BODY", nil), ("SMTPUTF8", _):
                reject(501, 5, 5, 4, "Invalid MAIL FROM parameter \(parameter.text)")
                return nil
            default:
                reject(555, 5, 5, 4, "The MAIL FROM parameter \(parameter.keyword) is not supported")
                return nil
            }
        }
        return usesSMTPUTF8
    }

    private mutating func handleRecipient(_ argument: ArraySlice<UInt8>) {
        guard var current = transaction else {
            reject(503, 5, 5, 1, "Bad sequence of commands: send MAIL first")
            return
        }
        let parsed: PathArgument
        switch PathArgument.parse(argument, keyword: "TO:") {
        case .success(let value):
            parsed = value
        case .failure(let error):
            rejectPath(error, command: "RCPT TO", enhancedSubject: 1, detail: 3)
            return
        }

        if let parameter = parsed.parameters.first {
            reject(555, 5, 5, 4, "The RCPT TO parameter \(parameter.keyword) is not supported")
            return
        }
        guard !parsed.path.isEmpty else {
            reject(501, 5, 1, 3, "Syntax: RCPT TO:<address>, where the address is not empty")
            return
        }
        guard current.usesSMTPUTF8 || parsed.path.allSatisfy({ $0 < 0x80 }) else {
            reject(553, 5, 6, 7, "The recipient address contains non-ASCII characters, which need SMTPUTF8")
            return
        }
        guard current.recipients.count < limits.maxRecipients else {
            // RFC 5321 section 4.5.3.1.10: 452, so that the client sends the rest in another transaction.
            pendingEvents.append(.reply(Self.reply(
                452, 4, 5, 3, "Too many recipients: at most \(limits.maxRecipients) per message")))
            return
        }

        let recipient = String(decoding: parsed.path, as: UTF8.self)
        current.recipients.append(recipient)
        transaction = current
        pendingEvents.append(.reply(Self.reply(250, 2, 1, 5, "Recipient <\(recipient)> OK")))
    }

    private mutating func handleData(_ argument: ArraySlice<UInt8>) {
        guard argument.isEmpty else {
            reject(501, 5, 5, 4, "Syntax: DATA takes no argument")
            return
        }
        guard let transaction else {
            reject(503, 5, 5, 1, "Bad sequence of commands: send MAIL first")
            return
        }
        guard !transaction.recipients.isEmpty else {
            // RFC 2920 names 503 and 554 as the replies to a pipelined DATA after every RCPT failed.
            reject(554, 5, 5, 1, "No valid recipients")
            return
        }
        pendingEvents.append(.reply(SMTPReply(code: 354, lines: ["End data with <CR><LF>.<CR><LF>"])))
        phase = .data(MessageDataReader(
            maxMessageSize: limits.maxMessageSize, maxLineLength: limits.maxTextLineLength))
    }

    /// Replies to the end of data: hands the message over to be saved, or rejects it.
    private mutating func finishData(_ reader: MessageDataReader) {
        let current = transaction!
        transaction = nil
        phase = .command
        if reader.exceedsMaxMessageSize {
            pendingEvents.append(.reply(Self.reply(
                552, 5, 3, 4, "Message size exceeds the maximum of \(limits.maxMessageSize) octets")))
            return
        }
        if let line = reader.firstOverlongLine {
            pendingEvents.append(.reply(Self.reply(
                554, 5, 6, 0,
                "Line \(line) of the message is longer than \(limits.maxTextLineLength) octets, "
                    + "the limit of RFC 5322 section 2.1.1")))
            return
        }
        var transferProtocol = current.usesSMTPUTF8 ? "UTF8SMTP" : (isExtended ? "ESMTP" : "SMTP")
        // RFC 3848 and RFC 6531 section 3.7.3 name only the extended forms with S and A.
        if isExtended {
            let suffix = (tlsProtocolVersion == nil ? "" : "S") + (authenticatedUser == nil ? "" : "A")
            transferProtocol += suffix
        }
        let message = CapturedMessage(
            sender: current.sender, recipients: current.recipients, content: reader.content,
            clientName: clientName ?? "", transferProtocol: transferProtocol,
            tlsProtocolVersion: tlsProtocolVersion, authenticatedUser: authenticatedUser)
        phase = .savingMessage
        pendingEvents.append(.message(message))
    }

    // MARK: - STARTTLS and AUTH

    /// Whether EHLO offers AUTH now: when credentials are configured, and under TLS unless plaintext
    /// authentication is allowed.
    private var offersAuthentication: Bool {
        security.credentials != nil && (tlsProtocolVersion != nil || security.allowsPlaintextAuthentication)
    }

    private mutating func handleStartTLS(_ argument: ArraySlice<UInt8>) {
        guard security.offersStartTLS || tlsProtocolVersion != nil else {
            reject(502, 5, 5, 1, "Command not implemented")
            return
        }
        guard tlsProtocolVersion == nil else {
            reject(503, 5, 5, 1, "Bad sequence of commands: TLS is already active")
            return
        }
        guard argument.isEmpty else {
            reject(501, 5, 5, 4, "Syntax: STARTTLS takes no argument")
            return
        }
        guard transaction == nil else {
            reject(503, 5, 5, 1, "Bad sequence of commands: a transaction is in progress; send RSET first")
            return
        }
        // RFC 3207 section 4.2 forbids pipelining commands after STARTTLS. Bytes already buffered were
        // sent before the client could see the 220 reply, so they may be plaintext injected by an attacker.
        guard inputStart == input.count else {
            close(with: Self.reply(
                554, 5, 5, 1, "Commands were pipelined after STARTTLS, which RFC 3207 forbids; closing connection"))
            return
        }
        pendingEvents.append(.reply(Self.reply(220, 2, 0, 0, "Ready to start TLS")))
        pendingEvents.append(.startTLS)
        phase = .startingTLS
    }

    /// Handles `AUTH mechanism [initial-response]` (RFC 4954 section 4).
    private mutating func handleAuth(_ argument: ArraySlice<UInt8>) {
        guard let credentials = security.credentials else {
            reject(502, 5, 5, 1, "Command not implemented")
            return
        }
        guard offersAuthentication else {
            reject(538, 5, 7, 11, "Encryption required for requested authentication mechanism: send STARTTLS first")
            return
        }
        guard isExtended else {
            reject(503, 5, 5, 1, "Bad sequence of commands: send EHLO first")
            return
        }
        guard authenticatedUser == nil else {
            reject(503, 5, 5, 1, "Bad sequence of commands: already authenticated")
            return
        }
        guard transaction == nil else {
            reject(503, 5, 5, 1, "Bad sequence of commands: AUTH is not permitted during a mail transaction")
            return
        }

        let words = argument.split(separator: ASCII.space)
        guard let mechanismWord = words.first, words.count <= 2 else {
            reject(501, 5, 5, 4, "Syntax: AUTH mechanism [initial-response]")
            return
        }
        let mechanism = String(decoding: mechanismWord, as: UTF8.self).uppercased()
        guard var exchange = SASLServerExchange(
            mechanism: mechanism, offeredMechanisms: security.mechanisms, credentials: credentials,
            serverName: serverName)
        else {
            let offered = security.mechanisms.joined(separator: ", ")
            reject(504, 5, 5, 4, "Unrecognized authentication mechanism. Use one of \(offered)")
            return
        }
        var initialResponse: [UInt8]?
        if words.count == 2 {
            // RFC 4954 section 4: "=" is an empty initial response.
            let text = words[1]
            if text.elementsEqual([ASCII.equals]) {
                initialResponse = []
            } else if let decoded = Self.decodeBase64(text) {
                initialResponse = decoded
            } else {
                reject(501, 5, 5, 2, "Invalid base64 in the initial response")
                return
            }
        }
        continueAuthentication(exchange.start(initialResponse: initialResponse), exchange: exchange)
    }

    /// Handles a line sent in reply to a 334 challenge: "*" cancels, anything else is a base64 response.
    private mutating func handleAuthenticationResponse(_ line: ArraySlice<UInt8>, exchange: SASLServerExchange) {
        phase = .command
        if line.elementsEqual([UInt8(ascii: "*")]) {
            reject(501, 5, 0, 0, "Authentication cancelled")
            return
        }
        guard let response = Self.decodeBase64(line) else {
            reject(501, 5, 5, 2, "Invalid base64 in the AUTH response; authentication ended")
            return
        }
        var exchange = exchange
        continueAuthentication(exchange.receive(response), exchange: exchange)
    }

    private mutating func continueAuthentication(_ step: SASLServerExchange.Step, exchange: SASLServerExchange) {
        switch step {
        case .challenge(let challenge):
            phase = .authenticating(exchange)
            // A 334 reply carries only the base64 challenge, without an enhanced status code.
            pendingEvents.append(.reply(SMTPReply(code: 334, lines: [Data(challenge).base64EncodedString()])))
        case .success(let user):
            phase = .command
            authenticatedUser = user
            pendingEvents.append(.reply(Self.reply(235, 2, 7, 0, "Authentication successful")))
        case .failure:
            phase = .command
            reject(535, 5, 7, 8, "Authentication credentials invalid")
        case .malformed(let text):
            phase = .command
            reject(501, 5, 5, 2, text)
        }
    }

    /// Decodes standard base64 with padding (RFC 4648 section 4), as RFC 4954 requires. An empty line
    /// is an empty response. Returns nil for anything else, including spaces.
    private static func decodeBase64(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0,
              text.allSatisfy({ ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == ASCII.plus || $0 == ASCII.slash
                  || $0 == ASCII.equals }),
              let data = Data(base64Encoded: Data(text))
        else {
            return nil
        }
        return Array(data)
    }

    // MARK: - Replies

    /// Queues an error reply, or 421 and the end of the session once the client has made too many errors.
    private mutating func reject(_ code: Int, _ statusClass: Int, _ subject: Int, _ detail: Int, _ text: String) {
        errorCount += 1
        if errorCount >= limits.maxErrors {
            close(with: Self.reply(421, 4, 7, 0, "\(serverName) Too many errors, closing connection"))
        } else {
            pendingEvents.append(.reply(Self.reply(code, statusClass, subject, detail, text)))
        }
    }

    private mutating func rejectPath(_ error: PathArgument.Error, command: String, enhancedSubject: Int, detail: Int) {
        switch error {
        case .syntax:
            reject(501, 5, 5, 4, "Syntax: \(command):<address> [parameters]")
        case .invalidAddress(let reason):
            reject(501, 5, enhancedSubject, detail, "Invalid address: \(reason)")
        }
    }

    private mutating func close(with reply: SMTPReply) {
        pendingEvents.append(.reply(reply))
        pendingEvents.append(.close)
        phase = .closed
        input = []
        inputStart = 0
        scanPosition = 0
    }

    /// Returns a one-line reply with an RFC 3463 enhanced status code, which ENHANCEDSTATUSCODES (RFC 2034)
    /// announces. Capture adds the code after HELO too, where a client reads it as part of the text.
    private static func reply(
        _ code: Int, _ statusClass: Int, _ subject: Int, _ detail: Int, _ text: String
    ) -> SMTPReply {
        let enhancedCode = EnhancedStatusCode(statusClass: statusClass, subject: subject, detail: detail)
        return SMTPReply(code: code, lines: [text], enhancedCode: enhancedCode)
    }
}

extension SMTPReply {
    /// Encodes the reply as a server sends it: every line but the last with "-" after the code, the
    /// enhanced status code (if any) before the text of every line, and CRLF after each line.
    func encoded() -> [UInt8] {
        var text = ""
        for (index, line) in lines.enumerated() {
            text += String(code)
            text += index == lines.count - 1 ? " " : "-"
            if let enhancedCode {
                text += "\(enhancedCode) "
            }
            text += line + "\r\n"
        }
        return Array(text.utf8)
    }
}

// MARK: - Message data

/// Reads message data after DATA (RFC 5321 section 4.5.2) up to the line ".", which ends the data.
///
/// It removes the "." that the client doubled at the start of lines, counts the size as SIZE does
/// (RFC 1870: the octets after unstuffing, CRLFs included), and checks the length of each line. Lines end
/// only at CRLF. A bare CR or LF is kept in the content as received and does not end a line, so a bare
/// LF "." bare LF cannot end the data (the pattern behind "SMTP smuggling"). Input may arrive in pieces
/// of any size, split anywhere.
struct MessageDataReader {
    private enum State {
        case lineStart
        /// A "." at the start of a line, not yet known to be the end of data.
        case dot
        /// ".", CR at the start of a line.
        case dotCarriageReturn
        case inLine
        /// A CR inside a line, not yet known to be followed by LF.
        case carriageReturn
    }

    let maxMessageSize: Int
    let maxLineLength: Int

    /// The message so far. Emptied when the message exceeds `maxMessageSize` or has an overlong line,
    /// because such a message is rejected.
    private(set) var content: [UInt8] = []
    /// The size of the message in octets so far, counting bytes no longer kept in `content`.
    private(set) var size = 0
    private(set) var exceedsMaxMessageSize = false
    /// The number, from 1, of the first line longer than `maxLineLength`.
    private(set) var firstOverlongLine: Int?

    private var state = State.lineStart
    private var lineLength = 0
    private var lineNumber = 1

    init(maxMessageSize: Int, maxLineLength: Int) {
        self.maxMessageSize = maxMessageSize
        self.maxLineLength = maxLineLength
    }

    private var keepsContent: Bool {
        !exceedsMaxMessageSize && firstOverlongLine == nil
    }

    /// Consumes `input` from `start`. Returns the offset just past the line "." that ends the data, or nil
    /// when every byte was consumed without reaching it.
    mutating func consume(_ input: [UInt8], from start: Int) -> Int? {
        var index = start
        while index < input.count {
            let byte = input[index]
            switch state {
            case .lineStart:
                index += 1
                if byte == ASCII.dot {
                    state = .dot
                } else if byte == ASCII.carriageReturn {
                    state = .carriageReturn
                } else {
                    appendText(CollectionOfOne(byte))
                    state = .inLine
                }
            case .dot:
                // The "." starts a line with more characters on it, so it was added by the client.
                if byte == ASCII.carriageReturn {
                    index += 1
                    state = .dotCarriageReturn
                } else {
                    state = .inLine
                }
            case .dotCarriageReturn:
                if byte == ASCII.lineFeed {
                    return index + 1
                }
                // ".", CR and something else: the line continues after the removed ".", with a bare CR.
                state = .carriageReturn
            case .inLine:
                // Copy up to the next CR in one step, which is most of the message.
                let end = input[index...].firstIndex(of: ASCII.carriageReturn) ?? input.count
                appendText(input[index..<end])
                index = end
                if index < input.count {
                    index += 1
                    state = .carriageReturn
                }
            case .carriageReturn:
                if byte == ASCII.lineFeed {
                    index += 1
                    appendLineEnd()
                    state = .lineStart
                } else {
                    // A bare CR, kept as part of the line. The byte after it is read again in state inLine.
                    appendText(CollectionOfOne(ASCII.carriageReturn))
                    state = .inLine
                }
            }
        }
        return nil
    }

    private mutating func appendText(_ bytes: some Collection<UInt8>) {
        lineLength += bytes.count
        if lineLength > maxLineLength, firstOverlongLine == nil {
            firstOverlongLine = lineNumber
            content = []
        }
        addToSize(bytes.count)
        if keepsContent {
            content.append(contentsOf: bytes)
        }
    }

    private mutating func appendLineEnd() {
        lineLength = 0
        lineNumber += 1
        addToSize(2)
        if keepsContent {
            content.append(ASCII.carriageReturn)
            content.append(ASCII.lineFeed)
        }
    }

    private mutating func addToSize(_ count: Int) {
        size += count
        if size > maxMessageSize, !exceedsMaxMessageSize {
            exceedsMaxMessageSize = true
            content = []
        }
    }
}

// MARK: - Paths and parameters

/// The argument of MAIL and RCPT: `FROM:<path> [parameters]` or `TO:<path> [parameters]`.
struct PathArgument {
    struct Parameter {
        /// The keyword in upper case.
        let keyword: String
        let value: String?
        /// The parameter as written.
        let text: String
    }

    enum Error: Swift.Error, Equatable {
        /// The argument does not have the form `KEYWORD<path> [parameters]`.
        case syntax
        case invalidAddress(String)
    }

    /// The mailbox between the angle brackets, without a source route; empty for `<>`.
    let path: ArraySlice<UInt8>
    let parameters: [Parameter]

    /// Parses the argument after the verb. `keyword` is "FROM:" or "TO:", matched without case. Spaces
    /// after the colon are accepted, though RFC 5321 allows none, because common clients send them.
    static func parse(_ argument: ArraySlice<UInt8>, keyword: String) -> Result<PathArgument, Error> {
        let keywordBytes = Array(keyword.utf8)
        guard argument.count >= keywordBytes.count,
              zip(argument.prefix(keywordBytes.count), keywordBytes).allSatisfy({ ASCII.uppercased($0) == $1 })
        else {
            return .failure(.syntax)
        }
        let rest = argument.dropFirst(keywordBytes.count).drop { $0 == ASCII.space }
        guard rest.first == ASCII.lessThan, let close = closingBracket(in: rest) else {
            return .failure(.syntax)
        }
        var path = rest[(rest.startIndex + 1)..<close]
        // RFC 5321 section 4.1.1.3: a server should ignore a source route such as <@relay.test:user@host>.
        if path.first == ASCII.at, let colon = path.firstIndex(of: ASCII.colon) {
            path = path[(colon + 1)...]
        }
        if let reason = invalidPathReason(path) {
            return .failure(.invalidAddress(reason))
        }
        let tail = rest[(close + 1)...]
        guard tail.isEmpty || tail.first == ASCII.space else {
            return .failure(.syntax)
        }
        var parameters: [Parameter] = []
        for word in tail.split(separator: ASCII.space) {
            guard let parameter = parseParameter(word) else {
                return .failure(.syntax)
            }
            parameters.append(parameter)
        }
        return .success(PathArgument(path: path, parameters: parameters))
    }

    /// Returns the offset of the ">" that closes the path starting at `text.first`, skipping quoted strings.
    private static func closingBracket(in text: ArraySlice<UInt8>) -> Int? {
        var inQuotes = false
        var escaped = false
        for index in text.indices.dropFirst() {
            let byte = text[index]
            if escaped {
                escaped = false
            } else if inQuotes && byte == ASCII.backslash {
                escaped = true
            } else if byte == ASCII.quote {
                inQuotes.toggle()
            } else if !inQuotes && byte == ASCII.greaterThan {
                return index
            }
        }
        return nil
    }

    /// Returns why the mailbox cannot be used, or nil. The mailbox is written into the saved message's
    /// Return-Path field and printed, so control characters are rejected as well as malformed text.
    private static func invalidPathReason(_ path: ArraySlice<UInt8>) -> String? {
        if path.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            return "the address contains a control character"
        }
        if String(validating: path, as: UTF8.self) == nil {
            return "the address is not valid UTF-8"
        }
        var inQuotes = false
        var escaped = false
        for byte in path {
            if escaped {
                escaped = false
            } else if inQuotes && byte == ASCII.backslash {
                escaped = true
            } else if byte == ASCII.quote {
                inQuotes.toggle()
            } else if !inQuotes && (byte == ASCII.space || byte == ASCII.lessThan) {
                return "the address contains a space or \"<\" outside quotes"
            }
        }
        return inQuotes ? "the address has an opening quote without a closing one" : nil
    }

    // esmtp-param = esmtp-keyword ["=" esmtp-value]
    // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    private static func parseParameter(_ word: ArraySlice<UInt8>) -> Parameter? {
        let equals = word.firstIndex(of: ASCII.equals)
        let keyword = word[..<(equals ?? word.endIndex)]
        guard let first = keyword.first, ASCII.isLetter(first) || ASCII.isDigit(first),
              keyword.allSatisfy({ ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == ASCII.hyphen })
        else {
            return nil
        }
        var value: String?
        if let equals {
            let valueBytes = word[(equals + 1)...]
            guard !valueBytes.isEmpty, let text = String(validating: valueBytes, as: UTF8.self) else {
                return nil
            }
            value = text
        }
        return Parameter(
            keyword: String(decoding: keyword, as: UTF8.self).uppercased(), value: value,
            text: String(decoding: word, as: UTF8.self))
    }
}

/// The ASCII bytes that the SMTP syntax uses.
enum ASCII {
    static let carriageReturn = UInt8(ascii: "\r")
    static let lineFeed = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let dot = UInt8(ascii: ".")
    static let lessThan = UInt8(ascii: "<")
    static let greaterThan = UInt8(ascii: ">")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let at = UInt8(ascii: "@")
    static let colon = UInt8(ascii: ":")
    static let equals = UInt8(ascii: "=")
    static let hyphen = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let slash = UInt8(ascii: "/")

    static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    static func uppercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) ? byte - 0x20 : byte
    }
}
