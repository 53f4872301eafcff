import Foundation

/// When to try a message again after a temporary failure, and when to give up.
///
/// The delay doubles with each attempt, from `initialDelay` up to `maximumDelay`, and is spread by up
/// to `jitter` either way, so that messages deferred together are not all retried in the same
/// second. A message still undelivered `maximumAge` after it entered the Outbox fails.
public struct RetryPolicy: Sendable, Hashable {
    /// The delay after the first failed attempt. Default: 5 minutes.
    public var initialDelay: TimeInterval
    /// The maximum delay between attempts. Default: 1 hour.
    public var maximumDelay: TimeInterval
    /// How long a message may wait in the Outbox before it fails. Default: 5 days, as in Postfix.
    public var maximumAge: TimeInterval
    /// The fraction by which each delay is randomly lengthened or shortened. Default: 0.1.
    public var jitter: Double

    public init(
        initialDelay: TimeInterval = 300, maximumDelay: TimeInterval = 3600,
        maximumAge: TimeInterval = 5 * 86400, jitter: Double = 0.1
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.maximumAge = maximumAge
        self.jitter = jitter
    }

    /// Returns the delay before the next attempt, after `attempts` failed attempts (1 for the first).
    public func delay(afterAttempts attempts: Int) -> TimeInterval {
        let exponent = Double(max(0, min(attempts - 1, 30)))
        let base = min(maximumDelay, initialDelay * pow(2, exponent))
        guard jitter > 0 else { return base }
        let spread = base * min(jitter, 1)
        return max(0, base + Double.random(in: -spread...spread))
    }

    /// Returns whether a message that entered the Outbox at `queued` has waited too long to be tried again.
    public func hasExpired(queued: Date, now: Date) -> Bool {
        now.timeIntervalSince(queued) >= maximumAge
    }
}
