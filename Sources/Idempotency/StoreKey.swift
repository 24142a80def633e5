import Glibc

/// A storage key with its FNV-1a hash computed once: the hash picks the memory store's shard and
/// its slot in the shard's `RecordTable`, and feeds the replay cache's dictionary (through
/// `Hasher`, which still seeds it per process), so a 70-byte key is hashed once per operation
/// rather than three times by SipHash.
///
/// A key a table keeps owns its text. A key made only to find a record may instead borrow
/// bytes its caller holds for that one call (`MemoryStore.claimNow(storageKey:...)`,
/// `ReplayCache.lookup(storageKey:nowMillis:)`), so that finding a record makes no String; such
/// a key is never stored (see `MemoryStore.claimResult`).
struct StoreKey: Hashable, @unchecked Sendable {  // a borrowed key never leaves the call that made it
    private enum Name {
        case owned(String)
        case borrowed(UnsafeRawBufferPointer)
    }

    private let name: Name
    let fnv: UInt64

    init(_ text: String) {
        var copy = text
        fnv = copy.withUTF8 { Self.hash(UnsafeRawBufferPointer($0)) }
        name = .owned(text)
    }

    /// `text`, whose hash `hash` the caller already has (it must be `text`'s).
    init(_ text: String, hash: UInt64) {
        assert(StoreKey(text).fnv == hash, "the text is not the key that was hashed")
        fnv = hash
        name = .owned(text)
    }

    /// `text` under a hash that is not its own, for tests of the paths that tell apart keys
    /// sharing a hash. Storage keys end in a SHA-256 digest, so they share one only by chance,
    /// about once in 2^64 pairs (`MemoryStoreSharedHashTests` builds strings that do).
    init(_ text: String, collidingHash hash: UInt64) {
        fnv = hash
        name = .owned(text)
    }

    init(borrowing bytes: UnsafeRawBufferPointer) {
        fnv = Self.hash(bytes)
        name = .borrowed(bytes)
    }

    var isBorrowed: Bool {
        if case .borrowed = name { return true }
        return false
    }

    var text: String {
        switch name {
        case .owned(let text): return text
        case .borrowed(let bytes): return String(decoding: bytes, as: UTF8.self)
        }
    }

    private func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch name {
        case .owned(let text):
            if let result = text.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return result }
            var copy = text
            return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        case .borrowed(let bytes):
            return body(bytes)
        }
    }

    /// FNV-1a over 8-byte words (then the tail bytes), read in place: a storage key is about
    /// 70 bytes and hashed on every store call, byte by byte that is a long chain of multiplies.
    /// The dictionary's own seeded `Hasher` still mixes the result.
    private static func hash(_ raw: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var offset = 0
        while offset + 8 <= raw.count {
            hash ^= raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            hash &*= 0x0000_0100_0000_01B3
            hash ^= hash >> 29
            offset += 8
        }
        while offset < raw.count {
            hash ^= UInt64(raw[offset])
            hash &*= 0x0000_0100_0000_01B3
            offset += 1
        }
        // A final mix (MurmurHash3's fmix64 step), so the low bits that pick the shard
        // depend on every byte, the last word's high bytes included.
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return hash
    }

    func hash(into hasher: inout Hasher) { hasher.combine(fnv) }

    /// What the dictionary asks for (`Hashable`'s underscored requirement, which `hashValue`
    /// and `hash(into:)` default to): the precomputed hash mixed with the table's seed (which
    /// Swift derives from the table's storage, not a secret) by a multiply-xorshift round,
    /// instead of a SipHash pass per lookup. Flooding a shard's table would take keys whose
    /// storage keys collide in the bucket bits, and a storage key is the SHA-256 of the
    /// client's key: about 2^b digests per colliding key for a table of 2^b buckets.
    func _rawHashValue(seed: Int) -> Int {
        var h = fnv ^ UInt64(UInt(bitPattern: seed))
        h &*= 0x9e37_79b9_7f4a_7c15
        h ^= h >> 32
        return Int(truncatingIfNeeded: h)
    }

    /// Byte for byte, owned or borrowed alike: `String`'s `==` would find canonically equivalent
    /// texts (a precomposed "é" and "e" with a combining accent) equal, and a key must not be
    /// the same key or not depending on which form of the call looked it up.
    static func == (a: StoreKey, b: StoreKey) -> Bool {
        guard a.fnv == b.fnv else { return false }
        return a.withBytes { x in b.withBytes { y in x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0) } }
    }
}
