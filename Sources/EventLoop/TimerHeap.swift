/// A one-shot timer owned by one event loop. Re-arming to a later deadline is O(1): the heap
/// keeps the earlier entry and, when it pops, pushes the timer again at its real deadline. That
/// keeps per-request timeouts (reset on every request of a keep-alive connection) cheap.
public final class Timer {
    /// Absolute deadline in monotonic milliseconds.
    public private(set) var deadline: UInt64 = 0
    public fileprivate(set) var isArmed = false
    fileprivate var generation: UInt32 = 0
    fileprivate var queuedDeadline: UInt64 = .max
    fileprivate var queued = false
    private(set) var action: () -> Void

    public init(_ action: @escaping () -> Void) {
        self.action = action
    }

    /// A timer whose action is given later with `onFire`: an owner can then hold it in a
    /// `let` (read on every request without the retain and release a `lazy var` costs) and
    /// still capture itself in the action once it is fully initialised.
    public init() {
        self.action = {}
    }

    public func onFire(_ action: @escaping () -> Void) {
        self.action = action
    }

    fileprivate func arm(at deadline: UInt64, heap: inout TimerHeap) {
        self.deadline = deadline
        isArmed = true
        // A live heap entry at or before the new deadline will re-queue us when it pops.
        if queued && queuedDeadline <= deadline { return }
        generation &+= 1
        queued = true
        queuedDeadline = deadline
        heap.push(TimerHeap.Entry(deadline: deadline, generation: generation, timer: self))
    }

    public func cancel() {
        isArmed = false
    }
}

/// Binary min-heap of timer entries with lazy deletion: cancelled or superseded entries are
/// dropped when they reach the top.
struct TimerHeap {
    struct Entry {
        var deadline: UInt64
        var generation: UInt32
        var timer: Timer
    }

    private var entries: [Entry] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    mutating func arm(_ timer: Timer, at deadline: UInt64) {
        timer.arm(at: deadline, heap: &self)
    }

    /// The earliest deadline that may fire, after discarding dead entries at the top.
    mutating func nextDeadline() -> UInt64? {
        while let top = entries.first {
            if isLive(top) { return top.deadline }
            _ = popTop()
        }
        return nil
    }

    /// Removes and returns the next timer due at `now`, or nil. The caller fires it before
    /// asking for the next one, so an action that cancels or re-arms another due timer is
    /// seen: a timer cancelled by an earlier action in the same tick never fires.
    mutating func popNextExpired(now: UInt64) -> Timer? {
        while let top = entries.first, top.deadline <= now {
            let entry = popTop()
            guard isLive(entry) else { continue }
            let timer = entry.timer
            timer.queued = false
            timer.queuedDeadline = .max
            if !timer.isArmed { continue }
            if timer.deadline > now {
                // Re-armed later while this entry was queued.
                timer.arm(at: timer.deadline, heap: &self)
                continue
            }
            timer.isArmed = false
            return timer
        }
        return nil
    }

    /// Every timer due at `now`, in deadline order (for tests; the loop fires one at a time).
    mutating func popExpired(now: UInt64, into due: inout [Timer]) {
        while let timer = popNextExpired(now: now) { due.append(timer) }
    }

    private func isLive(_ entry: Entry) -> Bool {
        entry.timer.queued && entry.generation == entry.timer.generation
    }

    mutating func push(_ entry: Entry) {
        entries.append(entry)
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if entries[parent].deadline <= entries[child].deadline { break }
            entries.swapAt(parent, child)
            child = parent
        }
    }

    private mutating func popTop() -> Entry {
        let top = entries[0]
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var parent = 0
            let n = entries.count
            while true {
                let left = 2 * parent + 1
                if left >= n { break }
                var smallest = left
                if left + 1 < n && entries[left + 1].deadline < entries[left].deadline { smallest = left + 1 }
                if entries[parent].deadline <= entries[smallest].deadline { break }
                entries.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}
