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

    func add(key: String, _ waiter: Waiter) {
        waiters.withLock { $0[key, default: []].append(waiter) }
    }

    func remove(key: String, id: ObjectIdentifier) {
        waiters.withLock { table in
            table[key]?.removeAll { $0.id == id }
            if table[key]?.isEmpty == true { table[key] = nil }
        }
    }

    /// Wakes (and forgets) every waiter for `key`.
    func notify(key: String) {
        let woken = waiters.withLock { $0.removeValue(forKey: key) } ?? []
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
