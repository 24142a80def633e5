import Idempotency
import Synchronization

/// A monotonic clock that stands still until a test moves it, for a store whose leases must run
/// out now: `MemoryStore(clock: { clock.nowMillis })`.
public final class ManualClock: Sendable {
    private let base = MonotonicClock.nowMillis()
    private let offset = Atomic<UInt64>(0)

    public init() {}

    public var nowMillis: UInt64 { base + offset.load(ordering: .relaxed) }

    public func advance(millis: UInt64) { offset.add(millis, ordering: .relaxed) }
}
