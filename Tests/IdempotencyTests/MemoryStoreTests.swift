import Synchronization
import Testing
@testable import Idempotency

private let fpA = SHA256Hasher.hash("A")
private let fpB = SHA256Hasher.hash("B")
private let ok = StoredResponse(status: 200, headers: [HeaderPair(name: "Content-Type", value: "text/plain")], body: bytes("ok"))

@Suite struct MemoryStoreTests {
    let clock = ManualClock()
    let store: MemoryStore
    let alice = OwnerToken.random()
    let bob = OwnerToken.random()

    init() {
        store = MemoryStore(clock: clock.function)
    }

    @Test func firstClaimWinsThenExisting() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, lease: .seconds(30)) == .claimed)
        guard case .existing(let record) = store.claimNow("k", owner: bob, fingerprint: fpA) else {
            Issue.record("expected the existing record")
            return
        }
        #expect(record.state == .inFlight)
        #expect(record.owner == alice)
        #expect(record.fingerprint == fpA)
        #expect(record.leaseDeadlineMillis == clock.now + 30_000)
        // A different key is independent.
        #expect(store.claimNow("other", owner: bob, fingerprint: fpB) == .claimed)
    }

    /// The proxy reaches the store as `any IdempotencyStore` and asks `claimNow`/`completeNow`
    /// first: the memory store must answer them through the protocol (a method of another
    /// signature would not be its witness, and every request would take the closure path).
    @Test func answersAtOnceThroughTheProtocol() {
        let any: any IdempotencyStore = store
        let claimed = any.claimNow(key: "now", owner: alice, fingerprint: fpA, lease: .seconds(30), ttl: .seconds(60), expiredLease: .hold)
        #expect(claimed == .success(.claimed))
        #expect(any.completeNow(key: "now", owner: bob, response: ok, ttl: .seconds(60)) == false)
        #expect(any.completeNow(key: "now", owner: alice, response: ok, ttl: .seconds(60)) == true)
        guard case .success(.existing(let record))? = any.claimNow(
            key: "now", owner: bob, fingerprint: fpA, lease: .seconds(30), ttl: .seconds(60), expiredLease: .hold) else {
            Issue.record("expected the completed record")
            return
        }
        #expect(record.state == .completed && record.response == ok)
    }

    /// A key given as bytes finds the record its String claimed, without asking for the String;
    /// a new key is stored under the String, never under the caller's bytes, which the caller
    /// overwrites with the next request's key.
    @Test func aKeyGivenAsBytesIsFoundInPlaceAndNeverStoredAsBytes() {
        let any: any IdempotencyStore = store
        func claim(_ buffer: inout [UInt8], _ text: String, textCalls: inout Int, owner: [UInt8]) -> Result<ClaimOutcome, StoreError>? {
            buffer.removeAll(keepingCapacity: true)
            buffer.append(contentsOf: text.utf8)
            return buffer.withUnsafeBytes { bytes in
                any.claimNow(
                    storageKey: bytes, text: { textCalls += 1; return text }, owner: owner, fingerprint: fpA, lease: .seconds(30),
                    ttl: .seconds(60), expiredLease: .hold)
            }
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64)
        var textCalls = 0
        // New keys: each is stored under its own text, asked for once.
        #expect(claim(&buffer, "idem:{aaaa}", textCalls: &textCalls, owner: alice) == .success(.claimed))
        #expect(claim(&buffer, "idem:{bbbb}", textCalls: &textCalls, owner: bob) == .success(.claimed))
        #expect(textCalls == 2)
        // The buffer now holds the second key; the first is still found by its String, and owned by alice.
        #expect(store.getNow("idem:{aaaa}")?.owner == alice)
        #expect(store.getNow("idem:{bbbb}")?.owner == bob)
        #expect(store.completeNow("idem:{aaaa}", owner: alice, response: ok) == true)
        // Existing keys, completed or in flight: found from the bytes alone.
        guard case .success(.existing(let completed))? = claim(&buffer, "idem:{aaaa}", textCalls: &textCalls, owner: bob) else {
            Issue.record("expected the completed record")
            return
        }
        #expect(completed.state == .completed && completed.response == ok)
        guard case .success(.existing(let inFlight))? = claim(&buffer, "idem:{bbbb}", textCalls: &textCalls, owner: alice) else {
            Issue.record("expected the record in flight")
            return
        }
        #expect(inFlight.state == .inFlight && inFlight.owner == bob)
        #expect(textCalls == 2)
        // An expired record is replaced under the table's own key: still found by String afterwards.
        clock.advance(.seconds(3600))
        #expect(claim(&buffer, "idem:{aaaa}", textCalls: &textCalls, owner: bob) == .success(.claimed))
        buffer.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0x7A) }
        #expect(store.getNow("idem:{aaaa}")?.owner == bob)
        var purged: Result<Bool, StoreError>?
        store.purge(key: "idem:{aaaa}") { purged = $0 }
        #expect(purged == .success(true))
        #expect(store.getNow("idem:{aaaa}") == nil)
    }

    /// A dead owner's claim met through the key's bytes is held, or replaced, in the table's own
    /// slot and under the key the table already holds: the bytes may change at once after each
    /// call, and the store's charge follows the entry.
    @Test func aDeadOwnersClaimMetThroughBytesIsHeldOrReplacedInPlace() {
        let any: any IdempotencyStore = store
        var buffer: [UInt8] = []
        func claim(_ text: String, owner: [UInt8], _ policy: IndeterminatePolicy) -> Result<ClaimOutcome, StoreError>? {
            buffer.removeAll(keepingCapacity: true)
            buffer.append(contentsOf: text.utf8)
            defer { buffer.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0x7A) } }
            return buffer.withUnsafeBytes { bytes in
                any.claimNow(
                    storageKey: bytes, text: { text }, owner: owner, fingerprint: fpA, lease: .seconds(30), ttl: .seconds(60),
                    expiredLease: policy)
            }
        }
        #expect(claim("idem:{hold}", owner: alice, .hold) == .success(.claimed))
        #expect(claim("idem:{free}", owner: alice, .release) == .success(.claimed))
        let charged = store.usedBytes
        clock.advance(.seconds(31))  // both leases over, neither record expired
        guard case .success(.existing(let held))? = claim("idem:{hold}", owner: bob, .hold) else {
            Issue.record("expected the dead claim, held")
            return
        }
        #expect(held.state == .unknown && held.owner == alice)
        #expect(claim("idem:{free}", owner: bob, .release) == .success(.claimed))
        #expect(store.getNow("idem:{hold}")?.state == .unknown)
        #expect(store.getNow("idem:{free}")?.owner == bob)
        #expect(store.storedCount == 2)
        // The new claim costs what the dead one did: same key, same sizes.
        #expect(store.usedBytes == charged)
        #expect(store.completeNow("idem:{free}", owner: alice, response: ok) == false)  // the dead owner lost it
        #expect(store.completeNow("idem:{free}", owner: bob, response: ok) == true)
        // The held record lives ttl from when it was held (31 s + 60 s), not from its claim (90 s).
        clock.advance(.seconds(59))
        #expect(store.getNow("idem:{hold}")?.state == .unknown)
        clock.advance(.seconds(2))
        #expect(store.getNow("idem:{hold}") == nil)
    }

    @Test func completeIsACompareAndSetOnTheOwner() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA) == .claimed)
        #expect(store.completeNow("k", owner: bob, response: ok) == false)  // stale/foreign owner
        #expect(store.getNow("k")?.state == .inFlight)
        #expect(store.completeNow("k", owner: alice, response: ok) == true)
        let record = store.getNow("k")
        #expect(record?.state == .completed)
        #expect(record?.response == ok)
        #expect(record?.fingerprint == fpA)
        // Completing again (a retry after a lost reply) reports success but changes nothing;
        // another owner, or a record that is not in flight, is refused.
        #expect(store.completeNow("k", owner: alice, response: StoredResponse(status: 500)) == true)
        #expect(store.completeNow("k", owner: bob, response: StoredResponse(status: 500)) == false)
        #expect(store.getNow("k")?.response == ok)
        #expect(store.claimNow("k", owner: bob, fingerprint: fpA) == .existing(record!))
        #expect(store.completeNow("missing", owner: alice, response: ok) == false)
    }

    @Test func releaseIsACompareAndSetOnTheOwner() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA) == .claimed)
        #expect(store.releaseNow("k", owner: bob) == false)
        #expect(store.getNow("k") != nil)
        #expect(store.releaseNow("k", owner: alice) == true)
        #expect(store.getNow("k") == nil)
        #expect(store.releaseNow("k", owner: alice) == false)  // retry is harmless
        #expect(store.claimNow("k", owner: bob, fingerprint: fpA) == .claimed)
        // A completed record cannot be released by its former owner.
        #expect(store.completeNow("k", owner: bob, response: ok))
        #expect(store.releaseNow("k", owner: bob) == false)
        #expect(store.getNow("k")?.state == .completed)
    }

    @Test func markUnknown() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA) == .claimed)
        #expect(store.markUnknownNow("k", owner: bob) == false)
        #expect(store.markUnknownNow("k", owner: alice) == true)
        let record = store.getNow("k")
        #expect(record?.state == .unknown)
        #expect(record?.fingerprint == fpA)
        #expect(store.markUnknownNow("k", owner: alice) == true)  // a retry: already unknown, for alice
        #expect(store.markUnknownNow("k", owner: bob) == false)
        #expect(store.completeNow("k", owner: alice, response: ok) == false)
    }

    @Test func refreshLeaseExtendsTheDeadline() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, lease: .seconds(10)) == .claimed)
        clock.advance(.seconds(8))
        #expect(store.refreshNow("k", owner: bob, lease: .seconds(10)) == false)
        #expect(store.refreshNow("k", owner: alice, lease: .seconds(10)) == true)
        #expect(store.getNow("k")?.leaseDeadlineMillis == clock.now + 10_000)
        // 16 s after the claim the original lease would be gone, the refreshed one is not.
        clock.advance(.seconds(8))
        guard case .existing(let record) = store.claimNow("k", owner: bob, fingerprint: fpA) else {
            Issue.record("expected the existing record")
            return
        }
        #expect(record.state == .inFlight)
        #expect(record.owner == alice)
    }

    @Test func expiredLeaseUnderHoldBecomesUnknown() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, lease: .seconds(10)) == .claimed)
        clock.advance(.seconds(10))
        guard case .existing(let record) = store.claimNow("k", owner: bob, fingerprint: fpA, expiredLease: .hold) else {
            Issue.record("expected the existing record")
            return
        }
        #expect(record.state == .unknown)
        #expect(record.fingerprint == fpA)
        #expect(store.getNow("k")?.state == .unknown)
        // The owner that lost its lease cannot complete it afterwards.
        #expect(store.completeNow("k", owner: alice, response: ok) == false)
        #expect(OutcomePolicy.decide(.existing(record), fingerprint: fpA) == .outcomeUnknown)
    }

    @Test func expiredLeaseUnderReleaseIsClaimedAnew() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, lease: .seconds(10)) == .claimed)
        clock.advance(.seconds(9))
        #expect(store.claimNow("k", owner: bob, fingerprint: fpA, expiredLease: .release) != .claimed)
        clock.advance(.seconds(1))
        #expect(store.claimNow("k", owner: bob, fingerprint: fpA, expiredLease: .release) == .claimed)
        #expect(store.getNow("k")?.owner == bob)
        // The old owner is now stale: none of its compare-and-sets apply.
        #expect(store.completeNow("k", owner: alice, response: ok) == false)
        #expect(store.releaseNow("k", owner: alice) == false)
        #expect(store.refreshNow("k", owner: alice, lease: .seconds(10)) == false)
        #expect(store.getNow("k")?.owner == bob)
    }

    @Test func slowOwnerWithExpiredLeaseCanStillCompleteIfNobodyTookOver() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, lease: .seconds(1)) == .claimed)
        clock.advance(.seconds(5))
        #expect(store.completeNow("k", owner: alice, response: ok) == true)
    }

    @Test func ttlExpiry() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, ttl: .seconds(60)) == .claimed)
        #expect(store.completeNow("k", owner: alice, response: ok, ttl: .seconds(100)))
        clock.advance(.seconds(99))
        #expect(store.getNow("k")?.state == .completed)
        clock.advance(.seconds(1))
        #expect(store.getNow("k") == nil)  // lazily expired on access
        #expect(store.claimNow("k", owner: bob, fingerprint: fpB) == .claimed)
    }

    @Test func markUnknownSetsItsOwnTTL() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, ttl: .seconds(10)) == .claimed)
        #expect(store.markUnknownNow("k", owner: alice, ttl: .seconds(100)))
        clock.advance(.seconds(50))
        #expect(store.getNow("k")?.state == .unknown)
    }

    @Test func sweepRemovesOnlyExpiredRecords() {
        for i in 0..<100 {
            #expect(store.claimNow("short-\(i)", owner: alice, fingerprint: fpA, lease: .seconds(5), ttl: .seconds(10)) == .claimed)
            #expect(store.claimNow("long-\(i)", owner: alice, fingerprint: fpA, lease: .seconds(5), ttl: .seconds(1000)) == .claimed)
        }
        #expect(store.storedCount == 200)
        #expect(store.sweep() == 0)
        clock.advance(.seconds(14))
        #expect(store.sweep() == 0)  // lease + ttl: 15 s
        clock.advance(.seconds(1))
        #expect(store.sweep() == 100)
        #expect(store.storedCount == 100)
        #expect(store.getNow("long-7") != nil)
        #expect(store.sweep(now: clock.now + 1_000_000) == 100)
        #expect(store.storedCount == 0)
    }

    /// The loop sweeps one shard per tick: a pass over every shard removes exactly what a
    /// whole sweep does, and one shard alone removes only its own records.
    @Test func sweepingShardByShardRemovesTheSameRecords() {
        for i in 0..<200 {
            #expect(store.claimNow("short-\(i)", owner: alice, fingerprint: fpA, lease: .seconds(5), ttl: .seconds(10)) == .claimed)
        }
        #expect(store.claimNow("long", owner: alice, fingerprint: fpA, lease: .seconds(5), ttl: .seconds(1000)) == .claimed)
        clock.advance(.seconds(15))
        let first = store.sweep(shard: 0)
        #expect(first > 0 && first < 200, "one shard holds a part of the records")
        #expect(store.storedCount == 201 - first)
        var removed = first
        for shard in 1..<MemoryStore.shardCount { removed += store.sweep(shard: shard) }
        #expect(removed == 200)
        #expect(store.storedCount == 1)
        #expect(store.getNow("long") != nil)
    }

    /// A completion moves the expiry to completion + ttl, usually earlier than the claim's
    /// lease + ttl: the sweep removes the record then, not at the claim's expiry.
    @Test func sweepFollowsTheExpiryACompletionSet() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, lease: .seconds(300), ttl: .seconds(10)) == .claimed)
        #expect(store.completeNow("k", owner: alice, response: ok, ttl: .seconds(10)))
        clock.advance(.seconds(9))
        #expect(store.sweep() == 0)
        clock.advance(.seconds(1))
        #expect(store.sweep() == 1)
        #expect(store.storedCount == 0)
    }

    /// Released records leave notes in the expiry index until their bucket comes due (a day
    /// with the default ttl); a stream of releases (429s) must not grow it without bound.
    @Test func releasedClaimsDoNotGrowTheExpiryIndexWithoutBound() {
        let claims = 64 * 4096 * 2
        for i in 0..<claims {
            #expect(store.claimNow("r\(i)", owner: alice, fingerprint: fpA, lease: .seconds(30), ttl: .seconds(86_400)) == .claimed)
            #expect(store.releaseNow("r\(i)", owner: alice))
        }
        #expect(store.storedCount == 0)
        // At most the margin (and the note that triggers a rebuild) per shard, whatever the
        // number of releases: about 0.6 MB outside max_bytes at worst.
        #expect(store.expiryNoteCount <= MemoryStore.shardCount * (ExpiryIndex<StoreKey>.compactionMargin + 1), "\(store.expiryNoteCount) notes for no record")
        // Compaction keeps what live records need: one claimed now is still swept at its expiry.
        #expect(store.claimNow("kept", owner: alice, fingerprint: fpA, lease: .seconds(5), ttl: .seconds(5)) == .claimed)
        clock.advance(.seconds(10))
        #expect(store.sweep() == 1)
    }

    /// A record released and claimed again must not be swept at the first claim's expiry.
    @Test func sweepKeepsARecordClaimedAgainAfterARelease() {
        #expect(store.claimNow("k", owner: alice, fingerprint: fpA, lease: .seconds(5), ttl: .seconds(5)) == .claimed)
        #expect(store.releaseNow("k", owner: alice))
        clock.advance(.seconds(5))
        #expect(store.claimNow("k", owner: bob, fingerprint: fpA, lease: .seconds(5), ttl: .seconds(100)) == .claimed)
        clock.advance(.seconds(6))
        #expect(store.sweep() == 0)
        #expect(store.getNow("k")?.owner == bob)
        clock.advance(.seconds(100))
        #expect(store.sweep() == 1)
    }

    @Test func completionMayReenterTheStore() {
        var inner: ClaimOutcome?
        store.claim(key: "k", owner: alice, fingerprint: fpA, lease: .seconds(1), ttl: .seconds(1), expiredLease: .hold) {
            _ in
            // Called after the shard lock is released: no self-deadlock.
            inner = self.store.claimNow("k", owner: self.bob, fingerprint: fpA)
        }
        #expect(inner != nil && inner != .claimed)
    }

    @Test func concurrentClaimsHaveExactlyOneWinnerPerKey() {
        let store = MemoryStore()
        let keys = 300
        let threads = 8
        let winners = Mutex<[Int: [UInt8]]>([:])
        let claimed = Atomic<Int>(0)
        let mismatchedOwners = Atomic<Int>(0)
        runOnThreads(threads) { _ in
            let me = OwnerToken.random()
            for k in 0..<keys {
                store.claim(
                    key: "key-\(k)", owner: me, fingerprint: fpA, lease: .seconds(30), ttl: .seconds(60),
                    expiredLease: .hold
                ) { result in
                    switch result {
                    case .success(.claimed):
                        claimed.add(1, ordering: .relaxed)
                        winners.withLock { $0[k] = me }
                    case .success(.existing(let record)):
                        if record.owner == me { mismatchedOwners.add(1, ordering: .relaxed) }
                    case .failure:
                        mismatchedOwners.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        #expect(claimed.load(ordering: .relaxed) == keys)
        #expect(mismatchedOwners.load(ordering: .relaxed) == 0)
        let owners = winners.withLock { $0 }
        #expect(owners.count == keys)
        for k in 0..<keys {
            #expect(store.getNow("key-\(k)")?.owner == owners[k])
        }
    }
}
