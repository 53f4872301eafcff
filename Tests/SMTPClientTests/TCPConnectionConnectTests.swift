import Glibc
import Testing
@testable import SMTPClient

@Suite("TCPConnection connect")
struct TCPConnectionConnectTests {
    let signal: CancellationSignal

    init() throws {
        signal = try CancellationSignal()
    }

    private func connect(
        _ host: String,
        _ port: UInt16,
        timeout: Duration = .seconds(2),
        deadline: ContinuousClock.Instant? = nil
    ) throws -> TCPConnection {
        try TCPConnection.connect(
            host: host, port: port, connectTimeout: timeout, deadline: deadline, cancellation: signal
        )
    }

    @Test func connectsOverIPv4() throws {
        let listener = try LoopbackListener(family: .ipv4)
        let connection = try connect("127.0.0.1", listener.port)
        let peer = try listener.accept()

        #expect(connection.remoteAddress == "127.0.0.1:\(listener.port)")
        #expect(connection.localAddress.hasPrefix("127.0.0.1:"))
        #expect(connection.localAddress != connection.remoteAddress)
        #expect(connection.requestedHost == "127.0.0.1")

        try connection.write(Array("EHLO client.test\r\n".utf8), timeout: .seconds(2), deadline: nil)
        #expect(peer.receive(exactly: 18) == Array("EHLO client.test\r\n".utf8))
        peer.send("250 ok\r\n")
        let reply = try connection.read(timeout: .seconds(2), deadline: nil)
        #expect(reply == Array("250 ok\r\n".utf8))
        #expect(connection.bytesWritten == 18)
        #expect(connection.bytesRead == 8)
    }

    @Test(.enabled(if: LoopbackListener.hasIPv6Loopback, "this machine has no IPv6 loopback address ::1"))
    func connectsOverIPv6() throws {
        let listener = try LoopbackListener(family: .ipv6)
        let connection = try connect("::1", listener.port)
        let peer = try listener.accept()

        #expect(connection.remoteAddress == "[::1]:\(listener.port)")
        #expect(connection.localAddress.hasPrefix("[::1]:"))
        peer.send("220 ready\r\n")
        #expect(try connection.read(timeout: .seconds(2), deadline: nil) == Array("220 ready\r\n".utf8))
    }

    @Test func socketOptionsAreSet() throws {
        let listener = try LoopbackListener(family: .ipv4)
        let connection = try connect("127.0.0.1", listener.port)
        let descriptor = connection.descriptor

        var noDelay: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, &length)
        #expect(noDelay != 0, "TCP_NODELAY")
        #expect(fcntl(descriptor, F_GETFD) & FD_CLOEXEC != 0, "FD_CLOEXEC")
        #expect(fcntl(descriptor, F_GETFL) & O_NONBLOCK != 0, "O_NONBLOCK")
    }

    /// "localhost" has one address on many machines (Debian's /etc/hosts lists only 127.0.0.1), so the
    /// test needs two to show that a refused first address leads to the second.
    static let localhostAddresses: [IPSocketAddress] = (try? IPSocketAddress.resolve(host: "localhost", port: 1)) ?? []

    @Test(.enabled(
        if: Set(localhostAddresses.map(\.family)).count >= 2,
        "localhost resolves to fewer than two address families"
    ))
    func localhostFallsBackToSecondAddress() throws {
        let second = Self.localhostAddresses.first { $0.family != Self.localhostAddresses[0].family }!
        let family: LoopbackListener.Family = second.family == AF_INET ? .ipv4 : .ipv6
        let listener = try LoopbackListener(family: family)

        let connection = try connect("localhost", listener.port)

        #expect(connection.remoteAddress == IPSocketAddress.formatEndpoint(host: second.host, port: listener.port))
    }

    @Test func refusedAddressFallsBackToNext() throws {
        let listener = try LoopbackListener(family: .ipv4)
        let refusing = try #require(IPSocketAddress(numericHost: "::1", port: listener.port))
        let listening = try #require(IPSocketAddress(numericHost: "127.0.0.1", port: listener.port))

        let connection = try TCPConnection.connect(
            to: [refusing, listening],
            host: "mail.example.test",
            port: listener.port,
            connectTimeout: .seconds(2),
            deadline: nil,
            cancellation: signal
        )

        #expect(connection.remoteAddress == "127.0.0.1:\(listener.port)")
        #expect(connection.requestedHost == "mail.example.test")
    }

    @Test func refusedConnectionListsAddress() throws {
        let port = try LoopbackListener.unusedPort()

        let error = measure { try connect("127.0.0.1", port) }.result.transportError

        let refused = TransportError.ConnectAttempt(
            address: "127.0.0.1", reason: "Connection refused", errorNumber: ECONNREFUSED
        )
        #expect(error == .connectionFailed(host: "127.0.0.1", port: port, attempts: [refused]))
        #expect(error?.description == "Could not connect to 127.0.0.1 port \(port): 127.0.0.1: Connection refused. "
            + "Check the host and port, or whether the server is running.")
    }

    @Test func everyRefusedAddressIsListed() throws {
        let port = try LoopbackListener.unusedPort()
        let addresses = [
            try #require(IPSocketAddress(numericHost: "::1", port: port)),
            try #require(IPSocketAddress(numericHost: "127.0.0.1", port: port)),
        ]

        let error = measure {
            try TCPConnection.connect(
                to: addresses, host: "mail.example.test", port: port,
                connectTimeout: .seconds(2), deadline: nil, cancellation: signal
            )
        }.result.transportError

        guard case let .connectionFailed(host, failedPort, attempts) = error else {
            Issue.record("expected connectionFailed, got \(String(describing: error))")
            return
        }
        #expect(host == "mail.example.test")
        #expect(failedPort == port)
        #expect(attempts.map(\.address) == ["::1", "127.0.0.1"])
        #expect(attempts.last?.errorNumber == ECONNREFUSED)
    }

    @Test func connectTimesOutOnFullAcceptQueue() throws {
        guard let unresponsive = try UnresponsiveListener() else {
            Issue.record("the kernel accepted every connect to a full accept queue, so no connect could time out")
            return
        }

        let (elapsed, result) = measure { try connect("127.0.0.1", unresponsive.port, timeout: .milliseconds(200)) }

        #expect(result.transportError == .timedOut(
            operation: .connect, peer: "127.0.0.1:\(unresponsive.port)",
            timeout: .milliseconds(200), expiredLimit: .stepTimeout
        ))
        #expect(elapsed >= .milliseconds(200))
        #expect(elapsed < .milliseconds(400))
    }

    @Test func connectStopsAtOverallDeadline() throws {
        guard let unresponsive = try UnresponsiveListener() else {
            Issue.record("the kernel accepted every connect to a full accept queue, so no connect could time out")
            return
        }
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(200))

        let (elapsed, result) = measure {
            try connect("127.0.0.1", unresponsive.port, timeout: .seconds(5), deadline: deadline)
        }

        #expect(result.transportError == .timedOut(
            operation: .connect, peer: "127.0.0.1:\(unresponsive.port)",
            timeout: .seconds(5), expiredLimit: .overallDeadline
        ))
        #expect(elapsed >= .milliseconds(190))
        #expect(elapsed < .milliseconds(400))
    }

    @Test func cancelledSignalStopsConnect() throws {
        let listener = try LoopbackListener(family: .ipv4)
        signal.cancel()

        let error = measure { try connect("127.0.0.1", listener.port) }.result.transportError

        #expect(error == .cancelled)
    }

    @Test func invalidDomainFailsWithoutLookup() throws {
        let (elapsed, result) = measure { try connect("no-such-host.invalid", 25) }

        #expect(result.transportError == .nameResolutionFailed(
            host: "no-such-host.invalid", reason: "Name or service not known", isTemporary: false
        ))
        // No DNS query leaves: the name never reaches getaddrinfo, which on glibc would send one.
        #expect(elapsed < .milliseconds(50))
    }

    @Test(arguments: [
        ("invalid", true), ("a.invalid", true), ("A.INVALID.", true), ("mail.invalid.example", false),
        ("invalidexample", false), ("localhost", false),
    ])
    func invalidDomainDetection(host: String, isInvalid: Bool) {
        #expect(TCPConnection.isInInvalidDomain(host) == isInvalid)
    }

    @Test func getaddrinfoFailureIsReported() throws {
        // A 64-octet label exceeds the DNS limit of 63 (RFC 1035 section 2.3.4), so glibc rejects the
        // name before it builds a query and nothing is sent.
        let host = String(repeating: "a", count: 64) + ".invalid"

        let result = Result { try IPSocketAddress.resolve(host: host, port: 25) }

        #expect(result.transportError == .nameResolutionFailed(
            host: host, reason: "Name or service not known", isTemporary: false
        ))
    }

    @Test func resolutionErrorsAreClassified() {
        let again = IPSocketAddress.resolutionError(host: "mail.example.test", status: EAI_AGAIN, errorNumber: 0)
        let noName = IPSocketAddress.resolutionError(host: "mail.example.test", status: EAI_NONAME, errorNumber: 0)
        let system = IPSocketAddress.resolutionError(host: "mail.example.test", status: EAI_SYSTEM, errorNumber: EMFILE)

        #expect(again == .nameResolutionFailed(
            host: "mail.example.test", reason: "Temporary failure in name resolution", isTemporary: true
        ))
        #expect(noName == .nameResolutionFailed(
            host: "mail.example.test", reason: "Name or service not known", isTemporary: false
        ))
        #expect(system == .systemCallFailed(call: "getaddrinfo", errorNumber: EMFILE, message: "Too many open files"))
    }

    @Test func numericAddressesParse() throws {
        let ipv4 = try #require(IPSocketAddress(numericHost: "127.0.0.1", port: 2525))
        let ipv6 = try #require(IPSocketAddress(numericHost: "::1", port: 2525))

        #expect(ipv4.endpointDescription == "127.0.0.1:2525")
        #expect(ipv6.endpointDescription == "[::1]:2525")
        #expect(ipv4.family == AF_INET)
        #expect(ipv6.family == AF_INET6)
        #expect(ipv6.port == 2525)
        #expect(IPSocketAddress(numericHost: "mail.example.test", port: 25) == nil)
    }
}
