import Glibc

/// The outcome of one non-blocking read or write on a `TransportStream`.
enum TransportStreamResult: Equatable {
    /// The call moved this many bytes, always at least one.
    case transferred(Int)
    /// The call would block until the descriptor reports one of these poll(2) events. A TLS stream can ask
    /// for POLLOUT during a read, or POLLIN during a write, while it renegotiates or flushes records.
    case wouldBlock(events: Int16)
    /// The peer closed the stream: end of stream on read, or ECONNRESET or EPIPE.
    case closed
}

/// The non-blocking byte stream under a `TCPConnection`.
///
/// `TCPConnection` owns the descriptor and the poll loop. A stream only moves bytes and reports which
/// poll event it needs next, so a TLS stream (OpenSSL over the same non-blocking descriptor) can replace
/// the plain socket stream without changing timeouts, cancellation or buffering.
protocol TransportStream: AnyObject {
    /// Reads up to `buffer.count` bytes without blocking.
    /// - Throws: `TransportError.systemCallFailed` for errors other than the peer closing the stream, and
    ///   `TLSError` for a TLS protocol error.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> TransportStreamResult

    /// Writes up to `bytes.count` bytes without blocking.
    /// - Throws: `TransportError.systemCallFailed` for errors other than the peer closing the stream, and
    ///   `TLSError` for a TLS protocol error.
    func send(_ bytes: UnsafeRawBufferPointer) throws -> TransportStreamResult

    /// Whether the stream contains bytes that it has already read from the descriptor but not yet returned,
    /// such as the rest of a decrypted TLS record. poll(2) cannot see these bytes.
    var hasBufferedInput: Bool { get }

    /// Ends the stream before the connection closes its descriptor, without blocking. A TLS stream sends
    /// its close_notify alert here.
    func shutdown()
}

/// A `TransportStream` that reads and writes a plain TCP socket.
final class PlainSocketStream: TransportStream {
    private let descriptor: Int32

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> TransportStreamResult {
        while true {
            let count = recv(descriptor, buffer.baseAddress, buffer.count, 0)
            if count > 0 {
                return .transferred(count)
            }
            if count == 0 {
                return .closed
            }
            switch errno {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .wouldBlock(events: Int16(POLLIN))
            case ECONNRESET:
                return .closed
            case let errorNumber:
                throw TransportError.systemCall("recv", errno: errorNumber)
            }
        }
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws -> TransportStreamResult {
        while true {
            // MSG_NOSIGNAL makes a write to a closed peer fail with EPIPE instead of raising SIGPIPE.
            let count = Glibc.send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if count >= 0 {
                return count == 0 ? .wouldBlock(events: Int16(POLLOUT)) : .transferred(count)
            }
            switch errno {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .wouldBlock(events: Int16(POLLOUT))
            case EPIPE, ECONNRESET:
                return .closed
            case let errorNumber:
                throw TransportError.systemCall("send", errno: errorNumber)
            }
        }
    }

    var hasBufferedInput: Bool {
        false
    }

    func shutdown() {}
}
