import SMTPClient
import SMTPCore

// The phases, faults and scripts of the fault matrices: `FaultMatrixTests` and
// `SecurityFaultMatrixTests` check the client's errors, and `StoreFaultMatrixTests` checks what the
// sender records in the store.

/// A point of the session where the scripted server misbehaves.
public enum FaultPhase: String, CaseIterable, Sendable, CustomStringConvertible {
    case greeting
    case ehlo = "EHLO"
    case mail = "MAIL"
    case rcpt = "RCPT"
    case data = "DATA"
    /// After the 354 reply, before the server has read any of the message content.
    case dataTransfer = "data transfer"
    case endOfData = "end of data"
    case quit = "QUIT"

    public var description: String { rawValue }

    /// The phases an `SMTPError` may name for a fault here. A fault during the data transfer reaches a
    /// client that is still writing as a failed write, and a client that has written everything as the
    /// reply to the final dot.
    public var expectedErrorPhases: Set<SMTPPhase> {
        switch self {
        case .greeting: [.greeting]
        case .ehlo: [.ehlo]
        case .mail: [.mail]
        case .rcpt: [.rcpt]
        case .data: [.data]
        case .dataTransfer: [.dataTransfer, .endOfData]
        case .endOfData: [.endOfData]
        case .quit: [.quit]
        }
    }

    /// The body of the message sent in this phase's cells: a short line, or for the data transfer 8 MiB
    /// of lines. That is far more than the loopback socket buffers take in while the server does not
    /// read, so the client is still writing at the fault.
    public var messageBody: String {
        guard self == .dataTransfer else { return "body\r\n" }
        let line = String(repeating: "x", count: 78) + "\r\n"
        return String(repeating: line, count: 8 * 1024 * 1024 / line.utf8.count)
    }
}

/// A phase of the session's security steps where the scripted server misbehaves. The faults are those
/// of `FaultPhase`, in place of the reply to STARTTLS or to AUTH.
public enum SecurityFaultPhase: String, CaseIterable, Sendable, CustomStringConvertible {
    case startTLS = "STARTTLS"
    case auth = "AUTH"

    public var description: String { rawValue }

    public var smtpPhase: SMTPPhase {
        switch self {
        case .startTLS: .startTLS
        case .auth: .auth
        }
    }

    /// The correct reply that the fault replaces.
    public var correctReply: String {
        switch self {
        case .startTLS: "220 2.0.0 Ready to start TLS\r\n"
        case .auth: "235 2.7.0 Authentication successful\r\n"
        }
    }
}

/// What the scripted server does in place of its correct reply.
public enum Fault: String, CaseIterable, Sendable, CustomStringConvertible {
    case serviceNotAvailable = "421 and close"
    case transientFailure = "451"
    case permanentFailure = "554"
    case closed = "close without reply"
    case stall = "stall past timeout"
    case garbage = "garbage line"
    case overlongLine = "5,000-octet line"
    case byteAtATime = "correct reply byte by byte"
    case codeMismatch = "continuation with other code"

    public var description: String { rawValue }

    /// Whether the session must still deliver the message.
    public var isHarmless: Bool { self == .byteAtATime }

    /// Returns the steps that replace `reply`, the reply a correct server sends at this point.
    public func steps(replacing reply: String) -> [ScriptedServer.Step] {
        let code = Int(reply.prefix(3))!
        switch self {
        case .serviceNotAvailable:
            return [.send("421 4.3.2 Service shutting down\r\n"), .close]
        case .transientFailure:
            return [.send("451 4.3.0 Local error, try again later\r\n")]
        case .permanentFailure:
            return [.send("554 5.3.0 Transaction failed\r\n")]
        case .closed:
            return [.close]
        case .stall:
            // `stop()` ends the stall as soon as the test is done with the server.
            return [.stall(.seconds(30))]
        case .garbage:
            return [.send("HELLO\r\n")]
        case .overlongLine:
            // 5,000 octets before the CRLF, beyond the client's default limit of 4,096.
            return [.send("\(code) " + String(repeating: "x", count: 4_996) + "\r\n")]
        case .byteAtATime:
            return [.sendSlowly(reply, byteDelay: FaultMatrix.byteDelay)]
        case .codeMismatch:
            return [.send("\(code)-a\r\n\(code + 1) b\r\n")]
        }
    }
}

/// The settings and scripts that every fault matrix shares.
public enum FaultMatrix {
    /// The wait for one reply, for every step of the client.
    public static let stepTimeout: Duration = .milliseconds(300)
    /// The maximum time a cell may take from connecting to closing. It is one step timeout plus room for
    /// a loaded machine.
    public static let maxCellDuration: Duration = .seconds(2)
    /// The pause after each byte of a reply sent byte by byte. The maximum length of a correct reply in
    /// the scripts is 37 octets (the 235 to AUTH), so it arrives in about 190 ms, within `stepTimeout`,
    /// which bounds the whole reply.
    public static let byteDelay: Duration = .milliseconds(5)
    /// The open descriptors that the process may gain over a matrix, for lazily created runtime state.
    public static let descriptorSlack = 16

    /// The user name and password of the AUTH cells.
    public static let credentials = SASLCredentials.password(username: "alice", password: Secret("hunter2"))
    /// "\0alice\0hunter2" in Base64, the initial response of AUTH PLAIN with `credentials`.
    static let plainResponse = "AGFsaWNlAGh1bnRlcjI="

    /// One exchange of a correct session without PIPELINING: what the server reads, then its reply.
    private struct Exchange {
        let phase: FaultPhase
        let reads: [ScriptedServer.Step]
        /// Nil for the data transfer, which has no reply of its own.
        let reply: String?
    }

    private static let correctSession: [Exchange] = [
        Exchange(phase: .greeting, reads: [], reply: "220 scripted.test\r\n"),
        Exchange(phase: .ehlo, reads: [.expectLine(prefix: "EHLO")], reply: "250 scripted.test\r\n"),
        Exchange(phase: .mail, reads: [.expectLine(prefix: "MAIL FROM:")], reply: "250 2.1.0 OK\r\n"),
        Exchange(phase: .rcpt, reads: [.expectLine(prefix: "RCPT TO:")], reply: "250 2.1.5 OK\r\n"),
        Exchange(phase: .data, reads: [.expectLine("DATA")], reply: "354 Go ahead\r\n"),
        Exchange(phase: .dataTransfer, reads: [], reply: nil),
        Exchange(phase: .endOfData, reads: [.readData], reply: "250 2.0.0 Queued\r\n"),
        Exchange(phase: .quit, reads: [.expectLine("QUIT")], reply: "221 2.0.0 Bye\r\n"),
    ]

    /// Builds the script of a server that plays a correct session up to `phase` and then `fault`.
    ///
    /// The data transfer has no reply of its own. Its fault is therefore the reply to the final dot sent
    /// early, while the client writes the content and before the server reads it, or a close or stall at
    /// that point. After a harmless fault the session goes on to QUIT. After any other fault the script
    /// ends, and the server reads until the client closes.
    public static func script(phase: FaultPhase, fault: Fault) -> [ScriptedServer.Step] {
        let endOfDataReply = correctSession.first { $0.phase == .endOfData }!.reply!
        var steps: [ScriptedServer.Step] = []
        var replySentEarly = false
        for exchange in correctSession {
            steps += exchange.reads
            if exchange.phase == phase {
                let reply = exchange.reply ?? endOfDataReply
                steps += fault.steps(replacing: reply)
                guard fault.isHarmless else { return steps }
                replySentEarly = exchange.reply == nil
            } else if let reply = exchange.reply, !(exchange.phase == .endOfData && replySentEarly) {
                steps.append(.send(reply))
            }
        }
        steps.append(.close)
        return steps
    }

    /// Returns the steps of a server that offers STARTTLS or AUTH PLAIN, reads the command and then plays
    /// `fault` in place of its reply.
    ///
    /// A reply sent byte by byte is correct, so the session goes on. After STARTTLS it goes on with a TLS
    /// handshake, to which this plain server never replies: the server stalls and the client times out in
    /// the handshake, which shows that it accepted the reply. After AUTH the session goes on to deliver the
    /// message.
    public static func script(phase: SecurityFaultPhase, fault: Fault) -> [ScriptedServer.Step] {
        var steps: [ScriptedServer.Step] = [.send("220 scripted.test\r\n"), .expectLine(prefix: "EHLO")]
        switch phase {
        case .startTLS:
            steps += [.send("250-scripted.test\r\n250 STARTTLS\r\n"), .expectLine("STARTTLS")]
        case .auth:
            steps += [.send("250-scripted.test\r\n250 AUTH PLAIN\r\n"), .expectLine("AUTH PLAIN " + plainResponse)]
        }
        steps += fault.steps(replacing: phase.correctReply)
        guard fault.isHarmless else { return steps }
        switch phase {
        case .startTLS:
            steps.append(.stall(.seconds(30)))
        case .auth:
            steps += [
                .expectLine(prefix: "MAIL FROM:"), .send("250 2.1.0 OK\r\n"),
                .expectLine(prefix: "RCPT TO:"), .send("250 2.1.5 OK\r\n"),
                .expectLine("DATA"), .send("354 Go ahead\r\n"),
                .readData, .send("250 2.0.0 Queued\r\n"),
                .expectLine("QUIT"), .send("221 2.0.0 Bye\r\n"), .close,
            ]
        }
        return steps
    }

    /// Returns the client's settings for a server on 127.0.0.1:`port`: `stepTimeout` for every step,
    /// no session deadline, and for a security phase required STARTTLS or AUTH PLAIN with `credentials`.
    public static func configuration(port: UInt16, securityPhase: SecurityFaultPhase? = nil) -> SMTPClientConfiguration {
        var configuration = SMTPClientConfiguration(
            host: "127.0.0.1", port: port, clientName: "client.example.test", timeouts: .init(all: stepTimeout),
            sessionDeadline: nil, tlsMode: .off)
        switch securityPhase {
        case nil:
            break
        case .startTLS:
            configuration.tlsMode = .requiredStartTLS
        case .auth:
            // The server is on loopback, so credentials may go without TLS.
            configuration.usePipelining = false
            configuration.authentication = AuthenticationConfiguration(credentials: credentials, mechanism: "PLAIN")
        }
        return configuration
    }
}
