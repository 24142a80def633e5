import Dispatch
import Synchronization
import TestRandom
import Testing
@testable import Idempotency

/// A clock that can be set to any value (the store's own clock only moves forward here; the
/// sweeps get arbitrary `now` values).
private final class SettableClock: Sendable {
    let millis: Atomic<UInt64>
    init(_ start: UInt64) { millis = Atomic(start) }
    var now: UInt64 { millis.load(ordering: .relaxed) }
    func set(_ value: UInt64) { millis.store(value, ordering: .relaxed) }
    var function: @Sendable () -> UInt64 { { [self] in self.now } }
}

/// The reference model of one record.
private struct ModelRecord {
    var state: RecordState
    var owner: [UInt8]
    var lease: UInt64
    var expiry: UInt64
}

/// The memory store against a reference model: random claims, completions, releases, marks,
/// refreshes, purges and sweeps (the clock jumping both ways), storms of released claims, and
/// threads racing sweeps; results, record counts, charged bytes and the expiry index must agree.
@Suite struct MemoryStoreModelTests {
    static let fp = [UInt8](repeating: 7, count: 32)


    /// Random operations against a reference model: every outcome, the record count, and the
    /// charged bytes (0 once empty) must agree; sweeps get arbitrary times, backwards too.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func modelBasedRandomOperations(seed: Int) {
        Self.checkAgainstModel(seed: seed, randomState: UInt64(seed) &* 0x1234_5678_9ABC, keys: (0..<24).map { "k\($0)" })
    }

    /// 20,000 random operations on `keys` (`modelBasedRandomOperations`; also run on keys that
    /// share a hash by `MemoryStoreSharedHashTests`).
    static func checkAgainstModel(seed: Int, randomState: UInt64, keys: [String]) {
        var rng = SeededRandom(state: randomState)
        let clock = SettableClock(5_000_000)
        let store = MemoryStore(maxBytes: 1 << 40, clock: clock.function, wallClock: { 0 })
        var model: [String: ModelRecord] = [:]
        var nextOwner = 1

        func expireIfDue(_ key: String, _ now: UInt64) {
            if let record = model[key], record.expiry <= now { model[key] = nil }
        }
        /// The model of an owner's move out of in-flight (complete, mark unknown): done once,
        /// and succeeding again for the same owner once the record is in that state.
        func settle(_ key: String, owner: [UInt8], to state: RecordState, expiry: UInt64) -> Bool {
            guard var r = model[key], r.owner == owner else { return false }
            if r.state == state { return true }
            guard r.state == .inFlight else { return false }
            r.state = state
            r.expiry = expiry
            model[key] = r
            return true
        }

        for step in 0..<20_000 {
            let now = clock.now
            let key = keys[Int(rng.next() % UInt64(keys.count))]
            let op = rng.next() % 100
            let leaseMs = UInt64([1, 500, 1_000, 1_024, 2_047, 30_000][Int(rng.next() % 6)])
            let ttlMs = UInt64([0, 1, 1_000, 1_023, 5_000, 3_600_000][Int(rng.next() % 6)])
            let ownerPick: [UInt8] = {
                if let existing = model[key], rng.next() % 4 != 0 { return existing.owner }
                return ownerToken(Int(rng.next() % 1_000_000) + 1_000_000)
            }()
            switch op {
            case 0..<30:  // claim
                let policy: IndeterminatePolicy = rng.next() % 2 == 0 ? .hold : .release
                let owner = ownerToken(nextOwner)
                nextOwner += 1
                let outcome = store.claimNow(
                    key, owner: owner, fingerprint: Self.fp, lease: .milliseconds(Int64(leaseMs)), ttl: .milliseconds(Int64(ttlMs)),
                    expiredLease: policy)
                expireIfDue(key, now)
                var expected: ClaimOutcome
                if var existing = model[key] {
                    if existing.state == .inFlight && existing.lease <= now {
                        if policy == .hold {
                            existing.state = .unknown
                            existing.expiry = now + ttlMs
                            model[key] = existing
                            expected = .existing(IdempotencyRecord(state: .unknown, fingerprint: [], owner: [], leaseDeadlineMillis: 0, createdAtMillis: 0))
                        } else {
                            model[key] = ModelRecord(state: .inFlight, owner: owner, lease: now + leaseMs, expiry: now + leaseMs + ttlMs)
                            expected = .claimed
                        }
                    } else {
                        expected = .existing(IdempotencyRecord(state: existing.state, fingerprint: [], owner: [], leaseDeadlineMillis: 0, createdAtMillis: 0))
                    }
                } else {
                    model[key] = ModelRecord(state: .inFlight, owner: owner, lease: now + leaseMs, expiry: now + leaseMs + ttlMs)
                    expected = .claimed
                }
                switch (outcome, expected) {
                case (.claimed, .claimed): break
                case (.existing(let got), .existing(let want)):
                    #expect(got.state == want.state, "step \(step) seed \(seed): claim \(key) state \(got.state) want \(want.state)")
                default:
                    Issue.record("step \(step) seed \(seed): claim \(key) got \(outcome) want \(expected)")
                }
            case 30..<45:  // complete
                let ok = store.completeNow(key, owner: ownerPick, response: StoredResponse(status: 201, body: Array("body".utf8)), ttl: .milliseconds(Int64(ttlMs)))
                expireIfDue(key, now)
                let want = settle(key, owner: ownerPick, to: .completed, expiry: now + ttlMs)
                #expect(ok == want, "step \(step) seed \(seed): complete \(key)")
            case 45..<55:  // release
                let ok = store.releaseNow(key, owner: ownerPick)
                expireIfDue(key, now)
                var want = false
                if let r = model[key], r.state == .inFlight, r.owner == ownerPick { want = true; model[key] = nil }
                #expect(ok == want, "step \(step) seed \(seed): release \(key)")
            case 55..<62:  // markUnknown
                let ok = store.markUnknownNow(key, owner: ownerPick, ttl: .milliseconds(Int64(ttlMs)))
                expireIfDue(key, now)
                let want = settle(key, owner: ownerPick, to: .unknown, expiry: now + ttlMs)
                #expect(ok == want, "step \(step) seed \(seed): markUnknown \(key)")
            case 62..<72:  // refresh
                let ok = store.refreshNow(key, owner: ownerPick, lease: .milliseconds(Int64(leaseMs)), ttl: .milliseconds(Int64(ttlMs)))
                expireIfDue(key, now)
                var want = false
                if var r = model[key], r.state == .inFlight, r.owner == ownerPick {
                    want = true
                    r.lease = now + leaseMs
                    r.expiry = max(r.expiry, r.lease + ttlMs)
                    model[key] = r
                }
                #expect(ok == want, "step \(step) seed \(seed): refresh \(key)")
            case 72..<76:  // purge
                var result: Result<Bool, StoreError>?
                store.purge(key: key) { result = $0 }
                expireIfDue(key, now)
                let want = model[key] != nil
                model[key] = nil
                #expect((try? result!.get()) == want, "step \(step) seed \(seed): purge \(key)")
            case 76..<82:  // get
                let got = store.getNow(key)
                expireIfDue(key, now)
                #expect(got?.state == model[key]?.state, "step \(step) seed \(seed): get \(key)")
                if let got, let m = model[key] { #expect(got.leaseDeadlineMillis == m.lease && got.owner == m.owner) }
            case 82..<90:  // sweep at an arbitrary time around now, backwards included
                let offsets: [Int64] = [-100_000, -5_000, -1_024, -1, 0, 1, 1_023, 1_024, 2_048, 7_000, 40_000, 4_000_000]
                let offset = offsets[Int(rng.next() % UInt64(offsets.count))]
                let at = UInt64(max(0, Int64(now) + offset))
                let removed = store.sweep(now: at)
                let due = model.filter { $0.value.expiry <= at }.map(\.key)
                for k in due { model[k] = nil }
                #expect(removed == due.count, "step \(step) seed \(seed): sweep(now: \(at)) removed \(removed), model \(due.count)")
            default:  // time moves forward
                let jumps: [UInt64] = [0, 1, 17, 511, 1_024, 1_500, 10_000, 90_000]
                clock.set(now + jumps[Int(rng.next() % UInt64(jumps.count))])
            }
            if store.storedCount != model.count {
                Issue.record("step \(step) seed \(seed): storedCount \(store.storedCount), model \(model.count)")
                return
            }
            if model.isEmpty && store.usedBytes != 0 {
                Issue.record("step \(step) seed \(seed): usedBytes \(store.usedBytes) with nothing stored")
                return
            }
        }
        // Everything gone at the end of time.
        store.sweep(now: UInt64.max - 1)
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        #expect(store.expiryNoteCount == 0)
    }

    /// A record may not be swept before its expiry, however many sweeps with odd times happen.
    @Test func recordSurvivesSweepsUntilItsExpiry() {
        let clock = SettableClock(1_000_000)
        let store = MemoryStore(clock: clock.function)
        let owner = ownerToken(1)
        #expect(store.claimNow("k", owner: owner, fingerprint: Self.fp, lease: .milliseconds(1_500), ttl: .milliseconds(2_000)) == .claimed)
        // claim expiry: 1_003_500
        for t in stride(from: UInt64(990_000), through: 1_003_499, by: 97) { store.sweep(now: t) }
        #expect(store.getNow("k") != nil)
        clock.set(1_001_000)
        #expect(store.refreshNow("k", owner: owner, lease: .milliseconds(10_000), ttl: .milliseconds(2_000)))  // expiry 1_013_000
        for t in [UInt64(1_003_500), 1_003_499, 1_012_999, 1_000_000, 1_012_000, 1_012_999] { store.sweep(now: t) }
        #expect(store.getNow("k")?.state == .inFlight)
        clock.set(1_002_000)
        #expect(store.completeNow("k", owner: owner, response: StoredResponse(status: 200), ttl: .milliseconds(100)))  // 1_002_100
        store.sweep(now: 1_002_099)
        #expect(store.getNow("k")?.state == .completed)
        store.sweep(now: 1_002_100)
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        store.sweep(now: 1_013_000)
        #expect(store.expiryNoteCount == 0)
    }

    /// Lease refreshed thousands of times (a note each time its bucket moves), then swept.
    @Test func manyRefreshesThenSweep() {
        let clock = SettableClock(1_000_000)
        let store = MemoryStore(clock: clock.function)
        let owner = ownerToken(1)
        #expect(store.claimNow("k", owner: owner, fingerprint: Self.fp, lease: .seconds(2), ttl: .seconds(1)) == .claimed)
        for _ in 0..<20_000 {
            clock.set(clock.now + 1_100)
            #expect(store.refreshNow("k", owner: owner, lease: .seconds(2), ttl: .seconds(1)))
            store.sweep(now: clock.now)
        }
        #expect(store.getNow("k")?.state == .inFlight)
        #expect(store.expiryNoteCount < 4_200, "notes \(store.expiryNoteCount)")
        // No sweeps, many refreshes: compaction bounds the notes.
        for _ in 0..<20_000 {
            clock.set(clock.now + 1_100)
            _ = store.refreshNow("k", owner: owner, lease: .seconds(2), ttl: .seconds(1))
        }
        #expect(store.expiryNoteCount <= 2 + ExpiryIndex<StoreKey>.compactionMargin + 1, "notes \(store.expiryNoteCount)")
        clock.set(clock.now + 1_999)
        store.sweep(now: clock.now)
        #expect(store.getNow("k")?.state == .inFlight, "swept before its lease + ttl")
        clock.set(clock.now + 1_002)
        store.sweep(now: clock.now)
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        #expect(store.expiryNoteCount == 0)
    }

    /// Claim + release storms leave neither records nor unbounded notes behind.
    @Test func claimReleaseStormStaysBounded() {
        let clock = SettableClock(1_000_000)
        let store = MemoryStore(clock: clock.function)
        for i in 0..<300_000 {
            let owner = ownerToken(i)
            let key = "storm-\(i % 5_000)"
            #expect(store.claimNow(key, owner: owner, fingerprint: Self.fp) == .claimed)
            #expect(store.releaseNow(key, owner: owner))
            if i % 1_000 == 0 { clock.set(clock.now + 3) }
        }
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        let notes = store.expiryNoteCount
        #expect(notes <= MemoryStore.shardCount * 4_097, "notes \(notes)")
    }

    /// Lease expiry under both policies, then a re-claim; complete after the lease expired.
    @Test func leaseExpiryHoldAndReleaseThenReclaim() {
        let clock = SettableClock(1_000_000)
        let store = MemoryStore(clock: clock.function)
        let a = ownerToken(1), b = ownerToken(2), c = ownerToken(3)
        #expect(store.claimNow("h", owner: a, fingerprint: Self.fp, lease: .seconds(1), ttl: .seconds(10)) == .claimed)
        #expect(store.claimNow("r", owner: a, fingerprint: Self.fp, lease: .seconds(1), ttl: .seconds(10), expiredLease: .release) == .claimed)
        clock.set(1_001_000)
        // Lease gone but nobody took over: the owner can still complete.
        #expect(store.completeNow("h", owner: a, response: StoredResponse(status: 200), ttl: .seconds(5)))
        #expect(store.getNow("h")?.state == .completed)
        if case .existing(let r) = store.claimNow("h", owner: b, fingerprint: Self.fp) { #expect(r.state == .completed) } else { Issue.record("h re-claimed") }
        // Release policy: a new owner takes over; the old owner's complete now fails.
        #expect(store.claimNow("r", owner: b, fingerprint: Self.fp, lease: .seconds(1), ttl: .seconds(10), expiredLease: .release) == .claimed)
        #expect(!store.completeNow("r", owner: a, response: StoredResponse(status: 200)))
        clock.set(1_002_500)
        // Hold policy on b's expired lease.
        if case .existing(let r) = store.claimNow("r", owner: c, fingerprint: Self.fp, lease: .seconds(1), ttl: .seconds(3), expiredLease: .hold) {
            #expect(r.state == .unknown)
        } else { Issue.record("r not held") }
        #expect(!store.completeNow("r", owner: b, response: StoredResponse(status: 200)))
        // Unknown record lives until now + ttl (1_005_500), not the claim's lease+ttl (1_012_000).
        store.sweep(now: 1_005_499)
        #expect(store.getNow("r")?.state == .unknown)
        store.sweep(now: 1_005_500)
        #expect(store.getNow("r") == nil)
        store.sweep(now: 1_006_000)  // "h" expired at 1_006_000
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        store.sweep(now: 2_000_000)
        #expect(store.expiryNoteCount == 0)
    }

    /// A full store with expired entries present: the claim evicts the expired one on access;
    /// sweeping frees room.
    @Test func fullStoreWithExpiredEntries() {
        let clock = SettableClock(1_000_000)
        let store = MemoryStore(maxBytes: 2_000, clock: clock.function)
        var claimed = 0
        for i in 0..<50 {
            var result: Result<ClaimOutcome, StoreError>?
            store.claim(key: "f\(i)", owner: ownerToken(i), fingerprint: Self.fp, lease: .seconds(1), ttl: .seconds(1), expiredLease: .hold) { result = $0 }
            if case .success(.claimed) = result { claimed += 1 }
        }
        #expect(claimed > 0 && claimed < 50)
        let used = store.usedBytes
        #expect(used <= 2_000)
        clock.set(1_002_000)
        // Re-claiming an expired key reuses its bytes.
        #expect(store.claimNow("f0", owner: ownerToken(100), fingerprint: Self.fp, lease: .seconds(1), ttl: .seconds(1)) == .claimed)
        #expect(store.usedBytes == used)
        store.sweep(now: 1_002_000)
        #expect(store.storedCount == 1)
        store.purge(key: "f0") { _ in }
        #expect(store.usedBytes == 0)
        #expect(store.storedCount == 0)
    }

    /// Purge while in flight: the owner's complete and release then fail, bytes return to 0.
    @Test func purgeDuringInFlight() {
        let clock = SettableClock(1_000_000)
        let store = MemoryStore(clock: clock.function)
        let a = ownerToken(1)
        #expect(store.claimNow("p", owner: a, fingerprint: Self.fp) == .claimed)
        var purged: Bool?
        store.purge(key: "p") { purged = try? $0.get() }
        #expect(purged == true)
        #expect(!store.completeNow("p", owner: a, response: StoredResponse(status: 200)))
        #expect(!store.releaseNow("p", owner: a))
        #expect(!store.refreshNow("p", owner: a, lease: .seconds(5)))
        #expect(store.usedBytes == 0)
        #expect(store.storedCount == 0)
    }

    /// Threads claim, complete, release, refresh and sweep the same keys with a shared clock.
    @Test func concurrentStormKeepsAccounting() {
        let clock = ManualClock(1_000_000)
        let store = MemoryStore(clock: clock.function)
        let threads = 4
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var rng = SeededRandom(state: UInt64(t + 1))
            for i in 0..<40_000 {
                let key = "c\(rng.next() % 64)"
                let owner = ownerToken(t * 1_000_000 + i)
                switch store.claimNow(key, owner: owner, fingerprint: Self.fp, lease: .milliseconds(50), ttl: .milliseconds(200),
                                      expiredLease: i % 2 == 0 ? .hold : .release) {
                case .claimed:
                    switch rng.next() % 4 {
                    case 0: _ = store.completeNow(key, owner: owner, response: StoredResponse(status: 201, body: [1, 2, 3]), ttl: .milliseconds(100))
                    case 1: _ = store.releaseNow(key, owner: owner)
                    case 2: _ = store.refreshNow(key, owner: owner, lease: .milliseconds(300), ttl: .milliseconds(100))
                    default: _ = store.markUnknownNow(key, owner: owner, ttl: .milliseconds(150))
                    }
                case .existing: break
                }
                if i % 97 == 0 { clock.advance(.milliseconds(7)) }
                if i % 501 == 0 { store.sweep(shard: Int(rng.next() % 64), now: clock.now) }
            }
        }
        #expect(store.expiryNoteCount <= 2 * store.storedCount + MemoryStore.shardCount * (ExpiryIndex<StoreKey>.compactionMargin + 1))
        store.sweep(now: clock.now + 10_000)
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        #expect(store.expiryNoteCount == 0)
    }

    /// Huge ttl (deadline saturates at UInt64.max): sweeps never remove it early, the index copes.
    @Test func saturatedDeadlines() {
        let clock = SettableClock(1_000_000)
        let store = MemoryStore(clock: clock.function)
        let a = ownerToken(1)
        #expect(store.claimNow("x", owner: a, fingerprint: Self.fp, lease: .seconds(Int64.max / 4), ttl: .seconds(Int64.max / 4)) == .claimed)
        #expect(store.claimNow("y", owner: a, fingerprint: Self.fp, lease: .seconds(1), ttl: .seconds(1)) == .claimed)
        store.sweep(now: UInt64.max - 1)
        #expect(store.getNow("x") != nil)
        #expect(store.storedCount == 1)
        store.sweep(now: 0)
        store.sweep(now: 1_000_000)
        #expect(store.claimNow("z", owner: a, fingerprint: Self.fp, lease: .seconds(1), ttl: .seconds(1)) == .claimed)
        store.sweep(now: 1_002_000)
        #expect(store.getNow("z") == nil)
        #expect(store.storedCount == 1)
    }
}
