import Dispatch
import Synchronization
import SMTPCore

/// An open SMTP session with one server, ready to send messages one after another.
///
/// The session runs on a dispatch queue of its own, so its blocking socket calls never occupy the
/// Swift concurrency pool. Calls are served one at a time, in order. Cancelling the calling task
/// cancels the call in progress and closes the connection.
///
/// ```swift
/// let connection = try await SMTPConnection.open(SMTPClientConfiguration(host: "127.0.0.1", port: 2525))
/// let result = try await connection.send(try OutgoingMessage(bytes: message), envelope: envelope)
/// await connection.quit()
/// ```
public final class SMTPConnection: @unchecked Sendable {
    // The driver is touched only on `queue`, which serializes every use of it.
    private let driver: SessionDriver
    private let queue: DispatchQueue
    /// The values the properties report, copied from the driver after each call, so that reading a
    /// property does not wait for a send in progress on `queue`.
    private let state: Mutex<State>

    private struct State: Sendable {
        var capabilities: Capabilities
        var tlsSession: TLSSessionInfo?
        var isAuthenticated: Bool
        var authenticationMechanism: String?
        var greeting: SMTPReply?
        var capabilitiesBeforeTLS: Capabilities?
        var isOpen: Bool

        init(_ driver: SessionDriver) {
            capabilities = driver.capabilities
            tlsSession = driver.tlsSession
            isAuthenticated = driver.session.isAuthenticated
            authenticationMechanism = driver.session.authenticationMechanism
            greeting = driver.session.greeting
            capabilitiesBeforeTLS = driver.session.capabilitiesBeforeTLS
            isOpen = driver.isOpen
        }
    }

    private init(driver: SessionDriver, queue: DispatchQueue) {
        self.driver = driver
        self.queue = queue
        self.state = Mutex(State(driver))
        self.remoteAddress = driver.remoteAddress
    }

    /// Connects to the server, waits for its greeting and sends EHLO (or HELO).
    ///
    /// - Parameter transcript: receives every command and reply line, for debugging.
    /// - Throws: `SMTPError` with phase `connect`, `greeting`, `EHLO` or `HELO`.
    public static func open(
        _ configuration: SMTPClientConfiguration, transcript: TranscriptHandler? = nil
    ) async throws(SMTPError) -> SMTPConnection {
        let queue = DispatchQueue(label: "outbox.smtp.\(configuration.host):\(configuration.port)")
        let cancellation = try makeCancellationSignal()
        let result: Result<SessionDriver, SMTPError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                queue.async {
                    continuation.resume(returning: Result { () throws(SMTPError) in
                        try SessionDriver.open(
                            configuration: configuration, cancellation: cancellation, transcript: transcript)
                    })
                }
            }
        } onCancel: {
            cancellation.cancel()
        }
        return SMTPConnection(driver: try result.get(), queue: queue)
    }

    /// The extensions the server advertised in reply to EHLO.
    public var capabilities: Capabilities {
        state.withLock { $0.capabilities }
    }

    /// The TLS version, cipher and server certificate, or nil when the connection is not encrypted.
    public var tlsSession: TLSSessionInfo? {
        state.withLock { $0.tlsSession }
    }

    /// Whether the session logged in with AUTH.
    public var isAuthenticated: Bool {
        state.withLock { $0.isAuthenticated }
    }

    /// The SASL mechanism the session logged in with, or nil.
    public var authenticationMechanism: String? {
        state.withLock { $0.authenticationMechanism }
    }

    /// The server's greeting.
    public var greeting: SMTPReply? {
        state.withLock { $0.greeting }
    }

    /// The capabilities advertised before STARTTLS, or nil when the session did not use STARTTLS.
    public var capabilitiesBeforeTLS: Capabilities? {
        state.withLock { $0.capabilitiesBeforeTLS }
    }

    /// The address the connection reached, such as `192.0.2.1:587` or `[2001:db8::1]:587`.
    public let remoteAddress: String

    /// Whether the session is open and idle, so that `send` can be called.
    public var isOpen: Bool {
        state.withLock { $0.isOpen }
    }

    /// Sends one message. The message goes to every recipient the server accepts; the result lists the
    /// reply to each RCPT.
    ///
    /// - Throws: `SMTPError`. After a failure whose `kind` is a rejection of this message, the session
    ///   stays open for the next message. After a lost connection, a timeout, 421 or a protocol error,
    ///   it is closed.
    public func send(_ message: OutgoingMessage, envelope: Envelope) async throws(SMTPError) -> TransactionResult {
        try await send([(message, envelope)])[0].get()
    }

    /// Sends messages one after another over this session and returns each one's result, in order.
    ///
    /// When the server offers PIPELINING, a message's MAIL, RCPT and DATA commands are written together
    /// with the end of the previous message, so a batch costs about one round trip per message. A
    /// message the server rejects does not stop the others. A session failure (a lost connection, a
    /// timeout, 421) fails the message in progress and every later one, since none of those was sent.
    /// The later ones fail in the MAIL phase, which separates them from the message whose content may
    /// have reached the server.
    ///
    /// - Parameter onResult: called with each message's place in `messages` and its result as soon as
    ///   the result is known, before the session goes on, so that the caller can record it durably.
    ///   It runs on the connection's own queue and must not call the connection.
    public func send(
        _ messages: [(OutgoingMessage, Envelope)],
        onResult: (@Sendable (Int, Result<TransactionResult, SMTPError>) -> Void)? = nil
    ) async -> [Result<TransactionResult, SMTPError>] {
        guard !messages.isEmpty else { return [] }
        let outcome = try? await perform { driver throws(SMTPError) in
            driver.send(messages, onResult: onResult)
        }
        return outcome ?? messages.map { _ in .failure(SMTPError(phase: .mail, kind: .cancelled, isTemporary: true)) }
    }

    /// Checks an idle connection before it is reused, without writing to it: reads what the server
    /// sent meanwhile, such as a 421 or the end of the connection. Returns false, with the connection
    /// closed, when it can no longer take a message, so that the caller can open a new one knowing
    /// that nothing of its next message was sent.
    public func checkIdle() async -> Bool {
        let usable = try? await perform { driver throws(SMTPError) in
            driver.checkIdle()
        }
        guard usable == true else {
            await close()
            return false
        }
        return true
    }

    /// Sends QUIT and closes the connection. The reply to QUIT is awaited for at most the configured
    /// QUIT timeout, and a failure is ignored, because every message was already handed over.
    public func quit() async {
        _ = try? await perform { driver throws(SMTPError) in
            driver.quit()
        }
    }

    /// Closes the connection without QUIT.
    public func close() async {
        _ = try? await perform { driver throws(SMTPError) in
            driver.close()
        }
    }

    private func perform<T: Sendable>(
        _ body: @escaping @Sendable (SessionDriver) throws(SMTPError) -> T
    ) async throws(SMTPError) -> T {
        let driver = self.driver
        let result: Result<T, SMTPError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                queue.async {
                    let result = Result { () throws(SMTPError) in try body(driver) }
                    self.state.withLock { $0 = State(driver) }
                    continuation.resume(returning: result)
                }
            }
        } onCancel: {
            driver.cancellation.cancel()
        }
        return try result.get()
    }

    private static func makeCancellationSignal() throws(SMTPError) -> CancellationSignal {
        do {
            return try CancellationSignal()
        } catch {
            throw SMTPError(phase: .connect, kind: .connectionFailed(String(describing: error)), isTemporary: true)
        }
    }
}
