import Dispatch
import Glibc
import Testing
@testable import SMTPClient

@Suite("WaitLimit")
struct WaitLimitTests {
    let start = ContinuousClock.now

    @Test func stepTimeoutWhenNoDeadline() {
        let limit = WaitLimit(stepTimeout: .seconds(30), deadline: nil, start: start)

        #expect(limit.source == .stepTimeout)
        #expect(limit.expiry == start.advanced(by: .seconds(30)))
        #expect(limit.stepTimeout == .seconds(30))
    }

    @Test func earlierDeadlineWins() {
        let limit = WaitLimit(stepTimeout: .seconds(30), deadline: start.advanced(by: .seconds(2)), start: start)

        #expect(limit.source == .overallDeadline)
        #expect(limit.expiry == start.advanced(by: .seconds(2)))
        #expect(limit.stepTimeout == .seconds(30))
    }

    @Test func laterDeadlineLeavesStepTimeout() {
        let limit = WaitLimit(stepTimeout: .seconds(2), deadline: start.advanced(by: .seconds(30)), start: start)

        #expect(limit.source == .stepTimeout)
        #expect(limit.expiry == start.advanced(by: .seconds(2)))
    }

    @Test func deadlineAtSameInstantCountsAsStepTimeout() {
        let limit = WaitLimit(stepTimeout: .seconds(2), deadline: start.advanced(by: .seconds(2)), start: start)

        #expect(limit.source == .stepTimeout)
    }

    @Test func negativeTimeoutCountsAsZero() {
        let limit = WaitLimit(stepTimeout: .seconds(-5), deadline: nil, start: start)

        #expect(limit.stepTimeout == .zero)
        #expect(limit.hasExpired(at: start))
        #expect(limit.remaining(at: start) == .zero)
    }

    @Test func remainingNeverNegative() {
        let limit = WaitLimit(stepTimeout: .seconds(1), deadline: nil, start: start)

        #expect(limit.remaining(at: start.advanced(by: .milliseconds(250))) == .milliseconds(750))
        #expect(limit.remaining(at: start.advanced(by: .seconds(5))) == .zero)
        #expect(!limit.hasExpired(at: start.advanced(by: .milliseconds(999))))
        #expect(limit.hasExpired(at: start.advanced(by: .seconds(1))))
    }

    @Test(arguments: [
        (Duration.zero, Int32(0)),
        (.microseconds(1), 1),
        (.microseconds(1500), 2),
        (.milliseconds(200), 200),
        (.seconds(3), 3000),
        (.seconds(Int64.max / 2), Int32.max),
    ])
    func pollTimeoutRoundsUp(timeout: Duration, milliseconds: Int32) {
        let limit = WaitLimit(stepTimeout: timeout, deadline: nil, start: start)

        #expect(limit.pollTimeoutMilliseconds(at: start) == milliseconds)
    }
}

@Suite("TransportError messages")
struct TransportErrorMessageTests {
    @Test func connectionFailureNamesEveryAddress() {
        let error = TransportError.connectionFailed(host: "mail.example.test", port: 587, attempts: [
            .init(address: "192.0.2.10", reason: "Connection refused", errorNumber: ECONNREFUSED),
            .init(address: "2001:db8::10", reason: "Network is unreachable", errorNumber: ENETUNREACH),
        ])

        #expect(error.description == "Could not connect to mail.example.test port 587: "
            + "192.0.2.10: Connection refused, 2001:db8::10: Network is unreachable. "
            + "Check the host and port, or whether the server is running.")
    }

    @Test func connectionFailureWithNoAddresses() {
        let error = TransportError.connectionFailed(host: "mail.example.test", port: 25, attempts: [])

        #expect(error.description.contains("the host name has no addresses"))
    }

    @Test func temporaryResolutionFailureSuggestsRetry() {
        let temporary = TransportError.nameResolutionFailed(
            host: "mail.example.test", reason: "Temporary failure in name resolution", isTemporary: true
        )
        let permanent = TransportError.nameResolutionFailed(
            host: "mail.example.test", reason: "Name or service not known", isTemporary: false
        )

        #expect(temporary.description == "Could not resolve the host name mail.example.test: "
            + "Temporary failure in name resolution. The DNS server did not answer in time. Try again later.")
        #expect(permanent.description == "Could not resolve the host name mail.example.test: "
            + "Name or service not known. Check the spelling of the host name.")
    }

    @Test func timeoutNamesWhichLimitExpired() {
        let step = TransportError.timedOut(
            operation: .read, peer: "127.0.0.1:2525", timeout: .milliseconds(200), expiredLimit: .stepTimeout
        )
        let deadline = TransportError.timedOut(
            operation: .write, peer: "[::1]:2525", timeout: .seconds(30), expiredLimit: .overallDeadline
        )

        #expect(step.description == "Timed out after 0.2 seconds waiting for data from 127.0.0.1:2525. "
            + "The server is slow or unreachable. Raise the read timeout or try again later.")
        #expect(deadline.description == "The session's overall deadline passed waiting to send data to [::1]:2525, "
            + "before the write timeout of 30.0 seconds. Raise the overall deadline if the session needs more time.")
    }

    @Test func closedByPeerAndSystemCallMessages() {
        let closed = TransportError.closedByPeer(peer: "127.0.0.1:25", operation: .read)
        let system = TransportError.systemCall("socket", errno: EMFILE)

        #expect(closed.description == "The server at 127.0.0.1:25 closed the connection while the client was "
            + "waiting for a reply. Check the server's log for the reason, then try again.")
        #expect(system == .systemCallFailed(call: "socket", errorNumber: EMFILE, message: "Too many open files"))
        #expect(system.description == "The system call socket failed: Too many open files (errno 24).")
    }
}

@Suite("CancellationSignal")
struct CancellationSignalTests {
    @Test func startsUncancelled() throws {
        let signal = try CancellationSignal()

        #expect(!signal.isCancelled)
    }

    @Test func cancelFromManyThreadsIsSafe() throws {
        let signal = try CancellationSignal()

        DispatchQueue.concurrentPerform(iterations: 64) { _ in
            signal.cancel()
        }

        #expect(signal.isCancelled)
        var descriptors = [pollfd(fd: signal.descriptor, events: Int16(POLLIN), revents: 0)]
        #expect(poll(&descriptors, 1, 0) == 1, "the eventfd stays readable after cancel()")
    }

    @Test func descriptorIsCloseOnExec() throws {
        let signal = try CancellationSignal()

        #expect(fcntl(signal.descriptor, F_GETFD) & FD_CLOEXEC != 0)
    }
}
