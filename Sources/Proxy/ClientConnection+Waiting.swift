import EventLoop

/// `concurrent: wait` (SPEC §4): a request whose key is in flight waits for the owner to
/// settle, woken by the owner on this instance or by a poll timer, then claims again.
extension ClientConnection {
    func startWaiting(_ guarded: GuardedExchange) {
        guarded.stage = .waiting
        if guarded.waitDeadline == 0 { guarded.waitDeadline = loop.now + guarded.policy.waitTimeoutMillis }
        if loop.now >= guarded.waitDeadline {
            guarded.stage = .settled
            countOutcome(.inFlight)
            answer(status: 409, type: .inFlight, detail: "a request with this Idempotency-Key is still being processed (waited wait_timeout)", retryAfter: 1)
            return
        }
        // Woken at once when the owner is on this instance; otherwise poll with back-off.
        let id = ObjectIdentifier(self)
        worker.waiters.add(key: guarded.storageKey, .init(id: id, loop: loop, wake: { [weak self] in self?.waitEnded(guarded) }))
        let delay = min(guarded.pollDelayMillis, guarded.waitDeadline - loop.now)
        guarded.pollDelayMillis = min(guarded.pollDelayMillis * 2, 500)
        loop.arm(leaseTimer, after: delay)
    }

    /// Woken by the owner or by the poll timer: claim again, which replays a completed record,
    /// takes over a released one, or keeps waiting.
    func waitEnded(_ guarded: GuardedExchange) {
        guard exchange.guarded === guarded, guarded.stage == .waiting else { return }
        worker.waiters.remove(key: guarded.storageKey, id: ObjectIdentifier(self))
        leaseTimer.cancel()
        guarded.stage = .claiming
        let policy = guarded.policy
        worker.store.claim(
            key: guarded.storageKey, owner: guarded.owner, fingerprint: guarded.fingerprint, lease: policy.lease,
            ttl: policy.ttl, expiredLease: policy.indeterminate
        ) { [self] result in
            if case .success(.existing(let record)) = result, record.state == .inFlight, record.fingerprint == guarded.fingerprint {
                startWaiting(guarded)
                return
            }
            claimFinished(guarded, result)
        }
    }
}
