import Glibc

/// A TCP connection with non-blocking I/O, where every wait is bounded by a timeout, an optional overall
/// deadline and a `CancellationSignal`.
///
/// The connection is meant for one thread at a time, such as the serial queue that runs an SMTP session:
/// its methods block that thread in poll(2) until the socket is ready, the limit expires or the signal is
/// cancelled. Writes are buffered by `enqueue(_:)` and sent by `flush(timeout:deadline:)`, so that
/// pipelined commands leave in as few segments as possible.
public final class TCPConnection {
    /// The remote endpoint, such as `127.0.0.1:2525` or `[::1]:2525`.
    public let remoteAddress: String
    /// The local endpoint, in the same format as `remoteAddress`.
    public let localAddress: String
    /// The host name that was passed to `connect`, kept for error messages.
    public let requestedHost: String
    public let cancellation: CancellationSignal

    /// Bytes received from the peer, as returned by `read`.
    public private(set) var bytesRead: UInt64 = 0
    /// Bytes accepted by the kernel from the output buffer.
    public private(set) var bytesWritten: UInt64 = 0
    /// Times that `flush` found the socket's send buffer full and waited in poll(2).
    private(set) var writeWaitCount = 0

    /// The socket, or -1 once closed.
    private(set) var descriptor: Int32
    /// The stream that moves bytes over `descriptor`. STARTTLS replaces it with a TLS stream.
    var stream: any TransportStream
    private var outputBuffer: [UInt8] = []
    /// The index of the first byte of `outputBuffer` that the kernel has not accepted yet.
    private var outputStart = 0

    init(
        descriptor: Int32,
        requestedHost: String,
        remoteAddress: String,
        localAddress: String,
        cancellation: CancellationSignal
    ) {
        self.descriptor = descriptor
        self.requestedHost = requestedHost
        self.remoteAddress = remoteAddress
        self.localAddress = localAddress
        self.cancellation = cancellation
        stream = PlainSocketStream(descriptor: descriptor)
    }

    deinit {
        close()
    }

    public var isClosed: Bool {
        descriptor < 0
    }

    /// Bytes enqueued but not yet accepted by the kernel.
    public var pendingOutputCount: Int {
        outputBuffer.count - outputStart
    }

    /// Whether the stream contains input that it has read from the socket but not returned yet. Always false
    /// for plain TCP, where unread input stays in the kernel: use `pollReadable(timeout:)` to see it.
    public var hasBufferedInput: Bool {
        stream.hasBufferedInput
    }

    // MARK: - Reading

    /// Reads between 1 and `maxBytes` bytes, waiting until the peer sends some.
    ///
    /// - Parameters:
    ///   - timeout: the longest wait for the first byte.
    ///   - deadline: the session's overall deadline, or nil for none. The wait ends at whichever comes first.
    /// - Throws: `TransportError.closedByPeer` at end of stream, `timedOut`, `cancelled`, or
    ///   `systemCallFailed`. Reading from a closed connection throws `systemCallFailed` with EBADF.
    public func read(
        maxBytes: Int = 64 * 1024,
        timeout: Duration,
        deadline: ContinuousClock.Instant?
    ) throws -> [UInt8] {
        precondition(maxBytes > 0, "maxBytes must be positive")
        let limit = WaitLimit(stepTimeout: timeout, deadline: deadline)

        let result = try [UInt8](unsafeUninitializedCapacity: maxBytes) { buffer, initializedCount in
            while true {
                try checkUsable(for: "recv")
                switch try stream.receive(into: UnsafeMutableRawBufferPointer(buffer)) {
                case let .transferred(received):
                    initializedCount = received
                    return
                case .closed:
                    throw TransportError.closedByPeer(peer: remoteAddress, operation: .read)
                case let .wouldBlock(events):
                    try waitForDescriptor(events: events, limit: limit, operation: .read)
                }
            }
        }

        bytesRead += UInt64(result.count)
        return result
    }

    /// Returns whether input is ready: buffered in the stream, or readable on the socket within `timeout`.
    ///
    /// With a timeout of `.zero` this tests, without blocking, whether the peer has already sent bytes,
    /// for example data sent too early before a TLS handshake. A socket whose peer has closed it also
    /// counts as readable, because the next `read` returns at once (with `closedByPeer`).
    ///
    /// - Throws: `TransportError.cancelled` or `systemCallFailed`. A wait that times out returns false.
    public func pollReadable(timeout: Duration = .zero) throws -> Bool {
        try checkUsable(for: "poll")
        if stream.hasBufferedInput {
            return true
        }
        let limit = WaitLimit(stepTimeout: timeout, deadline: nil)
        do {
            try waitForDescriptor(events: Int16(POLLIN), limit: limit, operation: .read)
            return true
        } catch TransportError.timedOut {
            return false
        }
    }

    // MARK: - Writing

    /// Appends bytes to the output buffer without sending them. Call `flush(timeout:deadline:)` to send.
    public func enqueue(_ bytes: some Sequence<UInt8>) {
        outputBuffer.append(contentsOf: bytes)
    }

    /// Sends the whole output buffer, waiting while the socket's send buffer is full.
    ///
    /// - Parameters:
    ///   - timeout: the longest time for the whole flush, as the data block timeout of RFC 5321 section
    ///     4.5.3.2.5 bounds "each TCP SEND call transmitting a chunk of data". A peer that reads a few bytes
    ///     at a time cannot restart it, so a caller that sends much data flushes it in blocks, each with
    ///     its own timeout.
    ///   - deadline: the session's overall deadline. The flush ends at whichever comes first.
    /// - Throws: `TransportError.closedByPeer`, `timedOut`, `cancelled` or `systemCallFailed`. Bytes that
    ///   were not sent stay in the output buffer.
    public func flush(timeout: Duration, deadline: ContinuousClock.Instant?) throws {
        let limit = WaitLimit(stepTimeout: timeout, deadline: deadline)

        while outputStart < outputBuffer.count {
            try checkUsable(for: "send")
            let result = try outputBuffer.withUnsafeBytes { buffer in
                try stream.send(UnsafeRawBufferPointer(rebasing: buffer[outputStart...]))
            }
            switch result {
            case let .transferred(sent):
                outputStart += sent
                bytesWritten += UInt64(sent)
            case .closed:
                throw TransportError.closedByPeer(peer: remoteAddress, operation: .write)
            case let .wouldBlock(events):
                writeWaitCount += 1
                try waitForDescriptor(events: events, limit: limit, operation: .write)
            }
        }

        outputBuffer.removeAll(keepingCapacity: outputBuffer.count <= 1024 * 1024)
        outputStart = 0
    }

    /// Sends as much of the output buffer as the stream takes at once, without waiting and even after
    /// `cancellation` is cancelled, for a last reply right before `close()`. Errors end the attempt
    /// silently, because the connection is about to close.
    public func flushWithoutWaiting() {
        while descriptor >= 0, outputStart < outputBuffer.count {
            let result = try? outputBuffer.withUnsafeBytes { buffer in
                try stream.send(UnsafeRawBufferPointer(rebasing: buffer[outputStart...]))
            }
            guard case let .transferred(sent)? = result else {
                return
            }
            outputStart += sent
            bytesWritten += UInt64(sent)
        }
    }

    /// Enqueues `bytes` and flushes the output buffer, with the same limits and errors as `flush`.
    public func write(_ bytes: some Sequence<UInt8>, timeout: Duration, deadline: ContinuousClock.Instant?) throws {
        enqueue(bytes)
        try flush(timeout: timeout, deadline: deadline)
    }

    // MARK: - Closing

    /// Shuts the stream down and closes the socket, discarding unsent output. Safe to call more than once.
    public func close() {
        guard descriptor >= 0 else {
            return
        }
        stream.shutdown()
        Glibc.close(descriptor)
        descriptor = -1
        outputBuffer = []
        outputStart = 0
    }

    // MARK: - Waiting

    /// Throws EBADF for `call` after `close()`, or `cancelled` once the signal is cancelled.
    private func checkUsable(for call: String) throws {
        if descriptor < 0 {
            throw TransportError.systemCall(call, errno: EBADF)
        }
        if cancellation.isCancelled {
            throw TransportError.cancelled
        }
    }

    /// Blocks until the socket reports one of `events`, throwing when `limit` expires or the connection is
    /// cancelled. An error or hang-up on the socket also ends the wait, so that the next read or write
    /// reports it.
    func waitForDescriptor(events: Int16, limit: WaitLimit, operation: TransportError.Operation) throws {
        let ready = try PollWait.wait(
            descriptor: descriptor,
            events: events,
            limit: limit,
            cancellation: cancellation
        )
        if !ready {
            throw TransportError.timedOut(
                operation: operation,
                peer: remoteAddress,
                timeout: limit.stepTimeout,
                expiredLimit: limit.source
            )
        }
    }
}

/// A connection is used from one thread at a time, such as the serial queue of an SMTP session, so it is
/// deliberately not `Sendable`.
@available(*, unavailable)
extension TCPConnection: Sendable {}
