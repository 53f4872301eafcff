import Glibc

/// A resolved IPv4 or IPv6 socket address, copied out of getaddrinfo(3) or getsockname(2) results.
struct IPSocketAddress: Sendable, Equatable {
    private var storage: [UInt8]

    init(_ address: UnsafePointer<sockaddr>, length: socklen_t) {
        storage = Array(UnsafeRawBufferPointer(start: address, count: Int(length)))
    }

    /// Creates the address of `numericHost` and `port`, or returns nil when `numericHost` is not an
    /// IPv4 or IPv6 literal. Never sends a DNS query, because the lookup uses AI_NUMERICHOST.
    init?(numericHost: String, port: UInt16) {
        guard let addresses = try? IPSocketAddress.resolve(host: numericHost, port: port, numericOnly: true),
              let first = addresses.first
        else {
            return nil
        }
        self = first
    }

    var family: Int32 {
        storage.withUnsafeBytes { Int32($0.load(as: sockaddr.self).sa_family) }
    }

    var length: socklen_t {
        socklen_t(storage.count)
    }

    func withSockaddrPointer<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result) rethrows -> Result {
        try storage.withUnsafeBytes { buffer in
            try body(buffer.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(buffer.count))
        }
    }

    /// The numeric host, such as `127.0.0.1`, `::1` or `fe80::1%eth0`.
    var host: String {
        numericNameInfo().host
    }

    var port: UInt16 {
        UInt16(numericNameInfo().service) ?? 0
    }

    /// The host and port, with IPv6 hosts in brackets: `127.0.0.1:2525` or `[::1]:2525`.
    var endpointDescription: String {
        let (host, service) = numericNameInfo()
        return IPSocketAddress.formatEndpoint(host: host, port: service)
    }

    private func numericNameInfo() -> (host: String, service: String) {
        var hostBuffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serviceBuffer = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let result = withSockaddrPointer { address, length in
            getnameinfo(
                address, length,
                &hostBuffer, socklen_t(hostBuffer.count),
                &serviceBuffer, socklen_t(serviceBuffer.count),
                NI_NUMERICHOST | NI_NUMERICSERV
            )
        }
        guard result == 0 else {
            return ("unknown address", "0")
        }
        return (IPSocketAddress.decodeCString(hostBuffer), IPSocketAddress.decodeCString(serviceBuffer))
    }

    private static func decodeCString(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Resolves `host` with getaddrinfo(3) for TCP (AF_UNSPEC, SOCK_STREAM), returning the addresses in
    /// the order getaddrinfo sorts them (RFC 6724 on glibc).
    ///
    /// - Parameter numericOnly: accept only IPv4 and IPv6 literals (AI_NUMERICHOST), so no DNS query is sent.
    /// - Throws: `TransportError.nameResolutionFailed`, or `systemCallFailed` for EAI_SYSTEM.
    static func resolve(host: String, port: UInt16, numericOnly: Bool = false) throws -> [IPSocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (numericOnly ? AI_NUMERICHOST : 0)

        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        defer {
            if let list {
                freeaddrinfo(list)
            }
        }
        guard status == 0 else {
            throw resolutionError(host: host, status: status, errorNumber: errno)
        }

        var addresses: [IPSocketAddress] = []
        var entry = list
        while let current = entry {
            if let address = current.pointee.ai_addr {
                addresses.append(IPSocketAddress(address, length: current.pointee.ai_addrlen))
            }
            entry = current.pointee.ai_next
        }
        return addresses
    }

    /// Maps a nonzero getaddrinfo(3) status to a `TransportError`.
    static func resolutionError(host: String, status: Int32, errorNumber: Int32) -> TransportError {
        if status == EAI_SYSTEM {
            return TransportError.systemCall("getaddrinfo", errno: errorNumber)
        }
        let reason = String(cString: gai_strerror(status))
        return .nameResolutionFailed(host: host, reason: reason, isTemporary: status == EAI_AGAIN)
    }

    /// Formats a host and port as `host:port`, putting an IPv6 host in brackets so the port stays readable.
    static func formatEndpoint(host: String, port: some CustomStringConvertible) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
