import EventLoop
import Idempotency

/// Writes the end of a claim to the store, retrying through store faults (SPEC §4: "the
/// outcome is stored or the lease is lost, nothing else").
///
/// Once the upstream has answered (or failed), the owner must turn its `in_flight` record into
/// `completed`, remove it, or mark it `unknown`. A store blip at that moment (a dropped
/// connection, a timed-out command, a failover) must not leave the record in flight: it would
/// turn `unknown` when its lease ran out (retries held for the whole `ttl`), and under
/// `indeterminate: release` a retry would execute the request a second time. So each write is
/// retried with back-off, across reconnects, until the store answers:
/// - `true`: written;
/// - `false`: the compare-and-set found the record gone or owned by someone else, which
///   proves the lease was lost (logged and counted);
/// while the owner keeps refreshing its lease between attempts, so a long blip does not cost
/// it the claim.
///
/// It also releases claims whose reply was lost (SPEC §4, "the claim's reply is lost"): such a
/// claim may or may not exist, and releasing it is a compare-and-set on our owner token, so it
/// is retried the same way until the store answers.
///
/// The work lives here, per loop, not on the client connection: the client already has its
/// response and may be gone. Pending writes are bounded (`maxPending`); past the bound a write
/// is abandoned, logged and counted, rather than letting a long outage grow memory without
/// limit.
final class RecordSettler {
    enum Action {
        case complete(StoredResponse, ttl: Duration)
        case release
        case markUnknown(ttl: Duration)
    }

    /// Why the write is made, which decides what a refused compare-and-set means.
    enum Origin {
        /// The owner settles a claim it held: `false` means its lease was lost.
        case owner(leaseKnownLost: Bool)
        /// A claim whose reply was lost: it may never have been written, so `false` is normal.
        case lostClaimReply
    }

    private final class Pending {
        let key: String
        let owner: [UInt8]
        let action: Action
        let origin: Origin
        let lease: Duration
        var backoffMillis: UInt64 = RecordSettler.firstBackoffMillis
        var attempts = 0
        /// An earlier attempt may have been applied (its reply was lost): a release that now
        /// finds nothing may be finding its own earlier success, not a lost lease.
        var mayHaveBeenApplied = false
        var timer: Timer?

        init(key: String, owner: [UInt8], action: Action, origin: Origin, lease: Duration) {
            self.key = key
            self.owner = owner
            self.action = action
            self.origin = origin
            self.lease = lease
        }

        var operation: String {
            switch action {
            case .complete: return "complete"
            case .release: return "release"
            case .markUnknown: return "mark_unknown"
            }
        }
    }

    static let firstBackoffMillis: UInt64 = 25
    static let maxBackoffMillis: UInt64 = 1000
    static let maxPending = 10_000

    private let loop: EventLoop
    private let store: any IdempotencyStore
    private let metrics: ProxyMetrics
    private let waiters: InFlightWaiters
    private let log: Log
    private var pending: [ObjectIdentifier: Pending] = [:]
    /// Called when the last pending write finished (graceful shutdown waits for it).
    var onIdle: (() -> Void)?

    init(loop: EventLoop, store: any IdempotencyStore, metrics: ProxyMetrics, waiters: InFlightWaiters, log: Log) {
        self.loop = loop
        self.store = store
        self.metrics = metrics
        self.waiters = waiters
        self.log = log
    }

    var pendingCount: Int { pending.count }

    /// Starts writing `action` for the claim `key`/`owner`; the first attempt is made now.
    func settle(key: String, owner: [UInt8], action: Action, origin: Origin, lease: Duration) {
        let write = Pending(key: key, owner: owner, action: action, origin: origin, lease: lease)
        if case .lostClaimReply = origin { metrics.deferredReleases.add(1, ordering: .relaxed) }
        attempt(write)
    }

    private func attempt(_ write: Pending) {
        write.attempts += 1
        let id = ObjectIdentifier(write)
        let started = EventLoop.monotonicNanos()
        let finished: (Result<Bool, StoreError>) -> Void = { [weak self] result in
            guard let self else { return }
            if case .complete = write.action {
                self.metrics.storeCompleteDuration.observe(nanoseconds: EventLoop.monotonicNanos() &- started)
            }
            switch result {
            case .success(let written):
                // `false` for a lost claim reply only means the claim was never written; for an
                // owner it means the lease is gone (counted once, maybe already by a refresh).
                if !written, case .owner(let alreadyCounted) = write.origin, !alreadyCounted, !write.mayHaveBeenApplied {
                    self.leaseLost(key: write.key, while: "storing the outcome")
                }
                if written && write.attempts > 1 {
                    self.log.info("store write succeeded after retrying", ["attempts": "\(write.attempts)", "operation": write.operation])
                }
                self.finish(write, id: id)
            case .failure(let error):
                if error.mayHaveBeenApplied { write.mayHaveBeenApplied = true }
                self.retryLater(write, id: id, after: error)
            }
        }
        switch write.action {
        case .complete(let response, let ttl):
            store.complete(key: write.key, owner: write.owner, response: response, ttl: ttl, completion: finished)
        case .release:
            store.release(key: write.key, owner: write.owner, completion: finished)
        case .markUnknown(let ttl):
            store.markUnknown(key: write.key, owner: write.owner, ttl: ttl, completion: finished)
        }
    }

    /// The store is reachable again (a reconnect): every waiting write is tried now rather
    /// than at its back-off deadline, because each moment a completion waits is a moment its
    /// lease may run out.
    func retryNow() {
        for write in pending.values {
            write.timer?.cancel()
            write.backoffMillis = Self.firstBackoffMillis
            attempt(write)
        }
    }

    private func retryLater(_ write: Pending, id: ObjectIdentifier, after error: StoreError) {
        if pending[id] == nil {
            guard pending.count < Self.maxPending else {
                metrics.abandonedStoreWrites.add(1, ordering: .relaxed)
                log.error("store write abandoned: too many writes waiting for the store", [
                    "operation": write.operation, "pending": "\(pending.count)", "error": "\(error)",
                ])
                waiters.notify(key: write.key)
                return
            }
            pending[id] = write
            metrics.pendingStoreWrites.add(1, ordering: .relaxed)
        }
        metrics.storeWriteRetries.add(1, ordering: .relaxed)
        if write.attempts == 1 {
            log.warning("store write failed; retrying until stored or the lease is lost", ["operation": write.operation, "error": "\(error)"])
        }
        // Keep the claim while the store is being retried: the lease would otherwise run out
        // during a long blip and the record would turn unknown under us.
        if case .owner = write.origin, write.action.keepsLease {
            store.refreshLease(key: write.key, owner: write.owner, lease: write.lease) { _ in }
        }
        let delay = write.backoffMillis
        write.backoffMillis = min(write.backoffMillis * 2, Self.maxBackoffMillis)
        let timer = write.timer ?? Timer { [weak self, weak write] in
            guard let self, let write else { return }
            self.attempt(write)
        }
        write.timer = timer
        loop.arm(timer, after: delay)
    }

    private func finish(_ write: Pending, id: ObjectIdentifier) {
        write.timer?.cancel()
        write.timer = nil
        if pending.removeValue(forKey: id) != nil {
            metrics.pendingStoreWrites.subtract(1, ordering: .relaxed)
        }
        waiters.notify(key: write.key)
        if pending.isEmpty { onIdle?() }
    }

    /// A compare-and-set found our record gone or taken over: logged and counted (SPEC §4).
    func leaseLost(key: String, while doing: String) {
        metrics.lostLeases.add(1, ordering: .relaxed)
        log.warning("lease lost: the record was gone or owned by another request while \(doing)", ["store_key": key])
    }
}

extension RecordSettler.Action {
    /// An owner settling with these still holds a claim worth keeping alive between attempts.
    var keepsLease: Bool {
        switch self {
        case .complete, .markUnknown: return true
        case .release: return false
        }
    }
}
