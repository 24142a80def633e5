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
/// retried with back-off, and at once after a reconnect, until the store answers:
/// - `true`: written (a retried write that finds its own earlier attempt applied says so too);
/// - `false`: the compare-and-set found the record gone or owned by someone else, which
///   proves the lease was lost (logged and counted).
/// Meanwhile the owner keeps refreshing its lease on its own timer (a quarter of `lease`), so a
/// long blip or a slow store does not cost it the claim.
///
/// It also releases claims whose reply was lost (SPEC §4, "the claim's reply is lost"): such a
/// claim may or may not exist, and releasing it is a compare-and-set on our owner token, so it
/// is retried the same way until the store answers.
///
/// The work lives here, per loop, not on the client connection: the client already has its
/// response and may be gone. A write is tracked from its first attempt, so graceful shutdown
/// waits for it. Pending writes are bounded: at most `maxPending` of them, and at most
/// `maxPendingBodyBytes` of response bodies (past that a completion is stored without its body,
/// so retries get `replay-unavailable` naming the status: the outcome survives, the copy does
/// not). Past the count bound a write is abandoned, logged and counted.
final class RecordSettler {
    enum Action {
        case complete(StoredResponse, ttl: Duration)
        case release
        case markUnknown(ttl: Duration)
    }

    /// Why the write is made, which decides what a refused compare-and-set means.
    enum Origin {
        /// The owner settles a claim it held: `false` means its lease was lost. The exchange
        /// carries the one "lease lost" flag that a refresh may already have set.
        case owner(GuardedExchange)
        /// A claim whose reply was lost: it may never have been written, so `false` is normal.
        case lostClaimReply
    }

    private final class Pending {
        let key: String
        let owner: [UInt8]
        let action: Action
        let origin: Origin
        let lease: Duration
        let bodyBytes: Int
        var backoffMillis: UInt64 = RecordSettler.firstBackoffMillis
        var attempts = 0
        /// An attempt is with the store; no second one may start until it answers.
        var attemptOutstanding = false
        /// An earlier attempt may have been applied (its reply was lost): a release that now
        /// finds nothing may be finding its own earlier success, not a lost lease.
        var mayHaveBeenApplied = false
        var retryTimer: Timer?
        var refreshTimer: Timer?
        /// Counted in `pending` (it outlived its first, synchronous chance to finish).
        var registered = false
        var finished = false

        init(key: String, owner: [UInt8], action: Action, origin: Origin, lease: Duration, bodyBytes: Int) {
            self.key = key
            self.owner = owner
            self.action = action
            self.origin = origin
            self.lease = lease
            self.bodyBytes = bodyBytes
        }

        var operation: String {
            switch action {
            case .complete: return "complete"
            case .release: return "release"
            case .markUnknown: return "mark_unknown"
            }
        }

        var exchange: GuardedExchange? {
            if case .owner(let exchange) = origin { return exchange }
            return nil
        }
    }

    static let firstBackoffMillis: UInt64 = 25
    static let maxBackoffMillis: UInt64 = 1000
    static let maxPending = 10_000
    static let maxPendingBodyBytes = 64 << 20

    private let loop: EventLoop
    private let store: any IdempotencyStore
    private let metrics: ProxyMetrics
    private let waiters: InFlightWaiters
    private let log: Log
    private var pending: [ObjectIdentifier: Pending] = [:]
    private var pendingBodyBytes = 0
    /// Called when the last pending write finished (graceful shutdown waits for it).
    var onIdle: (() -> Void)?

    init(loop: EventLoop, store: any IdempotencyStore, metrics: ProxyMetrics, waiters: InFlightWaiters, log: Log) {
        self.loop = loop
        self.store = store
        self.metrics = metrics
        self.waiters = waiters
        self.log = log
    }

    deinit {
        // Their timers capture this settler unretained; only registered writes have timers.
        for write in pending.values {
            write.retryTimer?.cancel()
            write.refreshTimer?.cancel()
        }
    }

    /// Writes not yet acknowledged by the store (including first attempts under way).
    var pendingCount: Int { pending.count }

    /// Starts writing `action` for the claim `key`/`owner`; the first attempt is made now.
    func settle(key: String, owner: [UInt8], action: Action, origin: Origin, lease: Duration) {
        guard pending.count < Self.maxPending else {
            metrics.abandonedStoreWrites.add(1, ordering: .relaxed)
            log.error("store write abandoned: too many writes waiting for the store", ["pending": "\(pending.count)", "store_key": key])
            waiters.notify(key: key)
            return
        }
        var action = action
        var bodyBytes = 0
        if case .complete(var response, let ttl) = action {
            if pendingBodyBytes + response.bodyCount > Self.maxPendingBodyBytes {
                // Keep the outcome, drop the copy: retries get replay-unavailable (status named)
                // rather than a second execution, and memory stays bounded during an outage.
                log.warning("store writes are backing up; storing a response without its body", [
                    "store_key": key, "pending_body_bytes": "\(pendingBodyBytes)",
                ])
                response.body = []
                response.bodyOmitted = true
                action = .complete(response, ttl: ttl)
            }
            bodyBytes = response.bodyCount
        }
        // A store that answers at once (the memory store) needs no pending write: the outcome is
        // known here, and nothing is allocated to track it.
        if case .complete(let response, let ttl) = action {
            let started = EventLoop.monotonicNanos()
            if let written = store.completeNow(key: key, owner: owner, response: response, ttl: ttl) {
                metrics.storeCompleteDuration.observe(nanoseconds: EventLoop.monotonicNanos() &- started)
                if !written, case .owner(let exchange) = origin { leaseLost(exchange, key: key, while: "storing the outcome") }
                waiters.notify(key: key)
                return
            }
        }
        let write = Pending(key: key, owner: owner, action: action, origin: origin, lease: lease, bodyBytes: bodyBytes)
        if case .lostClaimReply = origin { metrics.deferredReleases.add(1, ordering: .relaxed) }
        attempt(write)
        // A store that answers at once (the memory store) is done here, and such a write costs
        // no bookkeeping; one that answers later is tracked until it does.
        if !write.finished { register(write) }
    }

    private func register(_ write: Pending) {
        guard !write.registered else { return }
        write.registered = true
        pending[ObjectIdentifier(write)] = write
        pendingBodyBytes += write.bodyBytes
        metrics.pendingStoreWrites.add(1, ordering: .relaxed)
    }

    /// The store is reachable again (a reconnect): every waiting write is tried now rather
    /// than at its back-off deadline, because each moment a completion waits is a moment its
    /// lease may run out.
    func retryNow() {
        for write in pending.values where !write.attemptOutstanding && !write.finished {
            write.retryTimer?.cancel()
            write.backoffMillis = Self.firstBackoffMillis
            if write.exchange != nil { refresh(write) }
            attempt(write)
        }
    }

    private func attempt(_ write: Pending) {
        write.attempts += 1
        write.attemptOutstanding = true
        let started = EventLoop.monotonicNanos()
        // Strong: the settler lives as long as its worker, and a weak reference would give it a
        // side table, making every retain of it slow on every request.
        let finished: (Result<Bool, StoreError>) -> Void = { result in
            write.attemptOutstanding = false
            if case .complete = write.action {
                self.metrics.storeCompleteDuration.observe(nanoseconds: EventLoop.monotonicNanos() &- started)
            }
            switch result {
            case .success(let written):
                // `false` for a lost claim reply only means the claim was never written; for an
                // owner it means the lease is gone (counted once, maybe already by a refresh).
                if !written, let exchange = write.exchange, !write.mayHaveBeenApplied {
                    self.leaseLost(exchange, key: write.key, while: "storing the outcome")
                }
                if written && write.attempts > 1 {
                    self.log.info("store write succeeded after retrying", ["attempts": "\(write.attempts)", "operation": write.operation])
                }
                self.finish(write)
            case .failure(let error):
                if error.mayHaveBeenApplied { write.mayHaveBeenApplied = true }
                self.retryLater(write, after: error)
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

    private func retryLater(_ write: Pending, after error: StoreError) {
        guard !write.finished else { return }
        register(write)
        // From the first failure on, the owner keeps its lease on its own timer.
        if write.exchange != nil && write.refreshTimer == nil { armRefresh(write) }
        metrics.storeWriteRetries.add(1, ordering: .relaxed)
        if write.attempts == 1 {
            log.warning("store write failed; retrying until stored or the lease is lost", ["operation": write.operation, "error": "\(error)"])
        }
        let delay = write.backoffMillis
        // Never wait longer than a quarter lease between attempts.
        write.backoffMillis = min(write.backoffMillis * 2, Self.maxBackoffMillis, max(write.lease.milliseconds / 4, Self.firstBackoffMillis))
        // Unretained settler: it outlives its loop's timers (both belong to the worker).
        let timer = write.retryTimer ?? Timer { [unowned(unsafe) self, weak write] in
            guard let write, !write.attemptOutstanding, !write.finished else { return }
            self.attempt(write)
        }
        write.retryTimer = timer
        loop.arm(timer, after: delay)
    }

    /// An owner keeps its lease while its write is pending, on its own timer: a write attempt
    /// may be slow or back off for longer than the lease could survive without a refresh.
    private func armRefresh(_ write: Pending) {
        let timer = write.refreshTimer ?? Timer { [unowned(unsafe) self, weak write] in
            guard let write else { return }
            self.refresh(write)
            self.armRefresh(write)
        }
        write.refreshTimer = timer
        loop.arm(timer, after: max(write.lease.milliseconds / 4, 50))
    }

    private func refresh(_ write: Pending) {
        guard let exchange = write.exchange else { return }
        store.refreshLease(key: write.key, owner: write.owner, lease: write.lease, ttl: exchange.policy.ttl) { result in
            // `false` is not proof while the write itself may already have been applied (the
            // record is then completed or unknown, no longer in flight).
            guard case .success(false) = result, !write.mayHaveBeenApplied, !write.finished else { return }
            self.leaseLost(exchange, key: write.key, while: "refreshing the lease of a pending write")
        }
    }

    private func finish(_ write: Pending) {
        guard !write.finished else { return }
        write.finished = true
        write.retryTimer?.cancel()
        write.retryTimer = nil
        write.refreshTimer?.cancel()
        write.refreshTimer = nil
        waiters.notify(key: write.key)
        guard write.registered, pending.removeValue(forKey: ObjectIdentifier(write)) != nil else { return }
        pendingBodyBytes -= write.bodyBytes
        metrics.pendingStoreWrites.subtract(1, ordering: .relaxed)
        if pending.isEmpty { onIdle?() }
    }

    /// Shutdown's grace ran out with writes still pending: say which, since their records
    /// will behave like a dead owner's claims.
    func logAbandonedAtShutdown() {
        guard !pending.isEmpty else { return }
        log.error("shutting down with store writes still pending; their records stay in flight until their leases expire", [
            "pending": "\(pending.count)",
        ])
    }

    /// A compare-and-set found our record gone or taken over: logged and counted once per
    /// exchange (SPEC §4).
    func leaseLost(_ exchange: GuardedExchange, key: String, while doing: String) {
        guard !exchange.leaseLost else { return }
        exchange.leaseLost = true
        metrics.lostLeases.add(1, ordering: .relaxed)
        log.warning("lease lost: the record was gone or owned by another request while \(doing)", ["store_key": key])
    }
}
