import Glibc
import Synchronization

/// A flag that cancels the transport's waits from any thread.
///
/// The signal owns an eventfd that every wait of the transport polls beside its socket, so `cancel()`
/// wakes a blocked read, write or connect at once instead of at its timeout. The eventfd is written once
/// and never read, so it stays readable and wakes every later wait as well. A signal cannot be reset:
/// create a new one for the next session.
public final class CancellationSignal: Sendable {
    /// The eventfd, readable once `cancel()` has been called. Closed by deinit.
    let descriptor: Int32
    private let cancelled = Atomic<Bool>(false)

    /// Creates a signal that has not been cancelled.
    ///
    /// - Throws: `TransportError.systemCallFailed` when the process cannot create an eventfd, for
    ///   example because it has reached its limit of open descriptors.
    public init() throws {
        guard let eventfd = CancellationSignal.eventfdFunction else {
            throw TransportError.systemCall("eventfd", errno: ENOSYS)
        }
        // EFD_CLOEXEC and EFD_NONBLOCK equal O_CLOEXEC and O_NONBLOCK on Linux (sys/eventfd.h).
        let descriptor = eventfd(0, O_CLOEXEC | O_NONBLOCK)
        if descriptor < 0 {
            throw TransportError.systemCall("eventfd", errno: errno)
        }
        self.descriptor = descriptor
    }

    private typealias EventfdFunction = @convention(c) (UInt32, Int32) -> Int32

    /// glibc's eventfd(2) wrapper, looked up at run time because Swift's Glibc module does not import
    /// sys/eventfd.h.
    private static let eventfdFunction: EventfdFunction? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "eventfd") else {
            return nil
        }
        return unsafeBitCast(symbol, to: EventfdFunction.self)
    }()

    deinit {
        Glibc.close(descriptor)
    }

    public var isCancelled: Bool {
        cancelled.load(ordering: .acquiring)
    }

    /// Cancels the waits of every connection that uses this signal. Safe to call from any thread, any
    /// number of times.
    public func cancel() {
        let (exchanged, _) = cancelled.compareExchange(
            expected: false,
            desired: true,
            ordering: .acquiringAndReleasing
        )
        guard exchanged else {
            return
        }
        // Only the first cancel() writes, so the counter stays at 1 and the write cannot block.
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { buffer in
            Glibc.write(descriptor, buffer.baseAddress, buffer.count)
        }
    }
}
