import Glibc

extension TCPConnection {
    /// Resolves `host` and connects to the first of its addresses that accepts, trying IPv4 and IPv6
    /// addresses in the order getaddrinfo(3) returns them.
    ///
    /// Each address gets a non-blocking connect bounded by `connectTimeout` and `deadline`. The socket has
    /// TCP_NODELAY, because SMTP sends short commands and waits for each reply, and FD_CLOEXEC.
    ///
    /// Names in the `invalid` top-level domain fail at once, as RFC 6761 section 6.4 recommends for name
    /// resolution libraries. They never reach getaddrinfo, because glibc 2.36 would send a DNS query.
    ///
    /// - Throws: `TransportError.nameResolutionFailed`; `connectionFailed` listing every address and its
    ///   reason; `timedOut` when the overall deadline passes or every address timed out; `cancelled`.
    public static func connect(
        host: String,
        port: UInt16,
        connectTimeout: Duration,
        deadline: ContinuousClock.Instant?,
        cancellation: CancellationSignal
    ) throws -> TCPConnection {
        if cancellation.isCancelled {
            throw TransportError.cancelled
        }
        if isInInvalidDomain(host) {
            let reason = String(cString: gai_strerror(EAI_NONAME))
            throw TransportError.nameResolutionFailed(host: host, reason: reason, isTemporary: false)
        }

        // NOTE: getaddrinfo blocks without honouring `connectTimeout`, `deadline` or `cancellation`. With
        // glibc's default resolv.conf options a DNS lookup can take up to 5 s per attempt, 2 attempts per
        // server. The limits are checked again as soon as it returns.
        let addresses = try IPSocketAddress.resolve(host: host, port: port)

        return try connect(
            to: addresses,
            host: host,
            port: port,
            connectTimeout: connectTimeout,
            deadline: deadline,
            cancellation: cancellation
        )
    }

    /// Connects to the first of `addresses` that accepts. `host` and `port` only label errors.
    static func connect(
        to addresses: [IPSocketAddress],
        host: String,
        port: UInt16,
        connectTimeout: Duration,
        deadline: ContinuousClock.Instant?,
        cancellation: CancellationSignal
    ) throws -> TCPConnection {
        var attempts: [TransportError.ConnectAttempt] = []
        var everyAttemptTimedOut = true

        for address in addresses {
            if cancellation.isCancelled {
                throw TransportError.cancelled
            }
            let limit = WaitLimit(stepTimeout: connectTimeout, deadline: deadline)
            if limit.hasExpired(), limit.source == .overallDeadline {
                throw timeoutError(host: host, port: port, limit: limit)
            }

            switch try connectSocket(to: address, limit: limit, cancellation: cancellation) {
            case let .connected(descriptor):
                return TCPConnection(
                    descriptor: descriptor,
                    requestedHost: host,
                    remoteAddress: address.endpointDescription,
                    localAddress: localEndpoint(of: descriptor),
                    cancellation: cancellation
                )

            case let .failed(errorNumber):
                everyAttemptTimedOut = false
                let reason = TransportError.errnoText(errorNumber)
                attempts.append(.init(address: address.host, reason: reason, errorNumber: errorNumber))

            case .timedOut where limit.source == .overallDeadline:
                throw timeoutError(host: host, port: port, limit: limit)

            case .timedOut:
                let reason = "Timed out after \(connectTimeout)"
                attempts.append(.init(address: address.host, reason: reason, errorNumber: nil))
            }
        }

        if !attempts.isEmpty, everyAttemptTimedOut {
            throw timeoutError(host: host, port: port, limit: WaitLimit(stepTimeout: connectTimeout, deadline: nil))
        }
        throw TransportError.connectionFailed(host: host, port: port, attempts: attempts)
    }

    private enum ConnectOutcome {
        case connected(Int32)
        case failed(errorNumber: Int32)
        case timedOut
    }

    /// Opens a non-blocking socket and connects it to `address`. Closes the socket unless it connects.
    ///
    /// - Throws: only `TransportError.cancelled`, or `systemCallFailed` when poll(2) or setsockopt(2)
    ///   fails. A failure of socket(2) or connect(2) is an outcome, so the caller can try the next address.
    private static func connectSocket(
        to address: IPSocketAddress,
        limit: WaitLimit,
        cancellation: CancellationSignal
    ) throws -> ConnectOutcome {
        let socketType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let descriptor = socket(address.family, socketType, Int32(IPPROTO_TCP))
        if descriptor < 0 {
            return .failed(errorNumber: errno)
        }
        var isConnected = false
        defer {
            if !isConnected {
                Glibc.close(descriptor)
            }
        }

        let status = address.withSockaddrPointer { Glibc.connect(descriptor, $0, $1) }
        if status != 0 {
            let errorNumber = errno
            // After EINTR the connect carries on in the background, just as after EINPROGRESS.
            guard errorNumber == EINPROGRESS || errorNumber == EINTR else {
                return .failed(errorNumber: errorNumber)
            }
            let ready = try PollWait.wait(
                descriptor: descriptor,
                events: Int16(POLLOUT),
                limit: limit,
                cancellation: cancellation
            )
            if !ready {
                return .timedOut
            }
            let socketError = try integerSocketOption(descriptor, level: SOL_SOCKET, name: SO_ERROR)
            if socketError != 0 {
                return .failed(errorNumber: socketError)
            }
        }

        var enabled: Int32 = 1
        if setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &enabled, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            throw TransportError.systemCall("setsockopt(TCP_NODELAY)", errno: errno)
        }
        isConnected = true
        return .connected(descriptor)
    }

    private static func integerSocketOption(_ descriptor: Int32, level: Int32, name: Int32) throws -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(descriptor, level, name, &value, &length) != 0 {
            throw TransportError.systemCall("getsockopt", errno: errno)
        }
        return value
    }

    private static func localEndpoint(of descriptor: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard status == 0 else {
            return "unknown address"
        }
        return withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                IPSocketAddress($0, length: length).endpointDescription
            }
        }
    }

    private static func timeoutError(host: String, port: UInt16, limit: WaitLimit) -> TransportError {
        .timedOut(
            operation: .connect,
            peer: IPSocketAddress.formatEndpoint(host: host, port: port),
            timeout: limit.stepTimeout,
            expiredLimit: limit.source
        )
    }

    /// Returns whether `host` is `invalid` or a name under it, ignoring case and a trailing dot.
    static func isInInvalidDomain(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasSuffix(".") {
            name.removeLast()
        }
        return name == "invalid" || name.hasSuffix(".invalid")
    }
}
