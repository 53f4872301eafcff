import Dispatch
import Glibc
import OutboxTestSupport
import Testing
@testable import SMTPClient

@Suite("Transport descriptor leaks")
struct TransportDescriptorLeakTests {
    /// Runs every success and failure path of the transport and the scripted server once.
    private func exerciseEveryPath() throws {
        let signal = try CancellationSignal()
        let listener = try LoopbackListener(family: .ipv4)

        let connection = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil, cancellation: signal
        )
        let peer = try listener.accept()
        _ = try? connection.read(timeout: .milliseconds(5), deadline: nil)
        peer.close()
        _ = try? connection.read(timeout: .seconds(1), deadline: nil)
        connection.close()

        let refusedPort = try LoopbackListener.unusedPort()
        _ = try? TCPConnection.connect(
            host: "127.0.0.1", port: refusedPort, connectTimeout: .seconds(1), deadline: nil, cancellation: signal
        )
        _ = try? TCPConnection.connect(
            host: "leak-check.invalid", port: 25, connectTimeout: .seconds(1), deadline: nil, cancellation: signal
        )
        if let unresponsive = try UnresponsiveListener() {
            _ = try? TCPConnection.connect(
                host: "127.0.0.1", port: unresponsive.port, connectTimeout: .milliseconds(20), deadline: nil,
                cancellation: signal
            )
        }

        let cancelled = try TCPConnection.connect(
            host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(2), deadline: nil, cancellation: signal
        )
        signal.cancel()
        _ = try? cancelled.read(timeout: .seconds(1), deadline: nil)

        let server = try ScriptedServer(script: [.send("220 ready\r\n"), .expectLine("QUIT"), .close])
        let client = try TCPConnection.connect(
            host: "127.0.0.1", port: server.port, connectTimeout: .seconds(2), deadline: nil,
            cancellation: CancellationSignal()
        )
        _ = try client.read(timeout: .seconds(2), deadline: nil)
        try client.write(Array("QUIT\r\n".utf8), timeout: .seconds(2), deadline: nil)
        _ = server.waitUntilFinished()
        server.stop()
    }

    /// NOTE: /proc/self/fd counts the whole process, and other tests open sockets in parallel, so the
    /// check allows some slack and compares the lowest of several samples. A leak of one descriptor per
    /// path still adds at least `iterations` descriptors.
    @Test func repeatedOperationsLeakNoDescriptors() throws {
        let iterations = 40
        try exerciseEveryPath()
        let before = OpenDescriptors.count

        for _ in 0..<iterations {
            try exerciseEveryPath()
        }

        var after = Int.max
        for _ in 0..<20 {
            after = min(after, OpenDescriptors.count)
            usleep(10_000)
        }
        #expect(after - before < iterations / 2, "open descriptors went from \(before) to \(after)")
    }
}
