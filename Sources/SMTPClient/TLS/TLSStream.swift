import COpenSSL
import Glibc

/// A `TransportStream` that runs TLS over the connection's non-blocking socket with OpenSSL.
///
/// OpenSSL does not block, because the socket is non-blocking and `SocketBIO` reports EAGAIN as a retry.
/// When a handshake, read or write needs the socket to become readable or writable, the stream returns
/// that poll(2) event and `TCPConnection` waits for it with its own limits and cancellation. OpenSSL may
/// request POLLOUT during a read or POLLIN during a write.
final class TLSStream: TransportStream {
    enum Role {
        /// The client role, which verifies and sends SNI for `serverName` (a host name or IP literal).
        case client(serverName: String)
        case server
    }

    private let ssl: OpaquePointer
    private let state: TLSConnectionState
    private let role: Role
    /// The remote endpoint, for error messages.
    private let peer: String
    private(set) var isHandshakeComplete = false
    /// Set after a fatal OpenSSL error, after which SSL_shutdown(3) must not be called.
    private var hasFailed = false

    /// Creates a stream in the client role and sets the name that the server's certificate must match.
    convenience init(client context: TLSClientContext, descriptor: Int32, serverName: String, peer: String) throws {
        let state = TLSConnectionState(descriptor: descriptor, pinnedFingerprint: context.pinnedFingerprint)
        try self.init(context: context.context, state: state, role: .client(serverName: serverName), peer: peer)
        try configureServerName(serverName, verifies: context.verifiesServerName)
        SSL_set_connect_state(ssl)
    }

    /// Creates a stream in the server role.
    convenience init(server context: TLSServerContext, descriptor: Int32, peer: String) throws {
        let state = TLSConnectionState(descriptor: descriptor, pinnedFingerprint: nil)
        try self.init(context: context.context, state: state, role: .server, peer: peer)
        SSL_set_accept_state(ssl)
    }

    private init(context: OpaquePointer, state: TLSConnectionState, role: Role, peer: String) throws {
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(context) else {
            throw TLSContextSetup.failure("could not create an OpenSSL connection")
        }
        guard let bio = SocketBIO.make(state: state) else {
            SSL_free(ssl)
            throw TLSContextSetup.failure("could not create the socket BIO")
        }
        // The SSL object takes the one reference to the BIO, for reading and writing alike.
        SSL_set_bio(ssl, bio, bio)
        self.ssl = ssl
        self.state = state
        self.role = role
        self.peer = peer
        guard state.attach(to: ssl) else {
            throw TLSContextSetup.failure("could not attach the connection state")
        }
    }

    deinit {
        SSL_free(ssl)
    }

    /// Sends SNI for a host name, and has OpenSSL check the certificate against the host name or, for an
    /// IP literal, against the certificate's IP address entries. RFC 6066 section 3 forbids IP literals
    /// in SNI.
    private func configureServerName(_ serverName: String, verifies: Bool) throws {
        let name = ServerName(serverName)
        if verifies, name.text.isEmpty {
            throw TLSError(
                kind: .invalidConfiguration,
                reason: "the server name is empty, so the certificate cannot be verified"
            )
        }

        if name.isIPAddress {
            if verifies, X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.text) != 1 {
                throw TLSContextSetup.failure("could not set the IP address \(name.text) for verification")
            }
            return
        }

        if !name.text.isEmpty {
            let status = name.text.withCString { pointer in
                SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: pointer))
            }
            guard status == 1 else {
                throw TLSContextSetup.failure("could not set the server name indication \(name.text)")
            }
        }
        if verifies {
            SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            guard SSL_set1_host(ssl, name.text) == 1 else {
                throw TLSContextSetup.failure("could not set the host name \(name.text) for verification")
            }
        }
    }

    // MARK: - Handshake

    /// Advances the handshake without blocking.
    ///
    /// - Returns: nil once the handshake is complete, or the poll(2) events to wait for before calling
    ///   again.
    /// - Throws: `TLSError` for a rejected certificate or a failed handshake, or
    ///   `TransportError.systemCallFailed` when the socket fails with an unexpected errno.
    func continueHandshake() throws -> Int16? {
        prepareCall()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            isHandshakeComplete = true
            return nil
        }
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_WANT_READ:
            return Int16(POLLIN)
        case SSL_ERROR_WANT_WRITE:
            return Int16(POLLOUT)
        default:
            hasFailed = true
            throw handshakeError(code: code)
        }
    }

    private func handshakeError(code: Int32) -> any Error {
        let entries = OpenSSLErrorQueue.drain()
        let reasons = Set(entries.map(\.reasonCode))
        let reasonText = entries.map(\.reason).joined(separator: ", ")

        if reasons.contains(SSL_R_CERTIFICATE_VERIFY_FAILED) {
            return TLSVerification.error(ssl: ssl, state: state, serverName: serverName, peer: peer)
        }
        let versionReasons: Set<Int32> = [
            SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, SSL_R_VERSION_TOO_LOW,
        ]
        if !reasons.isDisjoint(with: versionReasons) {
            return makeError(.protocolVersionTooOld, reason: reasonText)
        }
        if code == SSL_ERROR_SYSCALL, let systemError = unexpectedSystemError() {
            return systemError
        }
        if code == SSL_ERROR_SYSCALL || code == SSL_ERROR_ZERO_RETURN
            || reasons.contains(SSL_R_UNEXPECTED_EOF_WHILE_READING)
        {
            return makeError(.handshakeFailed, reason: "the \(peerRole) closed the connection during the handshake")
        }
        return makeError(.handshakeFailed, reason: reasonText.isEmpty ? "SSL_get_error returned \(code)" : reasonText)
    }

    // MARK: - TransportStream

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> TransportStreamResult {
        prepareCall()
        var count = 0
        if SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &count) == 1 {
            return .transferred(count)
        }
        return try failedTransfer(code: SSL_get_error(ssl, 0))
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws -> TransportStreamResult {
        prepareCall()
        var count = 0
        if SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &count) == 1 {
            return .transferred(count)
        }
        return try failedTransfer(code: SSL_get_error(ssl, 0))
    }

    /// Whether the peer has sent its close_notify alert.
    var receivedCloseNotify: Bool {
        SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN != 0
    }

    /// Whether OpenSSL contains decrypted bytes that poll(2) cannot see (SSL_pending(3)).
    var hasBufferedInput: Bool {
        SSL_pending(ssl) > 0
    }

    /// Sends a close_notify alert if the socket accepts it at once. The peer's close_notify is not
    /// awaited, because RFC 5246 section 7.2.1 lets the side that closes first skip that wait.
    func shutdown() {
        guard isHandshakeComplete, !hasFailed else {
            return
        }
        prepareCall()
        _ = SSL_shutdown(ssl)
        OpenSSLErrorQueue.clear()
    }

    /// Maps the SSL_get_error(3) code of a read or write that did not transfer bytes.
    private func failedTransfer(code: Int32) throws -> TransportStreamResult {
        switch code {
        case SSL_ERROR_WANT_READ:
            return .wouldBlock(events: Int16(POLLIN))
        case SSL_ERROR_WANT_WRITE:
            return .wouldBlock(events: Int16(POLLOUT))
        case SSL_ERROR_ZERO_RETURN:
            // The peer sent close_notify.
            return .closed
        case SSL_ERROR_SYSCALL:
            hasFailed = true
            OpenSSLErrorQueue.clear()
            if let systemError = unexpectedSystemError() {
                throw systemError
            }
            return .closed
        default:
            hasFailed = true
            let entries = OpenSSLErrorQueue.drain()
            // SMTP servers often close the connection after QUIT without close_notify. SMTP's own replies
            // show whether a message was accepted, so a truncated stream is reported as a closed one.
            if entries.contains(where: { $0.reasonCode == SSL_R_UNEXPECTED_EOF_WHILE_READING }) {
                return .closed
            }
            let reason = entries.map(\.reason).joined(separator: ", ")
            throw makeError(.connectionFailed, reason: reason.isEmpty ? "SSL_get_error returned \(code)" : reason)
        }
    }

    // MARK: - Session

    /// The negotiated version, cipher and peer certificate. Meaningful once the handshake is complete.
    var sessionInfo: TLSSessionInfo {
        let version = SSL_get_version(ssl).map { String(cString: $0) } ?? "unknown"
        let cipher = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) }
        return TLSSessionInfo(
            protocolVersion: version,
            cipher: cipher ?? "unknown",
            peerCertificate: SSL_get0_peer_certificate(ssl).map { CertificateInfo(certificate: $0) }
        )
    }

    // MARK: - Helpers

    /// Empties OpenSSL's error queue and the BIO's errno, as SSL_get_error(3) requires before each call.
    private func prepareCall() {
        OpenSSLErrorQueue.clear()
        state.lastErrorNumber = 0
    }

    /// Returns a `systemCallFailed` error for a socket errno other than a reset, a broken pipe or none.
    private func unexpectedSystemError() -> TransportError? {
        switch state.lastErrorNumber {
        case 0, ECONNRESET, EPIPE:
            return nil
        case let errorNumber:
            return TransportError.systemCall(state.lastFailedCall, errno: errorNumber)
        }
    }

    private var serverName: String? {
        if case let .client(serverName) = role {
            return serverName
        }
        return nil
    }

    private var peerRole: String {
        if case .client = role {
            return "server"
        }
        return "client"
    }

    private func makeError(_ kind: TLSError.Kind, reason: String) -> TLSError {
        TLSError(
            kind: kind,
            reason: reason,
            serverName: serverName,
            peer: peer,
            certificate: TLSVerification.peerLeaf(ssl: ssl)
        )
    }
}

/// A server name as the TLS layer uses it: without IPv6 brackets, an IPv6 zone or a trailing dot.
struct ServerName {
    let text: String
    let isIPAddress: Bool

    init(_ name: String) {
        var text = name
        if text.hasPrefix("["), text.hasSuffix("]") {
            text = String(text.dropFirst().dropLast())
        }
        if text.hasSuffix(".") {
            text.removeLast()
        }
        if text.contains(":"), let zone = text.firstIndex(of: "%") {
            text = String(text[..<zone])
        }
        self.text = text
        isIPAddress = ServerName.isIPLiteral(text)
    }

    /// Returns whether `text` is an IPv4 address in dotted-quad form or an IPv6 address. inet_pton(3)
    /// is stricter than getaddrinfo(3), which would also accept forms such as `127.1`.
    private static func isIPLiteral(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET, text, &address) == 1 || inet_pton(AF_INET6, text, &address) == 1
    }
}
