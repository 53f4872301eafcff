import Dispatch
import Foundation
import Glibc
import OutboxTestSupport
import Synchronization
import Testing
@testable import SMTPClient

@Suite("TLS stream reading, writing, limits and closing")
struct TLSStreamTests {
    let certificates: TestCertificates
    let context: TLSServerContext

    init() throws {
        certificates = try TestCertificates.shared()
        context = try TLSServerContext(
            certificatePath: certificates.server.certificatePath, keyPath: certificates.server.keyPath
        )
    }

    // MARK: - Application data

    @Test func linesTravelBothWays() throws {
        let server = try TLSLoopbackServer(context: context) { connection in
            try connection.write(Array("220 tls.test ready\r\n".utf8), timeout: .seconds(5), deadline: nil)
            let command = try connection.read(timeout: .seconds(5), deadline: nil)
            try connection.write(Array("250 got ".utf8) + command, timeout: .seconds(5), deadline: nil)
        }
        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))

        let greeting = try connection.read(timeout: .seconds(5), deadline: nil)
        try connection.write(Array("EHLO client.test\r\n".utf8), timeout: .seconds(5), deadline: nil)
        let reply = try connection.read(timeout: .seconds(5), deadline: nil)

        #expect(String(decoding: greeting, as: UTF8.self) == "220 tls.test ready\r\n")
        #expect(String(decoding: reply, as: UTF8.self) == "250 got EHLO client.test\r\n")
        #expect(try #require(server.waitForOutcome()).sessionError == nil)
    }

    @Test func largeTransferRoundTrips() throws {
        let size = 4 * 1024 * 1024
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 9) }
        let server = try TLSLoopbackServer(context: context) { connection in
            var received: [UInt8] = []
            while received.count < size {
                received += try connection.read(timeout: .seconds(10), deadline: nil)
            }
            try connection.write(received, timeout: .seconds(10), deadline: nil)
        }
        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))

        try connection.write(payload, timeout: .seconds(10), deadline: nil)
        var echoed: [UInt8] = []
        while echoed.count < size {
            echoed += try connection.read(timeout: .seconds(10), deadline: nil)
        }

        #expect(echoed.count == size)
        #expect(echoed == payload)
        #expect(connection.bytesWritten == UInt64(size))
        #expect(try #require(server.waitForOutcome()).sessionError == nil)
    }

    @Test func decryptedBytesCountAsBufferedInput() throws {
        let record = Array(repeating: UInt8(ascii: "x"), count: 100)
        let server = try TLSLoopbackServer(context: context) { connection in
            try connection.write(record, timeout: .seconds(5), deadline: nil)
            _ = try? connection.read(timeout: .seconds(5), deadline: nil)
        }
        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))

        let first = try connection.read(maxBytes: 10, timeout: .seconds(5), deadline: nil)

        #expect(first.count == 10)
        #expect(connection.hasBufferedInput)
        #expect(try connection.pollReadable(timeout: .zero))
        let rest = try connection.read(maxBytes: 1000, timeout: .zero, deadline: nil)
        #expect(rest.count == 90)
        #expect(!connection.hasBufferedInput)
    }

    @Test func closeSendsCloseNotify() throws {
        let serverRead = Mutex<Result<[UInt8], any Error>?>(nil)
        let receivedCloseNotify = Mutex(false)
        let server = try TLSLoopbackServer(context: context) { connection in
            let result = Result { try connection.read(timeout: .seconds(5), deadline: nil) }
            serverRead.withLock { $0 = result }
            receivedCloseNotify.withLock { $0 = (connection.stream as? TLSStream)?.receivedCloseNotify == true }
        }
        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))

        connection.close()
        _ = try #require(server.waitForOutcome())

        let result = try #require(serverRead.withLock { $0 })
        #expect(result.transportError == .closedByPeer(peer: connection.localAddress, operation: .read))
        #expect(receivedCloseNotify.withLock { $0 })
    }

    @Test func missingCloseNotifyReadsAsClosed() throws {
        let server = try TLSLoopbackServer(context: context) { connection in
            try connection.write(Array("221 bye\r\n".utf8), timeout: .seconds(5), deadline: nil)
            // Closing the socket without TLSStream.shutdown leaves out the close_notify alert.
            Glibc.shutdown(connection.descriptor, Int32(SHUT_RDWR))
        }
        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))

        let reply = try connection.read(timeout: .seconds(5), deadline: nil)
        let error = Result { try connection.read(timeout: .seconds(5), deadline: nil) }.transportError

        #expect(String(decoding: reply, as: UTF8.self) == "221 bye\r\n")
        #expect(error == .closedByPeer(peer: connection.remoteAddress, operation: .read))
        #expect((connection.stream as? TLSStream)?.receivedCloseNotify == false)
    }

    // MARK: - Limits and cancellation

    @Test func handshakeWithSilentServerTimesOut() throws {
        // The kernel completes the TCP handshake into the listen queue, but nothing ever replies.
        let listener = try LoopbackListener(family: .ipv4)
        let connection = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )

        let (elapsed, result) = measure {
            try connection.startTLS(
                configuration: TLSConfiguration(), serverName: "localhost", timeout: .milliseconds(200), deadline: nil
            )
        }

        #expect(result.transportError == .timedOut(
            operation: .tlsHandshake, peer: connection.remoteAddress, timeout: .milliseconds(200),
            expiredLimit: .stepTimeout
        ))
        #expect(elapsed >= .milliseconds(200))
        #expect(elapsed < .milliseconds(400))
        #expect(connection.tlsSession == nil)
    }

    @Test func handshakeStopsAtOverallDeadline() throws {
        let listener = try LoopbackListener(family: .ipv4)
        let connection = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(150))

        let (elapsed, result) = measure {
            try connection.startTLS(
                configuration: TLSConfiguration(), serverName: "localhost", timeout: .seconds(5), deadline: deadline
            )
        }

        #expect(result.transportError == .timedOut(
            operation: .tlsHandshake, peer: connection.remoteAddress, timeout: .seconds(5),
            expiredLimit: .overallDeadline
        ))
        #expect(elapsed < .milliseconds(350))
    }

    @Test func cancellationWakesHandshake() throws {
        let listener = try LoopbackListener(family: .ipv4)
        let signal = try CancellationSignal()
        let connection = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil, cancellation: signal
        )
        let cancelledAt = Mutex<ContinuousClock.Instant?>(nil)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) {
            cancelledAt.withLock { $0 = .now }
            signal.cancel()
        }

        let result = Result {
            try connection.startTLS(
                configuration: TLSConfiguration(), serverName: "localhost", timeout: .seconds(10), deadline: nil
            )
        }
        let wokenAt = ContinuousClock.now

        #expect(result.transportError == .cancelled)
        let cancelled = try #require(cancelledAt.withLock { $0 })
        #expect(wokenAt - cancelled < .milliseconds(100), "the handshake woke \(wokenAt - cancelled) after cancel()")
    }

    @Test func readTimeoutAppliesAfterHandshake() throws {
        let server = try TLSLoopbackServer(context: context) { connection in
            _ = try? connection.read(timeout: .seconds(5), deadline: nil)
        }
        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))

        let (elapsed, result) = measure { try connection.read(timeout: .milliseconds(200), deadline: nil) }

        #expect(result.transportError == .timedOut(
            operation: .read, peer: connection.remoteAddress, timeout: .milliseconds(200), expiredLimit: .stepTimeout
        ))
        #expect(elapsed >= .milliseconds(200))
        #expect(elapsed < .milliseconds(400))
    }

    // MARK: - Handshake preconditions

    @Test func dataBeforeHandshakeIsRejected() throws {
        let listener = try LoopbackListener(family: .ipv4)
        let connection = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )
        let peer = try listener.accept()
        peer.send("250 injected\r\n")
        #expect(try connection.pollReadable(timeout: .seconds(2)))

        let error = try #require(tlsError {
            try connection.startTLS(
                configuration: TLSConfiguration(), serverName: "localhost", timeout: .seconds(2), deadline: nil
            )
        })

        #expect(error.kind == .handshakeFailed)
        #expect(error.reason.contains("unencrypted data before the handshake"))
    }

    @Test func plaintextServerFailsWithAdvice() throws {
        let listener = try LoopbackListener(family: .ipv4)
        let connection = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )
        let peer = try listener.accept()
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) {
            // An SMTP server without TLS replies to the ClientHello in plain text.
            peer.send("500 5.5.2 Error: bad syntax\r\n")
        }

        let error = try #require(tlsError {
            try connection.startTLS(
                configuration: TLSConfiguration(), serverName: "localhost", timeout: .seconds(2), deadline: nil
            )
        })

        #expect(error.kind == .handshakeFailed)
        #expect(error.description.contains("did not answer with TLS"), "\(error)")
    }

    // MARK: - Descriptors

    /// Runs a successful session, a rejected certificate and a handshake timeout once each, closing the
    /// client connections, and returns the socket inodes of both ends, which must all be closed by then.
    private func exerciseHandshakes() throws -> [UInt] {
        var inodes: [UInt] = []

        let server = try TLSLoopbackServer(context: context) { connection in
            try connection.write(Array("220 ready\r\n".utf8), timeout: .seconds(5), deadline: nil)
        }
        let connection = try connectTLS(port: server.port, configuration: .trustingTestCA(certificates))
        inodes.append(OpenDescriptors.socketInode(of: connection.descriptor))
        _ = try connection.read(timeout: .seconds(5), deadline: nil)
        connection.close()
        _ = server.waitForOutcome()
        inodes += server.acceptedSocketInode.map { [$0] } ?? []

        let rejecting = try TLSLoopbackServer(context: context)
        let rejected = try TCPConnection.connect(
            host: "127.0.0.1", port: rejecting.port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )
        inodes.append(OpenDescriptors.socketInode(of: rejected.descriptor))
        _ = tlsError {
            try rejected.startTLS(configuration: TLSConfiguration(), serverName: "localhost", timeout: .seconds(5), deadline: nil)
        }
        rejected.close()
        _ = rejecting.waitForOutcome()
        inodes += rejecting.acceptedSocketInode.map { [$0] } ?? []

        let listener = try LoopbackListener(family: .ipv4)
        let silent = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )
        inodes.append(OpenDescriptors.socketInode(of: silent.descriptor))
        _ = try? silent.startTLS(
            configuration: TLSConfiguration(), serverName: "localhost", timeout: .milliseconds(10), deadline: nil
        )
        silent.close()

        return inodes
    }

    /// Checks the sockets of this test by inode rather than counting /proc/self/fd, because tests that
    /// run in parallel open and close descriptors of their own.
    @Test func repeatedHandshakesLeakNoDescriptors() throws {
        var inodes: [UInt] = []
        for _ in 0..<20 {
            inodes += try exerciseHandshakes()
        }

        #expect(inodes.count == 20 * 5)
        let open = inodes.filter { OpenDescriptors.containsSocket(inode: $0) }
        #expect(open.isEmpty, "sockets still open: \(open)")
    }
}
