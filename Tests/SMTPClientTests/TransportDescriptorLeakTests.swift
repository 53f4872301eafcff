import Dispatch
import Glibc
import OutboxTestSupport
import Testing
@testable import SMTPClient

@Suite("Transport descriptor leaks")
struct TransportDescriptorLeakTests {
    /// Runs the paths that hand back a connection, and returns the socket inodes of both ends, which
    /// must all be closed afterwards.
    private func exerciseConnectionPaths() throws -> [UInt] {
        var inodes: [UInt] = []
        let signal = try CancellationSignal()
        let listener = try LoopbackListener(family: .ipv4)

        let connection = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil, cancellation: signal
        )
        inodes.append(OpenDescriptors.socketInode(of: connection.descriptor))
        let peer = try listener.accept()
        _ = try? connection.read(timeout: .milliseconds(5), deadline: nil)
        peer.close()
        _ = try? connection.read(timeout: .seconds(1), deadline: nil)
        connection.close()

        let cancelled = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil, cancellation: signal
        )
        inodes.append(OpenDescriptors.socketInode(of: cancelled.descriptor))
        signal.cancel()
        _ = try? cancelled.read(timeout: .seconds(1), deadline: nil)
        cancelled.close()

        let server = try ScriptedServer(script: [.send("220 ready\r\n"), .expectLine("QUIT"), .close])
        let client = try TCPConnection.connect(
            host: "127.0.0.1", port: server.port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )
        inodes.append(OpenDescriptors.socketInode(of: client.descriptor))
        _ = try client.read(timeout: .seconds(2), deadline: nil)
        try client.write(Array("QUIT\r\n".utf8), timeout: .seconds(2), deadline: nil)
        _ = server.waitUntilFinished()
        server.stop()
        client.close()
        return inodes
    }

    /// Runs the paths where connecting fails, which close their sockets internally.
    private func exerciseFailurePaths() throws {
        let signal = try CancellationSignal()
        let refusedPort = try LoopbackListener.unusedPort()
        _ = try? TCPConnection.connect(
            host: "127.0.0.1", port: refusedPort, connectTimeout: .seconds(1), deadline: nil, cancellation: signal
        )
        _ = try? TCPConnection.connect(
            host: "leak-check.invalid", port: 25, connectTimeout: .seconds(1), deadline: nil, cancellation: signal
        )
        if let unresponsive = try UnresponsiveListener() {
            _ = try? TCPConnection.connect(
                host: "127.0.0.1", port: unresponsive.port, connectTimeout: .milliseconds(5), deadline: nil,
                cancellation: signal
            )
        }
    }

    @Test func connectionSocketsClosed() throws {
        for _ in 0..<10 {
            for inode in try exerciseConnectionPaths() {
                #expect(!OpenDescriptors.containsSocket(inode: inode), "socket \(inode) is still open")
            }
        }
    }

    /// NOTE: /proc/self/fd counts the whole process, and other tests open descriptors in parallel
    /// (about a hundred at once, seen here), so the check compares the lowest of several samples and
    /// allows some slack. A leaked socket or eventfd on any failure path would add at least
    /// `iterations`, twice the slack.
    @Test func failedConnectsLeakNoDescriptors() throws {
        let iterations = 240
        try exerciseFailurePaths()
        let before = OpenDescriptors.count

        for _ in 0..<iterations {
            try exerciseFailurePaths()
        }

        var after = Int.max
        for _ in 0..<20 {
            after = min(after, OpenDescriptors.count)
            usleep(10_000)
        }
        #expect(after - before < iterations / 2, "open descriptors went from \(before) to \(after)")
    }
}
