/// The instant at which one wait gives up: the earlier of a step timeout and the session's overall deadline.
///
/// Every blocking step of the transport builds a `WaitLimit` when it starts: connecting to one address,
/// waiting for bytes to read, or sending the whole output buffer. A step that times out then
/// reports which of the two limits expired.
public struct WaitLimit: Sendable, Equatable {
    /// The limit that sets `expiry`.
    public enum Source: Sendable, Equatable {
        case stepTimeout
        case overallDeadline
    }

    /// The instant at which the wait times out.
    public let expiry: ContinuousClock.Instant
    /// The limit that expires first. A deadline at the same instant as the step timeout counts as the
    /// step timeout.
    public let source: Source
    /// The step timeout the limit was built from, kept for error messages.
    public let stepTimeout: Duration

    /// Creates the limit for a step that starts at `start`.
    ///
    /// A negative `stepTimeout` counts as zero. A `deadline` of nil means the session has no overall
    /// deadline.
    public init(
        stepTimeout: Duration,
        deadline: ContinuousClock.Instant?,
        start: ContinuousClock.Instant = .now
    ) {
        let clampedTimeout = max(stepTimeout, .zero)
        let stepExpiry = start.advanced(by: clampedTimeout)
        self.stepTimeout = clampedTimeout
        if let deadline, deadline < stepExpiry {
            expiry = deadline
            source = .overallDeadline
        } else {
            expiry = stepExpiry
            source = .stepTimeout
        }
    }

    /// Returns the time left until `expiry`, or zero once it has passed.
    public func remaining(at now: ContinuousClock.Instant = .now) -> Duration {
        max(now.duration(to: expiry), .zero)
    }

    public func hasExpired(at now: ContinuousClock.Instant = .now) -> Bool {
        now >= expiry
    }

    /// Returns the time left as a poll(2) timeout in milliseconds, rounded up so that poll never returns
    /// before `expiry`, and capped at `Int32.max` (about 24 days).
    func pollTimeoutMilliseconds(at now: ContinuousClock.Instant = .now) -> Int32 {
        let components = remaining(at: now).components
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let (wholeMilliseconds, leftover) = components.attoseconds.quotientAndRemainder(
            dividingBy: attosecondsPerMillisecond
        )
        let fractionMilliseconds = wholeMilliseconds + (leftover > 0 ? 1 : 0)
        let (secondsInMilliseconds, overflow) = components.seconds.multipliedReportingOverflow(by: 1000)
        if overflow {
            return Int32.max
        }
        return Int32(clamping: secondsInMilliseconds + fractionMilliseconds)
    }
}
