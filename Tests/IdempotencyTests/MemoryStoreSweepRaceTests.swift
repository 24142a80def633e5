import Dispatch
import Synchronization
import Testing
@testable import Idempotency

private let fingerprint = SHA256Hasher.hash("race")
private let response = StoredResponse(status: 201, body: Array("ok".utf8))

/// Loops claim, complete, release, mark unknown and refresh leases on every thread while another
/// thread sweeps shard after shard, with the clock moving as they work: the sweep must never
/// remove a record before its expiry (a retry would then execute again), and must not leave one
/// behind after it (or keep notes for records that are gone).
@Suite struct MemoryStoreSweepRaceTests {
    /// What a worker knows of one key's record: gone, or expiring somewhere in a window (the
    /// clock may move between reading it and the store reading it).
    enum Expected { case absent, expires(earliest: UInt64, latest: UInt64) }

    @Test func sweepingAlongsideEveryTransitionRemovesExactlyTheExpiredRecords() {
        let clock = ManualClock()
        let store = MemoryStore(maxBytes: 1 << 30, clock: clock.function)
        let workers = 4, keysPerWorker = 3_000
        let done = Atomic<Int>(0)
        let earlyRemovals = Atomic<Int>(0)
        let sweeper = DispatchQueue(label: "sweeper")
        let sweeping = DispatchSemaphore(value: 0)
        sweeper.async {
            var shard = 0
            while done.load(ordering: .acquiring) < workers {
                store.sweep(shard: shard)
                shard += 1
            }
            sweeping.signal()
        }
        var expectations = [[String: Expected]](repeating: [:], count: workers)
        let results = Mutex(expectations)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var mine: [String: Expected] = [:]
            var random = SystemRandomNumberGenerator()
            let owner = OwnerToken.random()
            for index in 0..<keysPerWorker {
                let key = "w\(worker)-\(index)"
                let lease = UInt64.random(in: 1...5, using: &random) * 1000
                let ttl = UInt64.random(in: 1...20, using: &random) * 1000
                let before = clock.now
                #expect(store.claimNow(key, owner: owner, fingerprint: fingerprint, lease: .milliseconds(lease), ttl: .milliseconds(ttl)) == .claimed)
                var expected = Expected.expires(earliest: before + lease + ttl, latest: clock.now + lease + ttl)
                clock.advance(.milliseconds(1))
                switch index % 4 {
                case 0:
                    let at = clock.now
                    #expect(store.completeNow(key, owner: owner, response: response, ttl: .milliseconds(ttl)))
                    expected = .expires(earliest: at + ttl, latest: clock.now + ttl)
                case 1:
                    #expect(store.releaseNow(key, owner: owner))
                    expected = .absent
                case 2:
                    let at = clock.now
                    #expect(store.markUnknownNow(key, owner: owner, ttl: .milliseconds(ttl)))
                    expected = .expires(earliest: at + ttl, latest: clock.now + ttl)
                default:
                    // A refresh only ever moves the expiry later (lease deadline + ttl).
                    let at = clock.now
                    #expect(store.refreshNow(key, owner: owner, lease: .milliseconds(lease * 2), ttl: .milliseconds(ttl)))
                    if case .expires(let earliest, let latest) = expected {
                        expected = .expires(earliest: max(earliest, at + 2 * lease + ttl), latest: max(latest, clock.now + 2 * lease + ttl))
                    }
                }
                // Right after its last write a record's expiry is at least a second away: the
                // concurrent sweep must not have taken it.
                if case .expires = expected, store.getNow(key) == nil { earlyRemovals.add(1, ordering: .relaxed) }
                mine[key] = expected
                clock.advance(.milliseconds(1))
            }
            results.withLock { $0[worker] = mine }
            done.add(1, ordering: .releasing)
        }
        sweeping.wait()
        expectations = results.withLock { $0 }
        #expect(earlyRemovals.load(ordering: .relaxed) == 0, "records swept before their expiry")

        // At the median expiry: a full sweep leaves exactly the records still due later.
        let all = expectations.flatMap { $0 }
        let earliestExpiries = all.compactMap { if case .expires(let earliest, _) = $0.value { earliest } else { nil } }.sorted()
        let latestExpiry = all.compactMap { if case .expires(_, let latest) = $0.value { latest } else { nil } }.max()!
        let median = earliestExpiries[earliestExpiries.count / 2]
        if median > clock.now { clock.advance(.milliseconds(median - clock.now)) }
        let now = clock.now
        store.sweep()
        var surely = 0, possibly = 0
        for (_, expected) in all {
            guard case .expires(let earliest, let latest) = expected else { continue }
            if earliest > now { surely += 1 }
            if latest > now { possibly += 1 }
        }
        #expect(surely > 1000 && possibly < earliestExpiries.count - 1000, "the test should split the records (\(surely), \(possibly))")
        #expect(store.storedCount >= surely && store.storedCount <= possibly, "\(store.storedCount) records left, \(surely)…\(possibly) expected")
        for (key, expected) in all {
            if case .expires(let earliest, _) = expected, earliest > now {
                #expect(store.getNow(key) != nil, "\(key) was swept before its expiry")
            }
        }

        // Past every expiry: nothing is left, not a record and not a note.
        clock.advance(.milliseconds(latestExpiry + 1 - clock.now))
        store.sweep()
        #expect(store.storedCount == 0)
        #expect(store.expiryNoteCount == 0)
    }
}
