import Glibc
import Synchronization
import TestRandom
import Testing
@testable import Idempotency

/// `MemoryStore.claimNow(storageKey:text:...)` against the same store driven by Strings only:
/// every claim given as bytes uses a buffer allocated for that call, scribbled over and freed
/// right after it, so a borrowed key that reached the table or the expiry index would be
/// found (or missed) under garbage by every later operation, sweep and compaction.
@Suite struct BorrowedStoreKeyTests {
    private final class Clock: Sendable {
        let millis = Atomic<UInt64>(7_000_000)
        var now: UInt64 { millis.load(ordering: .relaxed) }
        func advance(_ ms: UInt64) { millis.add(ms, ordering: .relaxed) }
        var function: @Sendable () -> UInt64 { { [self] in self.now } }
    }

    static let fps = [SHA256Hasher.hash("A"), SHA256Hasher.hash("B")]
    static let response = StoredResponse(status: 201, headers: [HeaderPair(name: "X", value: "y")], body: bytes("made"))


    /// Claims `key` through the bytes API from a one-shot heap buffer, then poisons and frees it.
    static func claimFromBytes(
        _ store: MemoryStore, _ key: String, textCalls: inout Int, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError>? {
        let utf8 = Array(key.utf8)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(utf8.count, 1), alignment: 1)
        defer {
            buffer.initializeMemory(as: UInt8.self, repeating: 0xEE)
            buffer.deallocate()
        }
        buffer.copyBytes(from: utf8)
        let any: any IdempotencyStore = store
        return any.claimNow(
            storageKey: UnsafeRawBufferPointer(rebasing: buffer[0..<utf8.count]), text: { textCalls += 1; return key }, owner: owner,
            fingerprint: fingerprint, lease: lease, ttl: ttl, expiredLease: expiredLease)
    }

    static func same(_ a: ClaimOutcome, _ b: ClaimOutcome) -> Bool {
        switch (a, b) {
        case (.claimed, .claimed): return true
        case (.existing(let x), .existing(let y)):
            return x.state == y.state && x.owner == y.owner && x.fingerprint == y.fingerprint && x.response == y.response
                && x.leaseDeadlineMillis == y.leaseDeadlineMillis
        default: return false
        }
    }

    @Test(arguments: [11, 12, 13, 14])
    func bytesClaimsBehaveExactlyLikeStringClaims(seed: Int) {
        var rng = SeededRandom(state: UInt64(seed) &* 0x9E37_79B9)
        let clock = Clock()
        let viaBytes = MemoryStore(maxBytes: 1 << 40, clock: clock.function, wallClock: { 0 })
        let viaText = MemoryStore(maxBytes: 1 << 40, clock: clock.function, wallClock: { 0 })
        // Real storage keys (scoped, unscoped, two prefixes) and short ones, including two of
        // the same length that differ in one byte, and the empty key.
        var keys: [String] = []
        for i in 0..<8 {
            keys.append(storageKey(prefix: "idem:", scope: i % 2 == 0 ? Array("Bearer c\(i)".utf8) : nil, key: "k\(i)"))
        }
        keys += [storageKey(prefix: "other-prefix:", scope: nil, key: "k1"), "a", "b", "", "idem:{x}", "é-prefix:{x}"]
        var owners: [String: [UInt8]] = [:]  // the last claimant of each key, in both stores
        var next = 1
        var textCalls = 0
        var stringClaims = 0

        for step in 0..<6_000 {
            let key = keys[Int(rng.next() % UInt64(keys.count))]
            let lease = Duration.milliseconds(Int64([1, 900, 5_000][Int(rng.next() % 3)]))
            let ttl = Duration.milliseconds(Int64([0, 1_000, 60_000][Int(rng.next() % 3)]))
            let policy: IndeterminatePolicy = rng.next() % 2 == 0 ? .hold : .release
            let fp = Self.fps[Int(rng.next() % 2)]
            switch rng.next() % 100 {
            case 0..<40:
                let owner = ownerToken(next)
                next += 1
                let before = textCalls
                let a = Self.claimFromBytes(viaBytes, key, textCalls: &textCalls, owner: owner, fingerprint: fp, lease: lease, ttl: ttl, expiredLease: policy)
                let b = viaText.claimNow(key, owner: owner, fingerprint: fp, lease: lease, ttl: ttl, expiredLease: policy)
                guard case .success(let outcome)? = a else {
                    Issue.record("step \(step): bytes claim gave \(String(describing: a))")
                    return
                }
                #expect(Self.same(outcome, b), "step \(step) \(key): \(outcome) vs \(b)")
                if outcome == .claimed {
                    owners[key] = owner
                    stringClaims += 1
                }
                // The String is asked for at most once, and only when a record is made.
                #expect(textCalls - before <= (outcome == .claimed ? 1 : 0), "step \(step): text asked for on \(outcome)")
            case 40..<55:
                let owner = owners[key] ?? ownerToken(0)
                #expect(viaBytes.completeNow(key, owner: owner, response: Self.response) == viaText.completeNow(key, owner: owner, response: Self.response))
            case 55..<68:
                let owner = owners[key] ?? ownerToken(0)
                #expect(viaBytes.releaseNow(key, owner: owner) == viaText.releaseNow(key, owner: owner), "step \(step)")
            case 68..<74:
                let owner = owners[key] ?? ownerToken(0)
                #expect(viaBytes.markUnknownNow(key, owner: owner) == viaText.markUnknownNow(key, owner: owner), "step \(step)")
            case 74..<80:
                let owner = owners[key] ?? ownerToken(0)
                #expect(viaBytes.refreshNow(key, owner: owner, lease: lease) == viaText.refreshNow(key, owner: owner, lease: lease), "step \(step)")
            case 80..<85:
                var a: Result<Bool, StoreError>?
                var b: Result<Bool, StoreError>?
                viaBytes.purge(key: key) { a = $0 }
                viaText.purge(key: key) { b = $0 }
                #expect(a == b, "step \(step)")
            case 85..<95:
                clock.advance([1, 500, 1_100, 70_000][Int(rng.next() % 4)])
            default:
                let shard = Int(rng.next() % UInt64(MemoryStore.shardCount))
                #expect(viaBytes.sweep(shard: shard) == viaText.sweep(shard: shard), "step \(step)")
            }
            for k in keys {
                let a = viaBytes.getNow(k)
                let b = viaText.getNow(k)
                #expect(a?.state == b?.state && a?.owner == b?.owner && a?.response == b?.response, "step \(step) \(k)")
            }
            #expect(viaBytes.storedCount == viaText.storedCount, "step \(step)")
            #expect(viaBytes.usedBytes == viaText.usedBytes, "step \(step)")
            #expect(viaBytes.expiryNoteCount == viaText.expiryNoteCount, "step \(step)")
        }
        #expect(stringClaims > 100)
        clock.advance(10_000_000)
        #expect(viaBytes.sweep() == viaText.sweep())
        #expect(viaBytes.storedCount == 0 && viaBytes.usedBytes == 0)
    }

    /// Equal keys hash alike whichever side borrows: a dictionary of owned keys finds every
    /// key from borrowed bytes, and no other.
    @Test func ownedAndBorrowedKeysAgreeOnEqualityAndHash() {
        var table: [StoreKey: Int] = [:]
        let texts = (0..<300).map { storageKey(prefix: $0 % 3 == 0 ? "" : "p\($0 % 7):", scope: nil, key: "k\($0)") } + ["", "a", "ab", "é", "e\u{301}"]
        for (i, t) in texts.enumerated() { table[StoreKey(t)] = i }
        for (i, t) in texts.enumerated() {
            var copy = Array(t.utf8)
            copy.withUnsafeBytes { raw in
                let probe = StoreKey(borrowing: raw)
                #expect(table[probe] == i, "\(t)")
                #expect(probe == StoreKey(t) && StoreKey(t) == probe && probe.hashValue == StoreKey(t).hashValue)
            }
            if !copy.isEmpty {
                copy[copy.count - 1] ^= 1
                let expected = texts.lastIndex { Array($0.utf8) == copy }
                copy.withUnsafeBytes { raw in #expect(table[StoreKey(borrowing: raw)] == expected, "\(t) flipped") }
            }
        }
        // Canonically equivalent Strings with different bytes are different keys, as before.
        #expect(StoreKey("é") != StoreKey("e\u{301}"))
    }
}
