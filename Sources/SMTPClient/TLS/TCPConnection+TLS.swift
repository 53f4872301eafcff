import Glibc

extension TCPConnection {
    /// Performs the client side of a TLS handshake and, once it succeeds, sends and receives everything
    /// through TLS.
    ///
    /// For STARTTLS, call this after the server's 220 reply to STARTTLS. For implicit TLS (port 465),
    /// call it right after `connect`, before reading the greeting.
    ///
    /// - Parameters:
    ///   - serverName: the host name that the user configured, which the certificate must match and which
    ///     is sent as SNI. Pass `requestedHost`, never a resolved address. For an IP literal the
    ///     certificate's IP address entries are checked instead, and no SNI is sent.
    ///   - timeout: the longest time that the whole handshake may take.
    ///   - deadline: the session's overall deadline, or nil for none.
    /// - Returns: the negotiated version, cipher and server certificate, also available from `tlsSession`.
    /// - Throws: `TLSError` when the configuration cannot be loaded, the certificate is not trusted, the
    ///   server sent bytes before the handshake, or the handshake fails. `TransportError.timedOut` with
    ///   operation `tlsHandshake`, `cancelled` or `systemCallFailed` when the transport fails. After a
    ///   failure the connection cannot be used, so close it.
    @discardableResult
    public func startTLS(
        configuration: TLSConfiguration,
        serverName: String,
        timeout: Duration,
        deadline: ContinuousClock.Instant?
    ) throws -> TLSSessionInfo {
        try checkReadyForHandshake()
        try rejectEarlyData(serverName: serverName)
        let context = try TLSClientContext(configuration: configuration)
        let tlsStream = try TLSStream(client: context, descriptor: descriptor, serverName: serverName, peer: remoteAddress)
        try runHandshake(tlsStream, timeout: timeout, deadline: deadline)
        stream = tlsStream
        return tlsStream.sessionInfo
    }

    /// Performs the server side of a TLS handshake and, once it succeeds, sends and receives everything
    /// through TLS. Use it on a connection from `adopting(acceptedDescriptor:cancellation:)`.
    ///
    /// - Parameter timeout: the longest time that the whole handshake may take.
    /// - Returns: the negotiated version, cipher and client certificate, if the client sent one.
    /// - Throws: the errors of `startTLS`, except that no bytes are rejected as early: the client's first
    ///   handshake message may already be waiting.
    @discardableResult
    public func acceptTLS(
        context: TLSServerContext,
        timeout: Duration,
        deadline: ContinuousClock.Instant?
    ) throws -> TLSSessionInfo {
        try checkReadyForHandshake()
        let tlsStream = try TLSStream(server: context, descriptor: descriptor, peer: remoteAddress)
        try runHandshake(tlsStream, timeout: timeout, deadline: deadline)
        stream = tlsStream
        return tlsStream.sessionInfo
    }

    /// The TLS session, or nil while the connection is plain TCP.
    public var tlsSession: TLSSessionInfo? {
        (stream as? TLSStream)?.sessionInfo
    }

    private func checkReadyForHandshake() throws {
        if isClosed {
            throw TransportError.systemCall("SSL_do_handshake", errno: EBADF)
        }
        if cancellation.isCancelled {
            throw TransportError.cancelled
        }
        precondition(!(stream is TLSStream), "TLS is already active on this connection")
        precondition(pendingOutputCount == 0, "flush the output buffer before the TLS handshake")
    }

    /// Throws when the server has sent bytes that the client has not read before the client's first
    /// handshake message. A TLS server speaks only after the ClientHello, so such bytes are plaintext
    /// that an attacker may have injected after the 220 reply to STARTTLS.
    private func rejectEarlyData(serverName: String) throws {
        var byte: UInt8 = 0
        let count = recv(descriptor, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        if count > 0 {
            throw TLSError(
                kind: .handshakeFailed,
                reason: "the server sent unencrypted data before the handshake began. After STARTTLS it "
                    + "may have been injected by an attacker; with implicit TLS, the server probably expects "
                    + "STARTTLS on this port instead",
                serverName: serverName,
                peer: remoteAddress
            )
        }
        if count == 0 {
            throw TransportError.closedByPeer(peer: remoteAddress, operation: .tlsHandshake)
        }
    }

    /// Drives the handshake through the poll loop, so that each wait honours the limit and cancellation.
    private func runHandshake(_ tlsStream: TLSStream, timeout: Duration, deadline: ContinuousClock.Instant?) throws {
        let limit = WaitLimit(stepTimeout: timeout, deadline: deadline)
        while let events = try tlsStream.continueHandshake() {
            try waitForDescriptor(events: events, limit: limit, operation: .tlsHandshake)
        }
    }
}
