import Idempotency
import Testing

@Suite struct ReplayCacheUnitTests {
    func record(_ state: RecordState = .completed, body: Int = 100) -> IdempotencyRecord {
        IdempotencyRecord(
            state: state, fingerprint: [UInt8](repeating: 1, count: 32), owner: [UInt8](repeating: 2, count: 16),
            leaseDeadlineMillis: 0, response: state == .completed ? StoredResponse(status: 200, body: [UInt8](repeating: 3, count: body)) : nil)
    }

    @Test func servesACompletedRecordUntilItExpires() {
        let cache = ReplayCache(maxBytes: 1 << 20)
        cache.insert("k", record: record(), remainingMillis: 500, nowMillis: 1000)
        #expect(cache.lookup("k", nowMillis: 1499) == record())
        #expect(cache.lookup("k", nowMillis: 1500) == nil)
        #expect(cache.count == 0 && cache.bytes == 0)
    }

    /// A key given as bytes finds what its String stored, and its expiry removes the entry
    /// without the bytes ever being kept: the buffer is overwritten with the next key.
    @Test func aKeyGivenAsBytesIsFoundAndNeverKept() {
        let cache = ReplayCache(maxBytes: 1 << 20)
        cache.insert("idem:{aa}", record: record(), remainingMillis: 500, nowMillis: 1000)
        cache.insert("idem:{bb}", record: record(body: 7), remainingMillis: 5000, nowMillis: 1000)
        var buffer = Array("idem:{aa}".utf8)
        #expect(buffer.withUnsafeBytes { cache.lookup(storageKey: $0, nowMillis: 1499) } == record())
        buffer = Array("idem:{bb}".utf8)
        #expect(buffer.withUnsafeBytes { cache.lookup(storageKey: $0, nowMillis: 1499) } == record(body: 7))
        buffer = Array("idem:{cc}".utf8)
        #expect(buffer.withUnsafeBytes { cache.lookup(storageKey: $0, nowMillis: 1499) } == nil)
        // Expired when looked up by bytes: removed, and the other entry is still found by String.
        buffer = Array("idem:{aa}".utf8)
        #expect(buffer.withUnsafeBytes { cache.lookup(storageKey: $0, nowMillis: 1500) } == nil)
        buffer.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0x7A) }
        #expect(cache.count == 1)
        #expect(cache.lookup("idem:{aa}", nowMillis: 1000) == nil)
        #expect(cache.lookup("idem:{bb}", nowMillis: 1600) == record(body: 7))
        cache.remove("idem:{bb}")
        #expect(cache.count == 0 && cache.bytes == 0)
    }

    @Test func capsAnEntrysLifeAtMaxAge() {
        let cache = ReplayCache(maxBytes: 1 << 20, maxAgeMillis: 100)
        cache.insert("k", record: record(), remainingMillis: 60_000, nowMillis: 0)
        #expect(cache.lookup("k", nowMillis: 99) != nil)
        #expect(cache.lookup("k", nowMillis: 100) == nil)
    }

    @Test func keepsNothingThatMayStillChange() {
        let cache = ReplayCache(maxBytes: 1 << 20)
        cache.insert("flight", record: record(.inFlight), remainingMillis: 1000, nowMillis: 0)
        cache.insert("unknown", record: record(.unknown), remainingMillis: 1000, nowMillis: 0)
        cache.insert("expired", record: record(), remainingMillis: 0, nowMillis: 0)
        #expect(cache.count == 0)
    }

    @Test func staysWithinItsBytesEvictingTheOldestFirst() {
        // Each entry: overhead, a 1-byte key and the stored response (its replay bytes).
        let one = ReplayCache.entryOverhead + 1 + record(body: 1000).response!.storedBytes
        #expect(one > 1000 && one < 1600)
        let cache = ReplayCache(maxBytes: 3 * one)
        for name in ["a", "b", "c", "d"] { cache.insert(name, record: record(body: 1000), remainingMillis: 1000, nowMillis: 0) }
        #expect(cache.bytes <= cache.maxBytes)
        #expect(cache.lookup("a", nowMillis: 1) == nil)
        #expect(cache.lookup("b", nowMillis: 1) != nil && cache.lookup("d", nowMillis: 1) != nil)
        // Replacing an entry re-orders it: "b" is now the newest, "c" goes next.
        cache.insert("b", record: record(body: 1000), remainingMillis: 1000, nowMillis: 1)
        cache.insert("e", record: record(body: 1000), remainingMillis: 1000, nowMillis: 1)
        #expect(cache.lookup("c", nowMillis: 2) == nil)
        #expect(cache.lookup("b", nowMillis: 2) != nil)
        // An entry larger than the whole cache is not kept, and evicts nothing.
        cache.insert("huge", record: record(body: 1 << 20), remainingMillis: 1000, nowMillis: 2)
        #expect(cache.lookup("huge", nowMillis: 3) == nil && cache.count == 3)
    }

    @Test func removalsAreAccounted() {
        let cache = ReplayCache(maxBytes: 1 << 20)
        for i in 0..<5000 {
            cache.insert("k\(i)", record: record(), remainingMillis: 1000, nowMillis: 0)
            cache.remove("k\(i)")
        }
        #expect(cache.count == 0 && cache.bytes == 0)
        cache.insert("x", record: record(), remainingMillis: 1000, nowMillis: 0)
        cache.removeAll()
        #expect(cache.lookup("x", nowMillis: 1) == nil && cache.bytes == 0)
    }
}
