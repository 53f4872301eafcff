import Glibc

/// The poll(2) loop behind every wait of the transport.
enum PollWait {
    /// Blocks until `descriptor` reports one of `events` (or POLLERR, POLLHUP, POLLNVAL), `limit` expires,
    /// or `cancellation` is cancelled.
    ///
    /// - Returns: true when the descriptor is ready, false when `limit` expired first. The wait never
    ///   returns false before `limit.expiry`, because a poll that wakes early is repeated.
    ///   An expired limit still gets one poll with a zero timeout.
    /// - Throws: `TransportError.cancelled`, or `systemCallFailed` when poll fails.
    static func wait(
        descriptor: Int32,
        events: Int16,
        limit: WaitLimit,
        cancellation: CancellationSignal
    ) throws -> Bool {
        var descriptors = [
            pollfd(fd: descriptor, events: events, revents: 0),
            pollfd(fd: cancellation.descriptor, events: Int16(POLLIN), revents: 0),
        ]

        while true {
            if cancellation.isCancelled {
                throw TransportError.cancelled
            }

            // Poll at least once, even with no time left, so that a zero timeout still reports readiness.
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            let count = poll(&descriptors, nfds_t(descriptors.count), limit.pollTimeoutMilliseconds())
            if count < 0 {
                let errorNumber = errno
                if errorNumber == EINTR {
                    continue
                }
                throw TransportError.systemCall("poll", errno: errorNumber)
            }

            if descriptors[1].revents != 0 {
                throw TransportError.cancelled
            }
            if descriptors[0].revents != 0 {
                return true
            }
            if limit.hasExpired() {
                return false
            }
        }
    }
}
