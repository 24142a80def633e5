import Testing
@testable import Idempotency

private let fingerprint = SHA256Hasher.hash("A")

/// SPEC §4: a record never expires before its lease deadline; SPEC §6: the memory store is
/// bounded by `max_bytes` and never evicts a live record to make room.
@Suite struct MemoryStoreBoundsTests {
    let clock = ManualClock()
    let owner = OwnerToken.random()

    func claimResult(_ store: MemoryStore, _ key: String, lease: Duration = .seconds(1), ttl: Duration = .seconds(60)) -> Result<ClaimOutcome, StoreError> {
        var result: Result<ClaimOutcome, StoreError>?
        store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl, expiredLease: .hold) { result = $0 }
        return result!
    }

    @Test func aRefreshedLeaseOutlivesTheTTL() {
        let store = MemoryStore(clock: clock.function)
        #expect(store.claimNow("k", owner: owner, fingerprint: fingerprint, lease: .seconds(1), ttl: .seconds(2)) == .claimed)
        // Refreshed every half second for 4 s: the key must still be ours at +4 s, past ttl.
        for _ in 0..<8 {
            clock.advance(.milliseconds(500))
            #expect(store.refreshNow("k", owner: owner, lease: .seconds(1)))
        }
        guard case .existing(let record) = store.claimNow("k", owner: OwnerToken.random(), fingerprint: fingerprint) else {
            Issue.record("the claim expired while its owner kept refreshing it")
            return
        }
        #expect(record.state == .inFlight)
        #expect(record.owner == owner)
    }

    @Test func aLeaseLongerThanTheTTLKeepsTheKey() {
        let store = MemoryStore(clock: clock.function)
        #expect(store.claimNow("k", owner: owner, fingerprint: fingerprint, lease: .seconds(10), ttl: .seconds(2)) == .claimed)
        clock.advance(.seconds(5))
        #expect(store.getNow("k")?.state == .inFlight)
    }

    @Test func claimsStopAtTheBoundAndNothingIsEvicted() {
        let store = MemoryStore(maxBytes: 64 << 10, clock: clock.function)
        var claimed: [String] = []
        var full = false
        for index in 0..<10_000 {
            let key = "key-\(index)"
            switch claimResult(store, key) {
            case .success(.claimed):
                claimed.append(key)
                #expect(store.completeNow(key, owner: owner, response: StoredResponse(status: 201, body: Array(repeating: 7, count: 1000)), ttl: .seconds(60)))
            case .failure(.full):
                full = true
            default:
                Issue.record("unexpected claim result")
            }
            if full { break }
        }
        #expect(full)
        #expect(claimed.count > 20 && claimed.count < 64)
        // Completions are always stored, so the bound can be passed by at most the responses of
        // claims already made (here one claim is in flight at a time): its stored bytes.
        let oneResponse = StoredResponse(status: 201, body: Array(repeating: 7, count: 1000)).storedBytes
        #expect(store.usedBytes <= (64 << 10) + oneResponse)
        // Every earlier record is still there (nothing evicted), and a completed one replays.
        for key in claimed { #expect(store.getNow(key)?.state == .completed) }
        // Freed space (expiry) makes room again.
        clock.advance(.seconds(61))
        #expect(store.sweep() == claimed.count)
        #expect(store.usedBytes == 0)
        #expect(store.claimNow("again", owner: owner, fingerprint: fingerprint) == .claimed)
    }

    @Test func releasingAndExpiringGiveBytesBack() {
        let store = MemoryStore(maxBytes: 1 << 20, clock: clock.function)
        #expect(store.claimNow("a", owner: owner, fingerprint: fingerprint, lease: .seconds(1), ttl: .seconds(10)) == .claimed)
        let afterClaim = store.usedBytes
        #expect(afterClaim > MemoryStore.recordOverhead)
        #expect(store.releaseNow("a", owner: owner))
        #expect(store.usedBytes == 0)
        #expect(store.claimNow("b", owner: owner, fingerprint: fingerprint, lease: .seconds(1), ttl: .seconds(10)) == .claimed)
        #expect(store.completeNow("b", owner: owner, response: StoredResponse(status: 200, body: Array(repeating: 1, count: 5000)), ttl: .seconds(10)))
        #expect(store.usedBytes >= afterClaim + 5000)
        clock.advance(.seconds(11))
        #expect(store.getNow("b") == nil)  // lazy expiry gives the bytes back too
        #expect(store.usedBytes == 0)
    }
}

/// A write retried after a lost reply succeeds for its owner only (the Redis scripts' contract).
@Suite struct MemoryStoreRetriedWriteTests {
    let clock = ManualClock()
    let owner = OwnerToken.random()
    let stranger = OwnerToken.random()

    @Test func retriedCompletionAndMark() {
        let store = MemoryStore(clock: clock.function)
        let response = StoredResponse(status: 201)
        #expect(store.claimNow("c", owner: owner, fingerprint: fingerprint) == .claimed)
        #expect(store.completeNow("c", owner: owner, response: response))
        #expect(store.completeNow("c", owner: owner, response: response))
        #expect(!store.completeNow("c", owner: stranger, response: response))
        #expect(!store.markUnknownNow("c", owner: owner))
        #expect(store.claimNow("u", owner: owner, fingerprint: fingerprint) == .claimed)
        #expect(store.markUnknownNow("u", owner: owner))
        #expect(store.markUnknownNow("u", owner: owner))
        #expect(!store.completeNow("u", owner: owner, response: response))
    }
}
