import SMTPClient

/// The open connections to one server: at most `maximumConnections` at once, idle ones kept for
/// reuse for up to `maximumIdleTime`.
///
/// A task takes a slot with `checkOut()` and gives it back with `checkIn(_:)`, passing the
/// connection to keep or nil. A task that finds every slot taken waits, in order, until one is
/// given back or the task is cancelled.
actor ConnectionPool {
    let maximumConnections: Int
    let maximumIdleTime: Duration
    private var idle: [(connection: SMTPConnection, since: ContinuousClock.Instant)] = []
    /// The slots checked out, each with a connection in use or being opened.
    private var checkedOut = 0
    private var waiters: [(id: Int, continuation: CheckedContinuation<Void, Never>)] = []
    private var nextWaiterID = 0
    private var isShutDown = false

    init(maximumConnections: Int, maximumIdleTime: Duration) {
        self.maximumConnections = max(1, maximumConnections)
        self.maximumIdleTime = maximumIdleTime
    }

    /// The number of connections open now, in use or idle.
    var openConnections: Int { checkedOut + idle.count }

    /// Takes a slot and returns the most recently used idle connection, or nil when the caller must
    /// open one. Idle connections past `maximumIdleTime` are closed on the way.
    ///
    /// - Throws: `MailError.cancelled` when the task is cancelled while it waits.
    func checkOut() async throws(MailError) -> SMTPConnection? {
        while true {
            if Task.isCancelled { throw MailError.cancelled }
            if isShutDown {
                // A pool shut down earlier opens again, as `MailTransport.shutdown()` allows.
                isShutDown = false
            }
            await closeExpiredConnections()
            if let (connection, _) = idle.popLast() {
                checkedOut += 1
                return connection
            }
            if checkedOut + idle.count < maximumConnections {
                checkedOut += 1
                return nil
            }
            await waitForSlot()
        }
    }

    /// Gives a slot back, with the connection to keep for reuse, or nil when it was closed or
    /// never opened.
    func checkIn(_ connection: SMTPConnection?) async {
        checkedOut -= 1
        if let connection {
            if connection.isOpen, !isShutDown {
                idle.append((connection, .now))
            } else {
                await connection.quit()
            }
        }
        wakeNextWaiter()
    }

    /// Sends QUIT on every idle connection. Connections in use are closed when they are checked in.
    func shutdown() async {
        isShutDown = true
        let closing = idle.map(\.connection)
        idle = []
        for connection in closing {
            await connection.quit()
        }
        while !waiters.isEmpty {
            wakeNextWaiter()
        }
    }

    private func closeExpiredConnections() async {
        let now = ContinuousClock.now
        let expired = idle.filter { now - $0.since >= maximumIdleTime }.map(\.connection)
        guard !expired.isEmpty else { return }
        idle.removeAll { now - $0.since >= maximumIdleTime }
        for connection in expired {
            await connection.quit()
        }
        wakeNextWaiter()
    }

    /// Suspends until a slot may be free or the task is cancelled. The caller checks again.
    private func waitForSlot() async {
        let id = nextWaiterID
        nextWaiterID += 1
        await withTaskCancellationHandler {
            // The body runs on this actor up to the suspension, so the waiter is listed before
            // `cancelWaiter`, which needs the actor too, can run.
            await withCheckedContinuation { continuation in
                waiters.append((id, continuation))
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume()
    }

    private func wakeNextWaiter() {
        guard !waiters.isEmpty else { return }
        waiters.removeFirst().continuation.resume()
    }
}
