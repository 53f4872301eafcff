import COpenSSL
import Glibc

/// The per-connection state that OpenSSL's callbacks read and write: the socket BIO's descriptor and
/// last error, and what certificate verification found.
///
/// A `TLSStream` owns the state and outlives its SSL object, and both the BIO (BIO_set_data) and the
/// SSL object (SSL_set_ex_data) hold an unretained pointer to it.
final class TLSConnectionState {
    /// The first certificate that failed verification, as the verify callback saw it.
    struct VerifyFailure {
        /// The position in the chain: 0 for the peer's own certificate, 1 for its issuer, and so on.
        var depth: Int32
        /// The X509_V_ERR_* code.
        var error: Int32
        var certificate: CertificateInfo?
    }

    let descriptor: Int32
    /// The SHA-256 digest that the peer's certificate must have, or nil when no fingerprint is pinned.
    let pinnedFingerprint: [UInt8]?

    /// The errno of the last recv(2) or send(2) that failed with something other than EAGAIN, or 0.
    var lastErrorNumber: Int32 = 0
    /// The system call that set `lastErrorNumber`.
    var lastFailedCall = "recv"
    /// Whether recv(2) has returned end of stream.
    var reachedEndOfStream = false
    var firstVerifyFailure: VerifyFailure?
    /// The peer's own certificate, recorded by the verify callbacks because OpenSSL keeps it only when
    /// verification succeeds.
    var verifiedLeaf: CertificateInfo?

    init(descriptor: Int32, pinnedFingerprint: [UInt8]?) {
        self.descriptor = descriptor
        self.pinnedFingerprint = pinnedFingerprint
    }

    /// The SSL ex_data index under which each SSL object stores a pointer to its state.
    static let exDataIndex: Int32 = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, nil, nil, nil, nil)

    /// Returns the state attached to an SSL object by `attach(to:)`.
    static func of(ssl: OpaquePointer) -> TLSConnectionState? {
        guard let pointer = SSL_get_ex_data(ssl, exDataIndex) else {
            return nil
        }
        return Unmanaged<TLSConnectionState>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Returns the state of the SSL object whose certificate chain `store` is verifying.
    static func of(store: OpaquePointer) -> TLSConnectionState? {
        guard let ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()) else {
            return nil
        }
        return of(ssl: OpaquePointer(ssl))
    }

    /// Stores an unretained pointer to this state in `ssl`, which must not outlive it.
    func attach(to ssl: OpaquePointer) -> Bool {
        SSL_set_ex_data(ssl, TLSConnectionState.exDataIndex, Unmanaged.passUnretained(self).toOpaque()) == 1
    }
}

/// An OpenSSL BIO over a non-blocking socket that sends with MSG_NOSIGNAL.
///
/// OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE when the peer has reset the
/// connection and would end the process. This BIO reports EPIPE instead, as `PlainSocketStream` does.
enum SocketBIO {
    /// Creates a BIO that reads and writes `state.descriptor`. The BIO does not close the descriptor.
    static func make(state: TLSConnectionState) -> OpaquePointer? {
        guard let method = method.pointer, let bio = BIO_new(method) else {
            return nil
        }
        BIO_set_data(bio, Unmanaged.passUnretained(state).toOpaque())
        BIO_set_init(bio, 1)
        return bio
    }

    /// A BIO_METHOD, which OpenSSL only reads once it is set up.
    private struct Method: @unchecked Sendable {
        let pointer: OpaquePointer?
    }

    private static let method = Method(pointer: makeMethod())

    private static func makeMethod() -> OpaquePointer? {
        guard let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "outbox socket") else {
            return nil
        }
        BIO_meth_set_read(method, read)
        BIO_meth_set_write(method, write)
        BIO_meth_set_ctrl(method, control)
        return method
    }

    /// BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY, the flags that BIO_clear_retry_flags(3) clears.
    private static let retryFlags = Int32(BIO_FLAGS_READ | BIO_FLAGS_WRITE | BIO_FLAGS_IO_SPECIAL | BIO_FLAGS_SHOULD_RETRY)

    private static func state(of bio: OpaquePointer) -> TLSConnectionState? {
        guard let pointer = BIO_get_data(bio) else {
            return nil
        }
        return Unmanaged<TLSConnectionState>.fromOpaque(pointer).takeUnretainedValue()
    }

    private static let read: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int32) -> Int32 = {
        bio, buffer, length in
        guard let bio, let buffer, let state = SocketBIO.state(of: bio) else {
            return -1
        }
        BIO_clear_flags(bio, SocketBIO.retryFlags)
        while true {
            let count = recv(state.descriptor, buffer, Int(length), 0)
            if count > 0 {
                return Int32(count)
            }
            if count == 0 {
                state.reachedEndOfStream = true
                return 0
            }
            let errorNumber = errno
            switch errorNumber {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                BIO_set_flags(bio, Int32(BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY))
            default:
                state.lastErrorNumber = errorNumber
                state.lastFailedCall = "recv"
            }
            return -1
        }
    }

    private static let write: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = {
        bio, bytes, length in
        guard let bio, let bytes, let state = SocketBIO.state(of: bio) else {
            return -1
        }
        BIO_clear_flags(bio, SocketBIO.retryFlags)
        while true {
            let count = send(state.descriptor, bytes, Int(length), Int32(MSG_NOSIGNAL))
            if count >= 0 {
                return Int32(count)
            }
            let errorNumber = errno
            switch errorNumber {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                BIO_set_flags(bio, Int32(BIO_FLAGS_WRITE | BIO_FLAGS_SHOULD_RETRY))
            default:
                state.lastErrorNumber = errorNumber
                state.lastFailedCall = "send"
            }
            return -1
        }
    }

    /// Handles the BIO_ctrl(3) requests that libssl makes of a socket BIO, and returns 0 (unsupported) for others.
    private static let control: @convention(c) (OpaquePointer?, Int32, Int, UnsafeMutableRawPointer?) -> Int = {
        bio, command, _, argument in
        guard let bio, let state = SocketBIO.state(of: bio) else {
            return 0
        }
        switch command {
        case BIO_CTRL_FLUSH:
            return 1
        case BIO_CTRL_EOF:
            // libssl reports "unexpected eof while reading" only when the BIO confirms end of stream.
            return state.reachedEndOfStream ? 1 : 0
        case BIO_C_GET_FD:
            argument?.assumingMemoryBound(to: Int32.self).pointee = state.descriptor
            return Int(state.descriptor)
        default:
            return 0
        }
    }
}
