import Glibc

/// A failure of the TCP transport: name resolution, connecting, reading, writing or a system call.
public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The transport operation that was under way when a timeout expired or the peer closed the connection.
    public enum Operation: String, Sendable, Equatable {
        case connect
        case read
        case write
        case tlsHandshake = "TLS handshake"
    }

    /// One address of a host that the client failed to connect to.
    public struct ConnectAttempt: Sendable, Equatable {
        /// The numeric address, such as `127.0.0.1` or `::1`, without the port.
        public var address: String
        /// The reason in plain words, such as the strerror(3) text `Connection refused`.
        public var reason: String
        /// The errno value, or nil when the attempt timed out.
        public var errorNumber: Int32?

        public init(address: String, reason: String, errorNumber: Int32?) {
            self.address = address
            self.reason = reason
            self.errorNumber = errorNumber
        }
    }

    /// getaddrinfo(3) failed for `host`. `reason` is the gai_strerror(3) text. `isTemporary` is true for
    /// EAI_AGAIN, where a later attempt may succeed, and false for codes such as EAI_NONAME.
    case nameResolutionFailed(host: String, reason: String, isTemporary: Bool)

    /// Every address of `host` failed, each for the reason listed in `attempts`, in the order tried.
    case connectionFailed(host: String, port: UInt16, attempts: [ConnectAttempt])

    /// A wait timed out. `peer` is the remote endpoint, such as `127.0.0.1:2525`, or the host and port
    /// requested for a connect. `timeout` is the step timeout, and `expiredLimit` records whether that
    /// timeout or the session's overall deadline ended the wait.
    case timedOut(operation: Operation, peer: String, timeout: Duration, expiredLimit: WaitLimit.Source)

    /// The peer closed the connection (end of stream, ECONNRESET or EPIPE) during `operation`.
    case closedByPeer(peer: String, operation: Operation)

    /// The `CancellationSignal` of the connection was cancelled.
    case cancelled

    /// A system call failed with `errorNumber`, and `message` is its strerror(3) text.
    case systemCallFailed(call: String, errorNumber: Int32, message: String)

    public var description: String {
        switch self {
        case let .nameResolutionFailed(host, reason, isTemporary):
            let advice = isTemporary
                ? "The DNS server did not answer in time. Try again later."
                : "Check the spelling of the host name."
            return "Could not resolve the host name \(host): \(reason). \(advice)"

        case let .connectionFailed(host, port, attempts):
            let failures = attempts.map { "\($0.address): \($0.reason)" }.joined(separator: ", ")
            let list = attempts.isEmpty ? "the host name has no addresses" : failures
            return "Could not connect to \(host) port \(port): \(list). "
                + "Check the host and port, or whether the server is running."

        case let .timedOut(operation, peer, timeout, .stepTimeout):
            return "Timed out after \(timeout) \(operation.waitingPhrase) \(peer). "
                + "The server is slow or unreachable. Raise the \(operation.rawValue) timeout or try again later."

        case let .timedOut(operation, peer, timeout, .overallDeadline):
            return "The session's overall deadline passed \(operation.waitingPhrase) \(peer), "
                + "before the \(operation.rawValue) timeout of \(timeout). "
                + "Raise the overall deadline if the session needs more time."

        case let .closedByPeer(peer, operation):
            return "The server at \(peer) closed the connection \(operation.closingPhrase). "
                + "Check the server's log for the reason, then try again."

        case .cancelled:
            return "The connection was cancelled."

        case let .systemCallFailed(call, errorNumber, message):
            return "The system call \(call) failed: \(message) (errno \(errorNumber))."
        }
    }

    /// Builds `systemCallFailed` for `call` from an errno value.
    static func systemCall(_ call: String, errno errorNumber: Int32) -> TransportError {
        .systemCallFailed(call: call, errorNumber: errorNumber, message: errnoText(errorNumber))
    }

    /// Returns the strerror(3) text for an errno value, such as `Connection refused` for ECONNREFUSED.
    static func errnoText(_ errorNumber: Int32) -> String {
        // Swift's Glibc module imports the POSIX strerror_r, which fills `buffer` and returns 0 on success.
        var buffer = [CChar](repeating: 0, count: 256)
        guard strerror_r(errorNumber, &buffer, buffer.count) == 0 else {
            return "errno \(errorNumber)"
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension TransportError.Operation {
    fileprivate var waitingPhrase: String {
        switch self {
        case .connect: "connecting to"
        case .read: "waiting for data from"
        case .write: "waiting to send data to"
        case .tlsHandshake: "during the TLS handshake with"
        }
    }

    fileprivate var closingPhrase: String {
        switch self {
        case .connect: "while the client was connecting"
        case .read: "while the client was waiting for a reply"
        case .write: "while the client was sending"
        case .tlsHandshake: "during the TLS handshake"
        }
    }
}
