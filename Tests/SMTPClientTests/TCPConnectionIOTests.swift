import Dispatch
import Glibc
import OutboxTestSupport
import Synchronization
import Testing
@testable import SMTPClient

@Suite("TCPConnection reading and writing")
struct TCPConnectionIOTests {
    let signal: CancellationSignal
    let listener: LoopbackListener

    init() throws {
        signal = try CancellationSignal()
        listener = try LoopbackListener(family: .ipv4)
    }

    /// Connects to the test's listener and returns both ends.
    private func connectPair() throws -> (TCPConnection, PeerSocket) {
        let connection = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil, cancellation: signal
        )
        return (connection, try listener.accept())
    }

    @Test func readTimesOutWithinTolerance() throws {
        let (connection, _) = try connectPair()

        let (elapsed, result) = measure { try connection.read(timeout: .milliseconds(200), deadline: nil) }

        #expect(result.transportError == .timedOut(
            operation: .read, peer: connection.remoteAddress, timeout: .milliseconds(200), expiredLimit: .stepTimeout
        ))
        #expect(elapsed >= .milliseconds(200))
        #expect(elapsed < .milliseconds(400))
    }

    @Test func overallDeadlineBeatsLongerStepTimeout() throws {
        let (connection, _) = try connectPair()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(200))

        let (elapsed, result) = measure { try connection.read(timeout: .seconds(5), deadline: deadline) }

        #expect(result.transportError == .timedOut(
            operation: .read, peer: connection.remoteAddress, timeout: .seconds(5), expiredLimit: .overallDeadline
        ))
        #expect(elapsed >= .milliseconds(190))
        #expect(elapsed < .milliseconds(400))
    }

    @Test func passedDeadlineFailsAtOnce() throws {
        let (connection, _) = try connectPair()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(-1))

        let (elapsed, result) = measure { try connection.read(timeout: .seconds(5), deadline: deadline) }

        #expect(result.transportError == .timedOut(
            operation: .read, peer: connection.remoteAddress, timeout: .seconds(5), expiredLimit: .overallDeadline
        ))
        #expect(elapsed < .milliseconds(50))
    }

    @Test func cancellationWakesBlockedRead() throws {
        let (connection, _) = try connectPair()
        let cancelledAt = Mutex<ContinuousClock.Instant?>(nil)
        let signal = self.signal
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) {
            cancelledAt.withLock { $0 = .now }
            signal.cancel()
        }

        let result = Result { try connection.read(timeout: .seconds(10), deadline: nil) }
        let wokenAt = ContinuousClock.now

        #expect(result.transportError == .cancelled)
        let cancelled = try #require(cancelledAt.withLock { $0 })
        let latency = wokenAt - cancelled
        #expect(latency < .milliseconds(100), "read woke \(latency) after cancel()")
        #expect(signal.isCancelled)
    }

    @Test func cancellationWakesBlockedFlush() throws {
        let (connection, _) = try connectPair()
        let signal = self.signal
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) {
            signal.cancel()
        }
        // The peer never reads, so the flush blocks once the socket buffers are full.
        connection.enqueue([UInt8](repeating: 0x61, count: 64 * 1024 * 1024))

        let (elapsed, result) = measure { try connection.flush(timeout: .seconds(10), deadline: nil) }

        #expect(result.transportError == .cancelled)
        #expect(elapsed < .seconds(2))
        #expect(connection.pendingOutputCount > 0)
    }

    @Test func peerCloseGivesClosedByPeer() throws {
        let (connection, peer) = try connectPair()
        peer.send("221 bye\r\n")
        peer.close()

        #expect(try connection.read(timeout: .seconds(2), deadline: nil) == Array("221 bye\r\n".utf8))
        let error = Result { try connection.read(timeout: .seconds(2), deadline: nil) }.transportError

        #expect(error == .closedByPeer(peer: connection.remoteAddress, operation: .read))
    }

    @Test func writeToClosedPeerGivesClosedByPeer() throws {
        let (connection, peer) = try connectPair()
        peer.close()

        // The first writes can succeed into the socket buffer, until the peer's reset arrives. Without
        // MSG_NOSIGNAL a later write would raise SIGPIPE and end the test process.
        var error: TransportError?
        for _ in 0..<100 where error == nil {
            let result = Result { try connection.write(Array("NOOP\r\n".utf8), timeout: .seconds(1), deadline: nil) }
            error = result.transportError
            usleep(5_000)
        }

        #expect(error == .closedByPeer(peer: connection.remoteAddress, operation: .write))
    }

    @Test func largeWriteToSlowReaderCompletes() throws {
        let (connection, peer) = try connectPair()
        let size = 8 * 1024 * 1024
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let received = Mutex<[UInt8]>([])
        let reader = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(size)
            while bytes.count < size {
                let chunk = peer.receive(maxBytes: 32 * 1024)
                if chunk.isEmpty {
                    break
                }
                bytes += chunk
                usleep(200)
            }
            received.withLock { $0 = bytes }
            reader.signal()
        }

        try connection.write(payload, timeout: .seconds(5), deadline: ContinuousClock.now.advanced(by: .seconds(60)))
        reader.wait()

        #expect(connection.bytesWritten == UInt64(size))
        #expect(connection.pendingOutputCount == 0)
        #expect(connection.writeWaitCount > 0, "the socket buffer never filled, so no partial write was exercised")
        let bytes = received.withLock { $0 }
        #expect(bytes.count == size)
        #expect(bytes == payload)
    }

    @Test func enqueueSendsNothingUntilFlush() throws {
        let (connection, peer) = try connectPair()

        connection.enqueue(Array("MAIL FROM:<a@example.test>\r\n".utf8))
        connection.enqueue(Array("RCPT TO:<b@example.test>\r\n".utf8)[...])
        usleep(20_000)
        #expect(!peer.hasPendingInput())
        #expect(connection.pendingOutputCount == 54)

        try connection.flush(timeout: .seconds(2), deadline: nil)

        #expect(peer.receive(exactly: 54) == Array("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n".utf8))
        #expect(connection.pendingOutputCount == 0)
        #expect(connection.bytesWritten == 54)
    }

    @Test func readReturnsAtMostMaxBytes() throws {
        let (connection, peer) = try connectPair()
        peer.send("250-first\r\n250 second\r\n")

        let first = try connection.read(maxBytes: 4, timeout: .seconds(2), deadline: nil)

        #expect(first == Array("250-".utf8))
        #expect(connection.bytesRead == 4)
    }

    @Test func pollReadableSeesEarlyData() throws {
        let (connection, peer) = try connectPair()

        #expect(try connection.pollReadable(timeout: .zero) == false)
        #expect(connection.hasBufferedInput == false)

        peer.send("250 sent too early\r\n")

        #expect(try connection.pollReadable(timeout: .seconds(2)))
        #expect(try connection.pollReadable(timeout: .zero))
    }

    @Test func closeIsIdempotent() throws {
        let (connection, _) = try connectPair()
        let inode = OpenDescriptors.socketInode(of: connection.descriptor)
        #expect(OpenDescriptors.containsSocket(inode: inode))

        connection.close()
        connection.close()

        #expect(connection.isClosed)
        #expect(!OpenDescriptors.containsSocket(inode: inode))
        let error = Result { try connection.read(timeout: .seconds(1), deadline: nil) }.transportError
        #expect(error == .systemCall("recv", errno: EBADF))
    }

    @Test func deinitClosesSocket() throws {
        var inode: UInt = 0
        do {
            let (connection, _) = try connectPair()
            inode = OpenDescriptors.socketInode(of: connection.descriptor)
            #expect(OpenDescriptors.containsSocket(inode: inode))
        }

        #expect(!OpenDescriptors.containsSocket(inode: inode))
    }
}
