import Dispatch
import Foundation
import Glibc
import OutboxTestSupport
import Synchronization
@testable import SMTPClient

/// A TLS server on 127.0.0.1 that accepts one connection with `TLSServerContext` on a thread of its own,
/// then runs `session` on the encrypted connection.
final class TLSLoopbackServer: @unchecked Sendable {
    // @unchecked: `listener` is used by the server thread until `finished` is signalled, and afterwards
    // only by deinit. The other stored properties are Sendable.

    /// What the server thread saw.
    struct Outcome: Sendable {
        var handshake: Result<TLSSessionInfo, any Error>
        /// The error that `session` threw, or nil when it returned.
        var sessionError: (any Error)?
    }

    let port: UInt16
    let cancellation: CancellationSignal
    private let listener: LoopbackListener
    private let outcome = Mutex<Outcome?>(nil)
    private let acceptedInode = Mutex<UInt?>(nil)
    private let finished = DispatchSemaphore(value: 0)

    init(
        context: TLSServerContext,
        handshakeTimeout: Duration = .seconds(5),
        session: @escaping @Sendable (TCPConnection) throws -> Void = { _ in }
    ) throws {
        listener = try LoopbackListener(family: .ipv4)
        port = listener.port
        cancellation = try CancellationSignal()
        DispatchQueue.global().async { [self] in
            let result = serve(context: context, handshakeTimeout: handshakeTimeout, session: session)
            outcome.withLock { $0 = result }
            finished.signal()
        }
    }

    deinit {
        cancellation.cancel()
        finished.wait()
    }

    /// Waits until the server thread has finished, and returns what it saw, or nil after `timeout`.
    func waitForOutcome(timeout: Duration = .seconds(10)) -> Outcome? {
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        guard finished.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else {
            return nil
        }
        finished.signal()
        return outcome.withLock { $0 }
    }

    /// The socket inode of the accepted connection, as in /proc/self/fd, or nil before it is accepted.
    var acceptedSocketInode: UInt? {
        acceptedInode.withLock { $0 }
    }

    private func serve(
        context: TLSServerContext,
        handshakeTimeout: Duration,
        session: (TCPConnection) throws -> Void
    ) -> Outcome {
        let connection: TCPConnection
        do {
            let descriptor = try acceptDescriptor()
            connection = try context.accept(descriptor: descriptor, timeout: handshakeTimeout, cancellation: cancellation)
        } catch {
            return Outcome(handshake: .failure(error), sessionError: nil)
        }
        defer {
            connection.close()
        }
        let info = connection.tlsSession!
        do {
            try session(connection)
            return Outcome(handshake: .success(info), sessionError: nil)
        } catch {
            return Outcome(handshake: .success(info), sessionError: error)
        }
    }

    /// Accepts one TCP connection within 10 seconds, or throws `cancelled` when the server goes away.
    private func acceptDescriptor() throws -> Int32 {
        let limit = WaitLimit(stepTimeout: .seconds(10), deadline: nil)
        guard try PollWait.wait(
            descriptor: listener.descriptor, events: Int16(POLLIN), limit: limit, cancellation: cancellation
        ) else {
            throw TransportError.systemCall("accept", errno: ETIMEDOUT)
        }
        let descriptor = Glibc.accept(listener.descriptor, nil, nil)
        guard descriptor >= 0 else {
            throw TransportError.systemCall("accept", errno: errno)
        }
        acceptedInode.withLock { $0 = OpenDescriptors.socketInode(of: descriptor) }
        return descriptor
    }
}

/// `openssl s_server` as a child process on 127.0.0.1, for one connection (`-naccept 1`).
///
/// It checks interoperability with OpenSSL's own server, and offers what `TLSServerContext` does not,
/// such as TLS 1.1 or a maximum of TLS 1.2.
final class OpenSSLServer {
    let port: UInt16
    private let process: Process
    private let input = Pipe()
    private let output = Pipe()

    /// Starts s_server with the certificate and key of `identity` and the extra `arguments`, and waits
    /// up to 5 seconds for its `ACCEPT 127.0.0.1:PORT` line.
    init(identity: TestCertificates.Identity, arguments: [String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: TestCertificates.opensslPath)
        process.arguments = [
            "s_server", "-accept", "127.0.0.1:0", "-naccept", "1",
            "-cert", identity.certificatePath, "-key", identity.keyPath,
        ] + arguments
        // s_server exits at end of input, so its standard input stays open until deinit.
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()

        guard let port = OpenSSLServer.readAcceptedPort(from: output.fileHandleForReading.fileDescriptor) else {
            process.terminate()
            process.waitUntilExit()
            throw TestServerError.timedOut("openssl s_server did not print its ACCEPT line within 5 seconds")
        }
        self.port = port
    }

    deinit {
        if process.isRunning {
            process.terminate()
        }
        process.waitUntilExit()
    }

    /// Reads s_server's output until the line `ACCEPT 127.0.0.1:PORT` and returns the port.
    private static func readAcceptedPort(from descriptor: Int32) -> UInt16? {
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        var text = ""
        while ContinuousClock.now < deadline {
            var descriptors = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
            guard poll(&descriptors, 1, 100) >= 0 else {
                return nil
            }
            if descriptors[0].revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 1024)
                let count = read(descriptor, &buffer, buffer.count)
                if count <= 0 {
                    return nil
                }
                text += String(decoding: buffer.prefix(count), as: UTF8.self)
            }
            for line in text.split(separator: "\n") where line.hasPrefix("ACCEPT 127.0.0.1:") {
                return UInt16(line.dropFirst("ACCEPT 127.0.0.1:".count).trimmingCharacters(in: .whitespaces))
            }
        }
        return nil
    }

    /// Whether this OpenSSL can still offer TLS 1.1 at security level 0. Debian builds OpenSSL 3.0 with
    /// TLS 1.0 and 1.1, but a build with no-tls1_1 rejects the -tls1_1 option.
    static let canOfferTLS11: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestCertificates.opensslPath)
        process.arguments = ["ciphers", "-s", "-tls1_1", "DEFAULT@SECLEVEL=0"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else {
            return false
        }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()
}

/// Connects to `port` on 127.0.0.1 and performs the client handshake, returning the connection.
func connectTLS(
    port: UInt16,
    configuration: TLSConfiguration,
    serverName: String = "localhost",
    timeout: Duration = .seconds(5),
    cancellation: CancellationSignal? = nil
) throws -> TCPConnection {
    let connection = try TCPConnection.connect(
        host: "127.0.0.1", port: port, connectTimeout: .seconds(2), deadline: nil,
        cancellation: cancellation ?? CancellationSignal()
    )
    try connection.startTLS(configuration: configuration, serverName: serverName, timeout: timeout, deadline: nil)
    return connection
}

/// Returns the error that `body` throws as a `TLSError`, or nil when it returns or throws another error.
func tlsError(_ body: () throws -> some Any) -> TLSError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error as? TLSError
    }
}

extension TLSConfiguration {
    /// Trusts the test CA.
    static func trustingTestCA(_ certificates: TestCertificates) -> TLSConfiguration {
        TLSConfiguration(trust: .certificateFile(certificates.caCertificatePath))
    }
}
