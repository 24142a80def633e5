import Synchronization
import TestRandom
import Testing
@testable import Idempotency

/// Real key strings that share `StoreKey.fnv`, so that the memory store can be given keys that
/// share a hash through its public API (its expiry index notes a key's hash, not the key, and
/// its sweep finds the records under a noted hash with `RecordTable.forEachIndex(withHash:)`).
///
/// The hash takes 8-byte words in rounds `h = mix((h ^ word) * prime)`, each a bijection of the
/// state: two keys that differ only in their second and third words collide when the third
/// cancels the difference the second made (`h1 ^ w2 == h1' ^ w2'`). A third word is kept when
/// all its bytes are printable ASCII (about one in 3,000 tries).
enum SharedHashKeys {
    private static let basis: UInt64 = 0xcbf2_9ce4_8422_2325
    private static let prime: UInt64 = 0x0000_0100_0000_01B3

    private static func round(_ state: UInt64, _ word: UInt64) -> UInt64 {
        var h = state ^ word
        h &*= prime
        h ^= h >> 29
        return h
    }

    /// Little-endian, as `StoreKey` loads a word.
    private static func word(_ bytes: [UInt8]) -> UInt64 {
        bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    private static func bytes(_ word: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }

    /// Eight lowercase letters, a different word for each `n` (below 26^8).
    private static func letters(_ n: Int) -> [UInt8] {
        var n = n
        return (0..<8).map { _ in
            defer { n /= 26 }
            return UInt8(ascii: "a") + UInt8(n % 26)
        }
    }

    /// `count` distinct keys of one length sharing one hash: `prefix` (8 bytes), two words, `suffix`.
    static func group(prefix: String, suffix: String, count: Int, base: Int) -> [String] {
        let head = Array(prefix.utf8)
        precondition(head.count == 8)
        let tail = Array(suffix.utf8)
        let h0 = round(basis, word(head))
        let (w1, w2) = (letters(base), letters(base + 1))
        let target = round(h0, word(w1)) ^ w2.reversed().reduce(0) { $0 << 8 | UInt64($1) }
        var keys = [String(decoding: head + w1 + w2 + tail, as: UTF8.self)]
        var n = base + 2
        while keys.count < count {
            let w1 = letters(n)
            n += 1
            let w2 = bytes(round(h0, word(w1)) ^ target)
            guard w2.allSatisfy({ (0x21...0x7E).contains($0) }) else { continue }
            keys.append(String(decoding: head + w1 + w2 + tail, as: UTF8.self))
        }
        return keys
    }

    static let suffix = "/POST/v1/charges#9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"

    /// Groups of keys sharing a hash, every group's hash in shard `shard` of the memory store
    /// (so that the groups share a shard's table and expiry index too).
    static func groups(_ sizes: [Int], shard: UInt64) -> [[String]] {
        var base = 0
        return sizes.enumerated().map { index, size in
            let prefix = "shared-\(index % 10)"
            while StoreKey(group(prefix: prefix, suffix: suffix, count: 1, base: base)[0]).fnv % UInt64(MemoryStore.shardCount) != shard {
                base += 2
            }
            defer { base += 2 }
            return group(prefix: prefix, suffix: suffix, count: size, base: base)
        }
    }

    /// Keys of their own hash, in shard `shard`.
    static func singles(_ count: Int, shard: UInt64) -> [String] {
        var keys: [String] = []
        var n = 0
        while keys.count < count {
            let key = "single-\(n)\(suffix)"
            n += 1
            if StoreKey(key).fnv % UInt64(MemoryStore.shardCount) == shard { keys.append(key) }
        }
        return keys
    }
}

/// The memory store with keys that share a 64-bit hash: each record is swept at its own expiry,
/// never before, whichever of the keys was stored first, and nothing is left behind.
@Suite struct MemoryStoreSharedHashTests {
    static let fp = [UInt8](repeating: 7, count: 32)
    static let bucketStart: UInt64 = 1_000 << 10  // 1,024,000: the first millisecond of bucket 1,000


    @Test func theKeysReallyShareAHash() throws {
        let groups = SharedHashKeys.groups([4, 3], shard: 5)
        for group in groups {
            #expect(Set(group).count == group.count)
            #expect(Set(group.map(\.utf8.count)).count == 1)
            let hashes = Set(group.map { StoreKey($0).fnv })
            try #require(hashes.count == 1, "the keys \(group) do not share a hash: \(hashes)")
            #expect(hashes.first! % UInt64(MemoryStore.shardCount) == 5)
        }
        #expect(StoreKey(groups[0][0]).fnv != StoreKey(groups[1][0]).fnv)
    }

    /// A store at `bucketStart` holding two records claimed by `owner` under keys that share a
    /// hash in `shard`, one for each of `ttls`, stored in that order or the other: the store, the
    /// key given the first ttl, the key given the second.
    static func twoRecordsUnderOneHash(
        shard: UInt64, owner: Int, ttls: (Duration, Duration), firstTtlStoredFirst: Bool
    ) throws -> (MemoryStore, String, String) {
        let keys = SharedHashKeys.groups([2], shard: shard)[0]
        try #require(StoreKey(keys[0]).fnv == StoreKey(keys[1]).fnv)
        let store = MemoryStore(maxBytes: 1 << 40, clock: ManualClock(bucketStart).function, wallClock: { 0 })
        let (first, second) = firstTtlStoredFirst ? (keys[0], keys[1]) : (keys[1], keys[0])
        let ttl = [first: ttls.0, second: ttls.1]
        for key in keys {  // keys[0] first
            #expect(store.claimNow(key, owner: ownerToken(owner), fingerprint: fp, lease: .milliseconds(1), ttl: ttl[key]!) == .claimed)
        }
        return (store, first, second)
    }

    /// Two records under one hash, one due in ten seconds and one in an hour: each goes at its
    /// own expiry, whichever was stored first (and so comes first in the table's probe run).
    @Test(arguments: [true, false])
    func eachRecordUnderASharedHashGoesAtItsOwnExpiry(longStoredFirst: Bool) throws {
        let (store, long, short) = try Self.twoRecordsUnderOneHash(
            shard: 9, owner: 1, ttls: (.seconds(3_600), .seconds(10)), firstTtlStoredFirst: longStoredFirst)
        let shortExpiry = Self.bucketStart + 1 + 10_000
        let longExpiry = Self.bucketStart + 1 + 3_600_000

        #expect(store.sweep(now: shortExpiry - 1) == 0)
        #expect(store.sweep(now: shortExpiry) == 1, "the record due first is swept at its expiry")
        #expect(store.getNow(short) == nil)
        #expect(store.getNow(long)?.state == .inFlight, "the other record under the hash stays")
        #expect(store.storedCount == 1)
        #expect(store.sweep(now: longExpiry - 1) == 0)
        #expect(store.sweep(now: longExpiry) == 1)
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        #expect(store.expiryNoteCount == 0)
    }

    /// A record whose expiry is still ahead within the bucket of `now` keeps its note though
    /// another record under its hash expires in a later bucket (the sweep must answer the
    /// earliest expiry under the hash, not any one record's), over several sweeps of that bucket.
    @Test(arguments: [true, false])
    func aNoteIsKeptForTheEarliestExpiryUnderItsHash(farStoredFirst: Bool) throws {
        let (store, far, near) = try Self.twoRecordsUnderOneHash(
            shard: 17, owner: 2, ttls: (.seconds(3_600), .milliseconds(500)), firstTtlStoredFirst: farStoredFirst)
        let nearExpiry = Self.bucketStart + 501  // bucket 1,000, like `now` below
        for now in [Self.bucketStart, Self.bucketStart + 200, Self.bucketStart + 499, nearExpiry - 1] {
            #expect(store.sweep(now: now) == 0, "nothing is due at \(now)")
        }
        #expect(store.storedCount == 2)
        #expect(store.sweep(now: nearExpiry) == 1, "the near record is swept at its expiry")
        #expect(store.getNow(near) == nil)
        #expect(store.getNow(far) != nil)
        #expect(store.sweep(now: Self.bucketStart + 1 + 3_600_000) == 1)
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        #expect(store.expiryNoteCount == 0)
    }

    /// Three records under one hash: two due at once go in one sweep (each charge given back
    /// once), the third, due later in the same bucket, stays until its own expiry; a key
    /// released and claimed again while its old note is pending is swept at its new expiry.
    @Test func severalDueAtOnceAndAReclaimUnderASharedHash() throws {
        let keys = SharedHashKeys.groups([3], shard: 33)[0]
        try #require(Set(keys.map { StoreKey($0).fnv }).count == 1)
        let clock = ManualClock(Self.bucketStart)
        let store = MemoryStore(maxBytes: 1 << 40, clock: clock.function, wallClock: { 0 })
        for (key, ttl) in zip(keys, [399, 449, 899]) {
            #expect(store.claimNow(key, owner: ownerToken(3), fingerprint: Self.fp, lease: .milliseconds(1), ttl: .milliseconds(ttl)) == .claimed)
        }
        let bytesOfLast = store.usedBytes / 3
        #expect(store.sweep(now: Self.bucketStart + 460) == 2)
        #expect(store.storedCount == 1)
        #expect(store.usedBytes == bytesOfLast, "each swept record's charge given back exactly once")
        #expect(store.sweep(now: Self.bucketStart + 899) == 0)
        #expect(store.getNow(keys[2]) != nil)
        #expect(store.sweep(now: Self.bucketStart + 900) == 1)
        #expect(store.usedBytes == 0)

        // keys[0] claimed for an hour, released, claimed again for ten seconds while keys[1]
        // holds an hour: the hour-long notes are pending when the new claim is due.
        clock.advance(.seconds(10))
        let t = clock.now
        #expect(store.claimNow(keys[0], owner: ownerToken(4), fingerprint: Self.fp, lease: .milliseconds(1), ttl: .seconds(3_600)) == .claimed)
        #expect(store.claimNow(keys[1], owner: ownerToken(5), fingerprint: Self.fp, lease: .milliseconds(1), ttl: .seconds(3_600)) == .claimed)
        #expect(store.releaseNow(keys[0], owner: ownerToken(4)))
        #expect(store.claimNow(keys[0], owner: ownerToken(6), fingerprint: Self.fp, lease: .milliseconds(1), ttl: .seconds(10)) == .claimed)
        #expect(store.sweep(now: t + 10_000) == 0)
        #expect(store.sweep(now: t + 10_001) == 1)
        #expect(store.getNow(keys[0]) == nil)
        #expect(store.getNow(keys[1]) != nil)
        #expect(store.sweep(now: t + 3_600_000) == 0)
        #expect(store.sweep(now: t + 3_600_001) == 1)
        #expect(store.storedCount == 0)
        #expect(store.usedBytes == 0)
        #expect(store.expiryNoteCount == 0)
    }

    /// `MemoryStoreModelTests.modelBasedRandomOperations` with keys that share hashes (three
    /// groups and eight keys of their own hash, all in one shard, so that the shard's index is
    /// also compacted now and then): after every step the store holds exactly the model's
    /// records, so a record swept early or never swept shows at once.
    @Test(arguments: [1, 2, 3, 4])
    func modelBasedRandomOperationsWithSharedHashes(seed: Int) {
        let keys = SharedHashKeys.groups([5, 4, 3], shard: 42).flatMap { $0 } + SharedHashKeys.singles(8, shard: 42)
        MemoryStoreModelTests.checkAgainstModel(seed: seed, randomState: UInt64(seed) &* 0x9E37_79B9, keys: keys)
    }
}
