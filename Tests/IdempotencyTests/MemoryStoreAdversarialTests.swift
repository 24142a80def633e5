import Synchronization
import TestRandom
import Testing
@testable import Idempotency

/// Adversarial tests of the memory store on its `RecordTable` and hash-noted `ExpiryIndex`:
/// many threads on keys that share a shard and a 64-bit hash, borrowed keys from freed
/// buffers, sweeps running alongside every transition, tables that grow and shrink, the
/// `maxBytes` bound, and sweeps with a clock far ahead. Each worker checks every answer
/// against its own exact model (the clock stands still within a phase, so the model knows the
/// store's `now`); between phases the charge must equal the model's live records exactly.
@Suite struct MemoryStoreAdversarialTests {
    static let fps = [SHA256Hasher.hash("adv-A"), SHA256Hasher.hash("adv-B")]
    static let response = StoredResponse(status: 201, headers: [HeaderPair(name: "X", value: "y")], body: bytes("adversarial"))


    /// What the store must hold for one key.
    struct Model {
        var record: IdempotencyRecord
        var expiresAt: UInt64
    }

    static func cost(_ key: String, _ record: IdempotencyRecord) -> Int {
        MemoryStore.recordOverhead + key.utf8.count + record.fingerprint.count + record.owner.count
            + (record.response?.storedBytes ?? 0)
    }

    static func inspectNow(_ store: MemoryStore, _ key: String) -> RecordInspection? {
        var result: Result<RecordInspection?, StoreError>?
        store.inspect(key: key) { result = $0 }
        return try! result!.get()
    }

    static func purgeNow(_ store: MemoryStore, _ key: String) -> Bool {
        var result: Result<Bool, StoreError>?
        store.purge(key: key) { result = $0 }
        return try! result!.get()
    }

    /// One random operation on `key` at `now`, checked against `model` (which it updates).
    /// Returns a description of the first disagreement, or nil.
    static func step(
        _ store: MemoryStore, _ key: String, _ model: inout [String: Model], now: UInt64, owners: [[UInt8]], drain: Bool,
        _ rng: inout SeededRandom
    ) -> String? {
        var live = model[key].flatMap { $0.expiresAt > now ? $0 : nil }
        if live == nil { model[key] = nil }
        let owner = rng.pick(owners)
        let lease = UInt64(rng.below(2_500)), ttl = UInt64(rng.below(3_000))
        let deadline = { (a: UInt64, b: UInt64) -> UInt64 in a + b }
        let op = drain ? (rng.chance(70) ? 5 + rng.below(2) : rng.below(9)) : rng.below(9)
        switch op {
        case 0, 1:  // claim, as a String or as bytes from a freed buffer
            let fp = rng.pick(fps)
            let policy: IndeterminatePolicy = rng.chance(50) ? .hold : .release
            let result: ClaimOutcome
            if op == 1 {
                var calls = 0
                guard case .success(let outcome)? = BorrowedStoreKeyTests.claimFromBytes(
                    store, key, textCalls: &calls, owner: owner, fingerprint: fp, lease: .milliseconds(lease), ttl: .milliseconds(ttl),
                    expiredLease: policy)
                else { return "borrowed claim of \(key) failed" }
                result = outcome
            } else {
                result = store.claimNow(key, owner: owner, fingerprint: fp, lease: .milliseconds(lease), ttl: .milliseconds(ttl), expiredLease: policy)
            }
            let fresh = Model(
                record: IdempotencyRecord(state: .inFlight, fingerprint: fp, owner: owner, leaseDeadlineMillis: deadline(now, lease)),
                expiresAt: deadline(now, lease + ttl))
            let expected: ClaimOutcome
            if var current = live {
                if current.record.leaseExpired(atMillis: now) {
                    if policy == .hold {
                        current.record.state = .unknown
                        current.expiresAt = deadline(now, ttl)
                        live = current
                        expected = .existing(current.record)
                    } else {
                        live = fresh
                        expected = .claimed
                    }
                } else {
                    expected = .existing(current.record)
                }
            } else {
                live = fresh
                expected = .claimed
            }
            model[key] = live
            if result != expected { return "claim \(key) at \(now): \(result), expected \(expected)" }
        case 2:  // complete
            let done = store.completeNow(key, owner: owner, response: response, ttl: .milliseconds(ttl))
            var expected = false
            if var current = live, current.record.owner == owner {
                if current.record.state == .completed {
                    expected = true
                } else if current.record.state == .inFlight {
                    current.record.state = .completed
                    current.record.response = response
                    current.expiresAt = deadline(now, ttl)
                    model[key] = current
                    expected = true
                }
            }
            if done != expected { return "complete \(key) at \(now): \(done), expected \(expected)" }
        case 3:  // mark unknown: the expiry may move earlier or later, across buckets
            let done = store.markUnknownNow(key, owner: owner, ttl: .milliseconds(ttl))
            var expected = false
            if var current = live, current.record.owner == owner {
                if current.record.state == .unknown {
                    expected = true
                } else if current.record.state == .inFlight {
                    current.record.state = .unknown
                    current.expiresAt = deadline(now, ttl)
                    model[key] = current
                    expected = true
                }
            }
            if done != expected { return "markUnknown \(key) at \(now): \(done), expected \(expected)" }
        case 4:  // refresh
            let done = store.refreshNow(key, owner: owner, lease: .milliseconds(lease), ttl: .milliseconds(ttl))
            var expected = false
            if var current = live, current.record.owner == owner, current.record.state == .inFlight {
                current.record.leaseDeadlineMillis = deadline(now, lease)
                current.expiresAt = max(current.expiresAt, deadline(current.record.leaseDeadlineMillis, ttl))
                model[key] = current
                expected = true
            }
            if done != expected { return "refresh \(key) at \(now): \(done), expected \(expected)" }
        case 5:  // release
            let done = store.releaseNow(key, owner: owner)
            var expected = false
            if let current = live, current.record.owner == owner, current.record.state == .inFlight {
                model[key] = nil
                expected = true
            }
            if done != expected { return "release \(key) at \(now): \(done), expected \(expected)" }
        case 6:  // purge
            let done = purgeNow(store, key)
            model[key] = nil
            if done != (live != nil) { return "purge \(key) at \(now): \(done), expected \(live != nil)" }
        case 7:  // get
            let got = store.getNow(key)
            if got != live?.record { return "get \(key) at \(now): \(String(describing: got)), expected \(String(describing: live?.record))" }
        default:  // inspect
            let seen = inspectNow(store, key)
            if let live {
                let lease = live.record.state == .inFlight && live.record.leaseDeadlineMillis > now ? live.record.leaseDeadlineMillis - now : 0
                let expected = RecordInspection(record: live.record, expiresInMillis: live.expiresAt - now, leaseRemainingMillis: lease)
                if seen != expected { return "inspect \(key) at \(now): \(String(describing: seen)), expected \(expected)" }
            } else if seen != nil {
                return "inspect \(key) at \(now): \(String(describing: seen)), expected nothing"
            }
        }
        return nil
    }

    /// Keys in two shards: groups sharing a 64-bit hash (spread over the workers, so that threads
    /// race on one hash's records and notes) and keys of their own hash.
    static func keys(singles: Int) -> [String] {
        SharedHashKeys.groups([4, 4, 4, 3, 3, 2], shard: 9).flatMap { $0 }
            + SharedHashKeys.singles(singles, shard: 9) + SharedHashKeys.singles(singles / 2, shard: 10)
    }

    @Test(arguments: [(1, 4, 60), (2, 4, 60), (3, 1, 400), (4, 2, 200)])
    func concurrentPhasesMatchAnExactModelAndChargesReturnToZero(seed: Int, workers: Int, singles: Int) {
        let keys = Self.keys(singles: singles)
        let clock = ManualClock(UInt64(5_000) << 10 + 1_000)  // 24 ms before a bucket boundary
        let store = MemoryStore(maxBytes: 1 << 40, clock: clock.function, wallClock: { 0 })
        let models = Mutex([[String: Model]](repeating: [:], count: workers))
        let failures = Mutex([String]())
        var main = SeededRandom(state: UInt64(seed) &* 0x9E37_79B9_7F4A_7C15)
        let phases = 40
        for phase in 0..<phases {
            let now = clock.now
            let drain = phase % 6 == 5
            let phaseSeed = main.next()
            let finished = Atomic<Int>(0)
            runOnThreads(workers + 1) { thread in
                if thread == workers {
                    // The sweeper: at the phase's time nothing live is due, so nothing the
                    // workers' models hold may go; it sweeps shards 9 and 10 and the whole store.
                    var shard = 9
                    while finished.load(ordering: .acquiring) < workers {
                        store.sweep(shard: shard, now: now)
                        shard = shard == 9 ? 10 : 9
                        if shard == 9 { store.sweep(now: now) }
                    }
                    return
                }
                var rng = SeededRandom(state: phaseSeed &+ UInt64(thread) &* 0xD1B5_4A32_D192_ED03)
                var model = models.withLock { $0[thread] }
                let mine = keys.enumerated().filter { $0.offset % workers == thread }.map(\.element)
                let owners = (0..<2).map { ownerToken(thread * 10 + $0) }
                for _ in 0..<(mine.count * 3) {
                    if let failure = Self.step(store, rng.pick(mine), &model, now: now, owners: owners, drain: drain, &rng) {
                        failures.withLock { $0.append("phase \(phase) worker \(thread): \(failure)") }
                        break
                    }
                }
                models.withLock { $0[thread] = model }
                finished.add(1, ordering: .releasing)
            }
            let found = failures.withLock { $0 }
            #expect(found.isEmpty, "\(found.prefix(5))")
            if !found.isEmpty { return }
            // Between phases: the whole store at `now`, then every live record, then the charge.
            store.sweep(now: now)
            let all = models.withLock { $0 }.reduce(into: [String: Model]()) { $0.merge($1) { a, _ in a } }
            let live = all.filter { $0.value.expiresAt > now }
            #expect(store.storedCount == live.count, "phase \(phase): \(store.storedCount) records held, \(live.count) live")
            let expectedBytes = live.reduce(0) { $0 + Self.cost($1.key, $1.value.record) }
            #expect(store.usedBytes == expectedBytes, "phase \(phase): charged \(store.usedBytes), live records cost \(expectedBytes)")
            for (key, model) in live where store.getNow(key) != model.record {
                Issue.record("phase \(phase): \(key) lost or changed: \(String(describing: store.getNow(key)))")
                return
            }
            // Move on: within the bucket, across one boundary, or across several.
            clock.advance(.milliseconds([1, 23, 700, 1_024, 2_500][main.below(5)]))
        }
        // Everything expires: nothing held, nothing charged, no note left.
        store.sweep(now: clock.now + 10_000)
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        #expect(store.expiryNoteCount == 0)
    }

    /// Threads claim, complete and release keys of one shard against a store that fits about
    /// 40 records: claims never pass the bound, `.full` is the only refusal, a refused key holds
    /// nothing, and every byte comes back once everything expires.
    @Test func claimsAtTheByteBoundFromManyThreads() {
        let keys = Self.keys(singles: 120)
        let clock = ManualClock(3_000_000)
        let perRecord = Self.cost(keys[0], IdempotencyRecord(state: .inFlight, fingerprint: Self.fps[0], owner: ownerToken(0), leaseDeadlineMillis: 0))
        let store = MemoryStore(maxBytes: perRecord * 40 + 17, clock: clock.function, wallClock: { 0 })
        let workers = 4
        let problems = Mutex([String]())
        let held = Mutex([String: [UInt8]]())
        runOnThreads(workers) { thread in
            var rng = SeededRandom(state: 77 &+ UInt64(thread))
            let mine = keys.enumerated().filter { $0.offset % workers == thread }.map(\.element)
            let owner = ownerToken(thread)
            var claimed = Set<String>()
            for _ in 0..<2_000 {
                let key = rng.pick(mine)
                if claimed.contains(key) {
                    if rng.chance(50) {
                        if !store.releaseNow(key, owner: owner) { problems.withLock { $0.append("release \(key)") } }
                        claimed.remove(key)
                    }
                    continue
                }
                var result: Result<ClaimOutcome, StoreError>?
                store.claim(key: key, owner: owner, fingerprint: Self.fps[0], lease: .seconds(5), ttl: .seconds(5), expiredLease: .hold) { result = $0 }
                switch result! {
                case .success(.claimed): claimed.insert(key)
                case .failure(.full): if store.getNow(key) != nil { problems.withLock { $0.append("refused \(key) is held") } }
                default: problems.withLock { $0.append("claim \(key): \(result!)") }
                }
                if store.usedBytes > store.maxBytes { problems.withLock { $0.append("over the bound: \(store.usedBytes)") } }
            }
            held.withLock { for key in claimed { $0[key] = owner } }
        }
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0 }.prefix(5))")
        let stillHeld = held.withLock { $0 }
        #expect(store.storedCount == stillHeld.count)
        #expect(store.usedBytes == stillHeld.keys.reduce(0) { $0 + Self.cost($1, IdempotencyRecord(state: .inFlight, fingerprint: Self.fps[0], owner: ownerToken(0), leaseDeadlineMillis: 0)) })
        // Complete past the bound (always stored), then let everything expire.
        for (key, owner) in stillHeld { #expect(store.completeNow(key, owner: owner, response: Self.response, ttl: .seconds(2))) }
        clock.advance(.seconds(3))
        store.sweep()
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        // The claims' own notes (lease + ttl, 10 s) stay until their bucket comes due.
        clock.advance(.seconds(8))
        store.sweep()
        #expect(store.expiryNoteCount == 0)
    }

    /// A sweep with a clock far ahead takes everything (that is what it was asked), and the
    /// index keeps working at the real time afterwards: records made then are kept until their
    /// expiry and swept at it, shared hashes included; a deadline that saturates at `.max`
    /// goes only at `now == .max`.
    @Test func sweepsFarAheadThenBackAtTheRealTime() {
        let keys = Self.keys(singles: 10)
        let clock = ManualClock(9_000_000)
        let store = MemoryStore(maxBytes: 1 << 40, clock: clock.function, wallClock: { 0 })
        for key in keys { #expect(store.claimNow(key, owner: ownerToken(1), fingerprint: Self.fps[0], lease: .seconds(1), ttl: .seconds(1)) == .claimed) }
        #expect(store.sweep(now: clock.now + 1 << 40) == keys.count)
        #expect(store.usedBytes == 0 && store.storedCount == 0 && store.expiryNoteCount == 0)
        clock.advance(.milliseconds(5))
        for key in keys { #expect(store.claimNow(key, owner: ownerToken(2), fingerprint: Self.fps[1], lease: .seconds(1), ttl: .seconds(3)) == .claimed) }
        _ = store.claimNow("forever" + SharedHashKeys.suffix, owner: ownerToken(3), fingerprint: Self.fps[0], lease: .seconds(1), ttl: .seconds(Int64.max))
        clock.advance(.milliseconds(3_999))
        #expect(store.sweep() == 0)
        for key in keys { #expect(store.getNow(key)?.owner == ownerToken(2), "\(key) went early") }
        clock.advance(.milliseconds(1))
        #expect(store.sweep() == keys.count)
        #expect(store.sweep(now: .max - 1) == 0)
        #expect(store.storedCount == 1)
        #expect(store.sweep(now: .max) == 1)
        #expect(store.usedBytes == 0 && store.storedCount == 0 && store.expiryNoteCount == 0)
    }

    /// Keys whose text is equal as a String but not as bytes (NFC against NFD) are different
    /// storage keys; under a shared hash they must still be told apart the same way whether
    /// the key is owned or borrowed, or a record found by a String is missed by its bytes.
    @Test func ownedAndBorrowedKeysAgreeOnEquality() {
        let nfc = "idem:caf\u{E9}", nfd = "idem:cafe\u{301}"
        #expect(nfc == nfd)  // Swift's canonical equivalence
        let a = StoreKey(nfc, collidingHash: 42), b = StoreKey(nfd, collidingHash: 42)
        var nfdBytes = Array(nfd.utf8)
        let borrowedEqual = nfdBytes.withUnsafeMutableBytes { raw -> Bool in
            // The borrowed key under the same colliding hash: compare it with the owned NFC key.
            let borrowed = StoreKey(borrowing: UnsafeRawBufferPointer(raw))
            return borrowed.fnv == StoreKey(nfd).fnv && StoreKey(nfc, collidingHash: borrowed.fnv) == borrowed
        }
        #expect((a == b) == borrowedEqual, "owned keys compare as Strings (\(a == b)), borrowed ones as bytes (\(borrowedEqual))")
    }
}
