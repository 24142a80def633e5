import Synchronization

/// A fixed number of atomic counters in one allocation, updated by index from any thread.
///
/// An array of one-atomic classes (the way to put non-copyable atomics in an array) makes
/// every update retain and release the element it touches: two atomic read-modify-writes of
/// reference counting around the one the update is for, on every request. Counters that never
/// move and are never removed need neither, so they live here behind a plain pointer.
public final class AtomicCounters: @unchecked Sendable {
    // @unchecked: the pointer is written once, in init; every later access is an atomic.
    private let base: UnsafeMutablePointer<Atomic<Int>>
    public let count: Int

    public init(count: Int) {
        precondition(count > 0)
        self.count = count
        base = .allocate(capacity: count)
        for index in 0..<count { (base + index).initialize(to: Atomic(0)) }
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    @inline(__always)
    public func add(_ amount: Int, at index: Int) {
        precondition(index >= 0 && index < count, "counter index out of range")
        base[index].add(amount, ordering: .relaxed)
    }

    public func value(at index: Int) -> Int {
        precondition(index >= 0 && index < count, "counter index out of range")
        return base[index].load(ordering: .relaxed)
    }
}
