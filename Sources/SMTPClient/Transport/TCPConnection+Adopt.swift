import Glibc

extension TCPConnection {
    /// Wraps a socket returned by accept(2), for the server role of tests and `outbox capture`.
    ///
    /// The connection takes ownership of `acceptedDescriptor` and closes it in `close()`, or at once when
    /// this call throws. The socket is switched to non-blocking mode with FD_CLOEXEC, so that every wait
    /// goes through the poll loop with its limits and `cancellation`.
    ///
    /// - Throws: `TransportError.systemCallFailed` when fcntl(2) fails.
    public static func adopting(acceptedDescriptor descriptor: Int32, cancellation: CancellationSignal) throws -> TCPConnection {
        let flags = fcntl(descriptor, F_GETFL)
        if flags < 0 || fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) != 0 {
            let errorNumber = errno
            Glibc.close(descriptor)
            throw TransportError.systemCall("fcntl", errno: errorNumber)
        }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)

        let remote = endpoint(of: descriptor, query: getpeername)
        return TCPConnection(
            descriptor: descriptor,
            requestedHost: remote?.host ?? "unknown address",
            remoteAddress: remote?.endpointDescription ?? "unknown address",
            localAddress: endpoint(of: descriptor, query: getsockname)?.endpointDescription ?? "unknown address",
            cancellation: cancellation
        )
    }

    /// Returns the address that getpeername(2) or getsockname(2) reports, or nil when the call fails.
    private static func endpoint(
        of descriptor: Int32,
        query: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) -> IPSocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { query(descriptor, $0, &length) }
        }
        guard status == 0 else {
            return nil
        }
        return withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { IPSocketAddress($0, length: length) }
        }
    }
}
