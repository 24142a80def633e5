import EventLoop
import Synchronization

/// Requests parked under `concurrent: wait`, by storage key, across all loops of this process.
/// When the owner settles a record it calls `notify`, and every waiter is woken on its own
/// loop at once; waiters for owners on other instances poll the store instead.
final class InFlightWaiters: Sendable {
    struct Waiter: @unchecked Sendable {
        let id: ObjectIdentifier
        let loop: EventLoop
        /// Runs on `loop`; holds the waiting connection weakly.
        let wake: () -> Void
    }

    private let waiters = Mutex<[String: [Waiter]]>([:])
    /// How many waiters are registered, read without the lock: settling a record when nobody
    /// waits (the common case) then costs one atomic load, not a lock and a hash lookup.
    private let registered = Atomic<Int>(0)

    func add(key: String, _ waiter: Waiter) {
        // Counted inside the lock: a notify that runs right after must see the waiter.
        waiters.withLock { table in
            table[key, default: []].append(waiter)
            registered.add(1, ordering: .releasing)
        }
    }

    func remove(key: String, id: ObjectIdentifier) {
        guard registered.load(ordering: .acquiring) > 0 else { return }
        let removed = waiters.withLock { table -> Int in
            let before = table[key]?.count ?? 0
            table[key]?.removeAll { $0.id == id }
            let after = table[key]?.count ?? 0
            if after == 0 { table[key] = nil }
            return before - after
        }
        if removed > 0 { registered.subtract(removed, ordering: .releasing) }
    }

    /// Wakes (and forgets) every waiter for `key`.
    func notify(key: String) {
        guard registered.load(ordering: .acquiring) > 0 else { return }
        let woken = waiters.withLock { $0.removeValue(forKey: key) } ?? []
        if !woken.isEmpty { registered.subtract(woken.count, ordering: .releasing) }
        for waiter in woken {
            let wake = waiter.wake
            waiter.loop.execute(UncheckedTask(wake).run)
        }
    }
}

/// Carries a loop-confined closure to that same loop through `execute`.
struct UncheckedTask: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
    var run: @Sendable () -> Void { { [self] in body() } }
}
