import Testing
@testable import Idempotency

/// The index alone, against a dictionary standing in for the store's records.
@Suite struct ExpiryIndexTests {
    var index = ExpiryIndex<String>()
    var records: [String: UInt64] = [:]  // key → current expiry

    mutating func set(_ key: String, expiresAt millis: UInt64) {
        records[key] = millis
        index.note(key, expiresAt: millis)
    }

    /// What the store's sweep does: removes a record whose current expiry has passed.
    mutating func sweep(now: UInt64) -> [String] {
        var removed: [String] = []
        var records = self.records
        index.sweep(now: now) { key in
            guard let expiry = records[key] else { return nil }
            guard expiry <= now else { return expiry }
            records[key] = nil
            removed.append(key)
            return nil
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
        #expect(index.noteCount == 0)
    }

    @Test mutating func aStaleNoteNeverRemovesARecordWhoseExpiryMovedLater() {
        set("k", expiresAt: 5_000)
        set("k", expiresAt: 60_000)  // a completion or a lease refresh moved it
        #expect(sweep(now: 30_000) == [])
        #expect(records["k"] == 60_000)
        #expect(index.noteCount == 1, "the stale note is gone, the current one stays")
        #expect(sweep(now: 60_000) == ["k"])
    }

    @Test mutating func anExpiryMovedEarlierIsHonoured() {
        set("k", expiresAt: 90_000)  // claimed: lease + ttl
        set("k", expiresAt: 20_000)  // completed early: now + ttl
        #expect(sweep(now: 20_000) == ["k"])
        #expect(sweep(now: 90_000) == [], "the old note finds nothing")
        #expect(index.noteCount == 0)
    }

    @Test mutating func aRecordRemovedEarlyLeavesANoteThatFindsNothing() {
        set("k", expiresAt: 5_000)
        records["k"] = nil  // released or purged
        set("k", expiresAt: 50_000)  // claimed again
        #expect(sweep(now: 6_000) == [])
        #expect(records["k"] == 50_000)
        #expect(sweep(now: 50_000) == ["k"])
    }

    /// After a long pause (or a jumped clock) the held buckets are walked, not every second.
    @Test mutating func aLongJumpVisitsEveryDueBucketOnce() {
        for i in 0..<100 { set("k\(i)", expiresAt: UInt64(i) * 86_400_000) }
        #expect(sweep(now: 50 * 86_400_000) == (0...50).map { "k\($0)" }.sorted())
        #expect(index.noteCount == 49)
        #expect(sweep(now: .max - 1) == (51..<100).map { "k\($0)" }.sorted())
        #expect(index.noteCount == 0)
    }

    @Test mutating func nothingIsVisitedBeforeTheFirstDueBucket() {
        set("k", expiresAt: 1_000_000)
        var visited = 0
        index.sweep(now: 999_000) { _ in visited += 1; return nil }
        #expect(visited == 0)
        #expect(index.noteCount == 1)
    }

    @Test mutating func compactionKeepsOneNotePerLiveRecordAtItsCurrentExpiry() {
        for i in 0..<10_000 { set("gone\(i)", expiresAt: 100_000) }
        records = [:]
        set("a", expiresAt: 5_000)
        set("a", expiresAt: 9_000)
        set("b", expiresAt: 200_000)
        #expect(index.needsCompaction(liveRecords: records.count))
        index = .compacted(from: records.map { (key: $0.key, expiresAt: $0.value) })
        #expect(index.noteCount == 2)
        #expect(!index.needsCompaction(liveRecords: records.count))
        #expect(sweep(now: 8_999) == [])
        #expect(sweep(now: 9_000) == ["a"])
        #expect(sweep(now: 200_000) == ["b"])
    }
}
