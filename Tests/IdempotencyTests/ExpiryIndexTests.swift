import Testing
@testable import Idempotency

/// The index alone, against a dictionary standing in for the store's records.
@Suite struct ExpiryIndexTests {
    var index = ExpiryIndex<String>()
    var records: [String: UInt64] = [:]  // key → current expiry

    /// What the store does on a write: the record's expiry, and the index told where it moved from.
    mutating func set(_ key: String, expiresAt millis: UInt64) {
        index.set(key, expiresAt: millis, previously: records[key])
        records[key] = millis
    }

    /// What the store does on a release or a purge.
    mutating func remove(_ key: String) {
        guard let expiry = records.removeValue(forKey: key) else { return }
        index.remove(key, expiresAt: expiry)
    }

    /// What the store's sweep does: removes a record whose current expiry has passed.
    mutating func sweep(now: UInt64) -> [String] {
        var removed: [String] = []
        var records = self.records
        index.sweep(now: now) { key in
            guard let expiry = records[key] else { return true }
            guard expiry <= now else { return false }
            records[key] = nil
            removed.append(key)
            return true
        }
        self.records = records
        return removed.sorted()
    }

    @Test mutating func aRecordIsRemovedAtItsExpiryNotBeforeAndNotAtTheEndOfItsBucket() {
        set("a", expiresAt: 10_500)  // bucket 10 (10,240 ..< 11,264 ms)
        set("b", expiresAt: 10_900)
        #expect(sweep(now: 10_499) == [])
        #expect(sweep(now: 10_500) == ["a"])
        #expect(sweep(now: 10_899) == [])
        #expect(sweep(now: 10_900) == ["b"])
        #expect(index.count == 0)
    }

    @Test mutating func aRecordWhoseExpiryMovedLaterIsKeptUntilThen() {
        set("k", expiresAt: 5_000)
        set("k", expiresAt: 60_000)  // a completion or a lease refresh moved it
        #expect(index.count == 1, "one entry per record")
        #expect(sweep(now: 30_000) == [])
        #expect(records["k"] == 60_000)
        #expect(sweep(now: 60_000) == ["k"])
    }

    @Test mutating func anExpiryMovedEarlierIsHonoured() {
        set("k", expiresAt: 90_000)  // claimed: lease + ttl
        set("k", expiresAt: 20_000)  // completed early: now + ttl
        #expect(sweep(now: 20_000) == ["k"])
        #expect(index.count == 0)
        #expect(sweep(now: 90_000) == [])
    }

    @Test mutating func aRecordRemovedEarlyTakesItsKeyOut() {
        set("k", expiresAt: 5_000)
        remove("k")  // released or purged
        #expect(index.count == 0)
        set("k", expiresAt: 50_000)  // claimed again
        #expect(index.count == 1)
        #expect(sweep(now: 6_000) == [])
        #expect(records["k"] == 50_000)
        #expect(sweep(now: 50_000) == ["k"])
    }

    /// A stream of claims that are released (429s) leaves nothing behind in the index.
    @Test mutating func releasedRecordsLeaveNothing() {
        for i in 0..<10_000 {
            set("r\(i)", expiresAt: 86_400_000 + UInt64(i))
            remove("r\(i)")
        }
        #expect(index.count == 0)
        var visited = 0
        index.sweep(now: .max - 1) { _ in visited += 1; return true }
        #expect(visited == 0)
    }

    /// After a long pause (or a jumped clock) the held buckets are walked, not every second.
    @Test mutating func aLongJumpVisitsEveryDueBucketOnce() {
        for i in 0..<100 { set("k\(i)", expiresAt: UInt64(i) * 86_400_000) }
        #expect(sweep(now: 50 * 86_400_000) == (0...50).map { "k\($0)" }.sorted())
        #expect(index.count == 49)
        #expect(sweep(now: .max - 1) == (51..<100).map { "k\($0)" }.sorted())
        #expect(index.count == 0)
    }

    @Test mutating func nothingIsVisitedBeforeTheFirstDueBucket() {
        set("k", expiresAt: 1_000_000)
        var visited = 0
        index.sweep(now: 999_000) { _ in visited += 1; return true }
        #expect(visited == 0)
        #expect(index.count == 1)
    }
}
