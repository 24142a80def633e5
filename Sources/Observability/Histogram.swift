import Synchronization

/// A Prometheus histogram with fixed buckets, updated lock-free from any loop thread.
/// Buckets are cumulative only when exposed; each observation increments exactly one slot.
public final class Histogram: Sendable {
    /// Upper bounds in seconds, ascending; +Inf is implicit.
    public let bounds: [Double]
    /// `bounds` in whole nanoseconds, so an observation is placed with integer compares (and a
    /// value exactly on a bound counts in that bound's bucket, as `le` says).
    private let nanosecondBounds: [UInt64]
    /// One count per bucket, the last for +Inf.
    private let slots: AtomicCounters
    private let sumNanos = Atomic<Int>(0)

    /// Latency buckets from 100 µs to 10 s: proxy-side store calls sit at the low end,
    /// upstream calls anywhere.
    public static let latencyBounds: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init(bounds: [Double] = Histogram.latencyBounds) {
        self.bounds = bounds
        nanosecondBounds = bounds.map { UInt64(($0 * 1e9).rounded()) }
        slots = AtomicCounters(count: bounds.count + 1)
    }

    public func observe(nanoseconds: UInt64) {
        var index = 0
        let count = nanosecondBounds.count
        while index < count && nanoseconds > nanosecondBounds[index] { index &+= 1 }
        slots.add(1, at: index)
        sumNanos.add(Int(clamping: nanoseconds), ordering: .relaxed)
    }

    /// Cumulative counts per bound (the last is +Inf), the total, and the sum in seconds.
    public func snapshot() -> (cumulative: [Int], count: Int, sum: Double) {
        var running = 0
        var cumulative: [Int] = []
        for index in 0..<slots.count {
            running += slots.value(at: index)
            cumulative.append(running)
        }
        return (cumulative, running, Double(sumNanos.load(ordering: .relaxed)) / 1e9)
    }
}
