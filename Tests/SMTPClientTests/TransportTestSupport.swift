import Foundation
import Glibc
@testable import SMTPClient

/// A raw listening socket on 127.0.0.1 or ::1 that a transport test opens for itself.
final class LoopbackListener {
    enum Family {
        case ipv4
        case ipv6
    }

    let descriptor: Int32
    let port: UInt16
    /// Every accepted peer, kept open until the listener goes away so that a test's connection does not
    /// see its peer close early.
    private(set) var acceptedPeers: [PeerSocket] = []

    /// Binds `port` (0 lets the kernel choose) on the loopback address of `family` and listens.
    init(family: Family, port: UInt16 = 0, backlog: Int32 = 16) throws {
        let (descriptor, boundPort) = try LoopbackListener.bindSocket(family: family, port: port)
        guard listen(descriptor, backlog) == 0 else {
            let errorNumber = errno
            Glibc.close(descriptor)
            throw TransportError.systemCall("listen", errno: errorNumber)
        }
        self.descriptor = descriptor
        self.port = boundPort
    }

    deinit {
        Glibc.close(descriptor)
    }

    /// Accepts one connection, waiting up to `timeout`.
    func accept(timeout: Duration = .seconds(5)) throws -> PeerSocket {
        var descriptors = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
        let (seconds, attoseconds) = timeout.components
        let milliseconds = Int32(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        guard poll(&descriptors, 1, milliseconds) == 1 else {
            throw TransportError.systemCall("accept", errno: ETIMEDOUT)
        }
        let peer = Glibc.accept(descriptor, nil, nil)
        guard peer >= 0 else {
            throw TransportError.systemCall("accept", errno: errno)
        }
        let socket = PeerSocket(descriptor: peer)
        acceptedPeers.append(socket)
        return socket
    }

    /// Whether this machine can bind a socket to ::1.
    static let hasIPv6Loopback: Bool = {
        guard let (descriptor, _) = try? bindSocket(family: .ipv6, port: 0) else {
            return false
        }
        Glibc.close(descriptor)
        return true
    }()

    /// Returns a port on which nothing listens on `family`'s loopback address, by binding port 0 and
    /// closing the socket without listening. Another process could take the port in between, but that is
    /// unlikely within one test.
    static func unusedPort(family: Family = .ipv4) throws -> UInt16 {
        let (descriptor, port) = try bindSocket(family: family, port: 0)
        Glibc.close(descriptor)
        return port
    }

    private static func bindSocket(family: Family, port: UInt16) throws -> (Int32, UInt16) {
        let domain = family == .ipv4 ? AF_INET : AF_INET6
        let descriptor = socket(domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw TransportError.systemCall("socket", errno: errno)
        }
        var storage = sockaddr_storage()
        var length: socklen_t
        switch family {
        case .ipv4:
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    address.pointee.sin_family = sa_family_t(AF_INET)
                    address.pointee.sin_port = port.bigEndian
                    address.pointee.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
                }
            }
        case .ipv6:
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            var enabled: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &enabled, socklen_t(MemoryLayout<Int32>.size))
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    address.pointee.sin6_family = sa_family_t(AF_INET6)
                    address.pointee.sin6_port = port.bigEndian
                    address.pointee.sin6_addr = in6addr_loopback
                }
            }
        }

        let status = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
            }
        }
        guard status else {
            let errorNumber = errno
            Glibc.close(descriptor)
            throw TransportError.systemCall("bind", errno: errorNumber)
        }
        let boundPort = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        return (descriptor, boundPort)
    }
}

/// The server side of an accepted test connection, with blocking I/O.
final class PeerSocket: @unchecked Sendable {
    // @unchecked: tests hand the socket to one other thread at a time, which owns it until joined.
    private(set) var descriptor: Int32

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        close()
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Receives up to `maxBytes`, returning an empty array at end of stream.
    func receive(maxBytes: Int = 64 * 1024) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let count = recv(descriptor, &buffer, maxBytes, 0)
        return count > 0 ? Array(buffer.prefix(count)) : []
    }

    /// Receives until `count` bytes have arrived or the stream ends.
    func receive(exactly count: Int) -> [UInt8] {
        var received: [UInt8] = []
        while received.count < count {
            let chunk = receive(maxBytes: count - received.count)
            if chunk.isEmpty {
                break
            }
            received += chunk
        }
        return received
    }

    func hasPendingInput() -> Bool {
        var descriptors = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
        return poll(&descriptors, 1, 0) == 1
    }

    func close() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }
}

/// A listener whose accept queue is full, so that the kernel leaves further connects unanswered and a
/// connect can only time out.
final class UnresponsiveListener {
    let listener: LoopbackListener
    private var fillers: [Int32] = []

    /// Fills the accept queue of a listener with backlog 0. Returns nil if 16 connects all completed,
    /// meaning this kernel does not drop connects to a full queue.
    init?() throws {
        listener = try LoopbackListener(family: .ipv4, backlog: 0)
        for _ in 0..<16 {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = listener.port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            _ = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            var descriptors = [pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)]
            let connected = poll(&descriptors, 1, 100) == 1
            if !connected {
                Glibc.close(descriptor)
                return
            }
            fillers.append(descriptor)
        }
        for descriptor in fillers {
            Glibc.close(descriptor)
        }
        return nil
    }

    deinit {
        for descriptor in fillers {
            Glibc.close(descriptor)
        }
    }

    var port: UInt16 {
        listener.port
    }
}

/// Returns the time `body` takes to run, and what it throws.
func measure<Result>(_ body: () throws -> Result) -> (elapsed: Duration, result: Swift.Result<Result, any Error>) {
    let start = ContinuousClock.now
    let result = Swift.Result { try body() }
    return (ContinuousClock.now - start, result)
}

extension Swift.Result {
    /// The error as a `TransportError`, or nil when the body returned or threw something else.
    var transportError: TransportError? {
        guard case let .failure(error) = self else {
            return nil
        }
        return error as? TransportError
    }
}
