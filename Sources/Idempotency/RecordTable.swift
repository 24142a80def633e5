/// The memory store's table of one shard: records by storage key, laid out so that storing a
/// new record writes memory next to the previous one and growing the table rehashes no record.
///
/// Swift's `Dictionary` keeps a record's key and value in slots of a table sized for its
/// capacity, at a random place, and moves every one of them when the table doubles; a memory
/// store of a million records then spent about 4% of the unique-key path's CPU samples finding
/// and inserting (against under 2% for the whole claim with this table), and held 1,034 to 1,145
/// bytes of RSS per record as its tables doubled, against a steady 991 to 998 with this table
/// (BENCHMARKS.md, "Store record size"). Here records live in one dense array in the order they
/// were added (a new record goes at its end), and a separate index of 8-byte slots finds them:
/// a claim of a new key reads one slot's cache line, and a doubling of the index reads the
/// records' hashes in order (the records' own array, when it doubles, is moved in one copy).
///
/// The index is open addressing with linear probing. A slot packs the upper 32 bits of the
/// key's mixed hash (which also pick the slot's home) with the record's position plus one, 0
/// being empty; deleting shifts the following slots of the run back (no tombstones), and
/// removing a record moves the last record into its place (`remove(at:)`), so positions stay
/// dense. Positions are only valid until the next insertion or removal.
struct RecordTable<Value> {
    struct Element {
        let key: StoreKey
        var value: Value
    }

    /// The records, dense, in no particular order once some have been removed.
    private(set) var elements: [Element] = []
    private var slots: [UInt64]
    private var mask: Int
    /// Mixed into every hash, per table: where a key's slot is depends on a value a client
    /// never sees (the storage key is already a SHA-256 digest of the client's key, so steering
    /// keys into one run would take about 2^b digests per key for a table of 2^b slots).
    private let seed: UInt64
    /// All ones but in tests, which keep a few bits to make keys share homes and tags.
    private let tagMask: UInt64

    static var minimumCapacity: Int { 16 }

    init(seed: UInt64 = UInt64.random(in: .min ... .max), tagMask: UInt64 = 0xFFFF_FFFF) {
        self.seed = seed
        self.tagMask = tagMask
        slots = Array(repeating: 0, count: Self.minimumCapacity)
        mask = Self.minimumCapacity - 1
    }

    var count: Int { elements.count }
    /// Slots in the index (a power of two), for tests.
    var slotCount: Int { slots.count }

    /// The upper 32 bits of the key's hash mixed with the seed. A tag may be 0: a slot is empty
    /// when its position (the low half) is.
    @inline(__always)
    private func tag(_ key: StoreKey) -> UInt64 { tag(hash: key.fnv) }

    @inline(__always)
    private func tag(hash: UInt64) -> UInt64 {
        var h = hash ^ seed
        h &*= 0x9e37_79b9_7f4a_7c15
        h ^= h >> 29
        return (h >> 32) & tagMask
    }

    @inline(__always)
    private func home(ofTag tag: UInt64) -> Int { Int(truncatingIfNeeded: tag) & mask }

    /// The slot where `key`'s probe starts at the index's current size (tests aim keys with it).
    func home(of key: StoreKey) -> Int { home(ofTag: tag(key)) }

    /// Where `key`'s record is in `elements`, or nil.
    func index(forKey key: StoreKey) -> Int? {
        let tag = tag(key)
        var slot = home(ofTag: tag)
        // Keys are compared in the buffer, where they are borrowed rather than copied out.
        return elements.withUnsafeBufferPointer { elements in
            while true {
                let packed = slots[slot]
                let position = Int(truncatingIfNeeded: packed & 0xFFFF_FFFF) - 1
                if position < 0 { return nil }
                if packed >> 32 == tag, elements[position].key == key { return position }
                slot = (slot + 1) & mask
            }
        }
    }

    /// Calls `body` with the position of each record whose key's hash (`StoreKey.fnv`) is `hash`:
    /// one or none, unless two keys of the shard share all 64 bits. `body` must not change the
    /// table. The memory store's expiry index notes keys by their hash alone (8 bytes a note).
    func forEachIndex(withHash hash: UInt64, _ body: (Int) -> Void) {
        _ = firstSlot(withTag: tag(hash: hash)) { position in
            if elements[position].key.fnv == hash { body(position) }
            return false
        }
    }

    /// Walks the probe run of `tag` from its home to the first empty slot and returns the first
    /// slot with that tag whose position `matches`, or nil. (`index(forKey:)`, the hot lookup,
    /// walks the same run with the key compared in the records' buffer.)
    private func firstSlot(withTag tag: UInt64, where matches: (_ position: Int) -> Bool) -> Int? {
        var slot = home(ofTag: tag)
        while true {
            let packed = slots[slot]
            let position = Int(truncatingIfNeeded: packed & 0xFFFF_FFFF) - 1
            if position < 0 { return nil }
            if packed >> 32 == tag, matches(position) { return slot }
            slot = (slot + 1) & mask
        }
    }

    /// The record at `index`, read or changed in place.
    subscript(valueAt index: Int) -> Value {
        _read { yield elements[index].value }
        _modify { yield &elements[index].value }
    }

    func key(at index: Int) -> StoreKey { elements[index].key }

    /// Adds a record under a key the table does not hold (the caller looked first); returns its
    /// position. `key` must own its text.
    @discardableResult
    mutating func insert(_ value: Value, forKey key: StoreKey) -> Int {
        assert(!key.isBorrowed, "a borrowed key must never be stored")
        assert(index(forKey: key) == nil, "the key is in the table already")
        // A slot holds a position in 32 bits.
        precondition(elements.count < Int(UInt32.max), "a shard holds at most 2^32 - 1 records")
        // At most 3/4 full: a miss then reads about 8 slots at the worst (linear probing's
        // ½(1 + 1/(1-α)²)), one or two cache lines.
        if (elements.count + 1) * 4 > slots.count * 3 { rebuildIndex(capacity: slots.count * 2) }
        elements.append(Element(key: key, value: value))
        place(tag: tag(key), position: elements.count)
        return elements.count - 1
    }

    /// Removes the record at `index`; the last record takes its position.
    mutating func remove(at index: Int) {
        vacate(slotHolding(position: index))
        let last = elements.count - 1
        if index == last {
            elements.removeLast()
        } else {
            // The last record moves into `index`, and its slot with it. Moved, not swapped:
            // `swapAt` copies both elements (a retain and release of each of their buffers).
            let movedSlot = slotHolding(position: last)
            slots[movedSlot] = (slots[movedSlot] & ~0xFFFF_FFFF) | UInt64(index + 1)
            let moved = elements.removeLast()
            elements[index] = moved  // releases the removed record
        }
        // Shrink once an eighth full, so that a shard that once held millions of records does
        // not keep room for them after a sweep (neither `Array` nor `Dictionary` ever gives
        // capacity back on removal).
        if slots.count > Self.minimumCapacity && elements.count * 8 < slots.count { shrink() }
    }

    /// Every record, for rebuilding the expiry index.
    var all: some Sequence<Element> { elements }

    /// The slot that points at `position`, found by the record's hash and compared by position
    /// alone (no key comparison, no copy of the key).
    private func slotHolding(position: Int) -> Int {
        firstSlot(withTag: tag(hash: elements[position].key.fnv)) { $0 == position }!
    }

    private mutating func place(tag: UInt64, position: Int) {
        var slot = home(ofTag: tag)
        while slots[slot] & 0xFFFF_FFFF != 0 { slot = (slot + 1) & mask }
        slots[slot] = tag << 32 | UInt64(position)
    }

    /// Empties `slot` and moves back the slots after it in its run whose home allows it
    /// (backward-shift deletion), so that no probe stops early at the hole.
    private mutating func vacate(_ slot: Int) {
        var hole = slot
        var next = (hole + 1) & mask
        while slots[next] & 0xFFFF_FFFF != 0 {
            let home = home(ofTag: slots[next] >> 32)
            // `next` may move into the hole if its home is not in (hole, next], cyclically.
            let distanceToHome = (next - home) & mask
            let distanceToHole = (next - hole) & mask
            if distanceToHome >= distanceToHole {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = 0
    }

    private mutating func shrink() {
        var kept: [Element] = []
        kept.reserveCapacity(elements.count * 2)
        kept.append(contentsOf: elements)
        elements = kept
        rebuildIndex(capacity: slots.count / 2)
    }

    private mutating func rebuildIndex(capacity: Int) {
        slots = Array(repeating: 0, count: capacity)
        mask = capacity - 1
        // Each record's hash is read where it lies: copying the key out would retain and release
        // its text, a cache miss per record in a table of millions.
        let hashes = elements.withUnsafeBufferPointer { elements in elements.map { $0.key.fnv } }
        for (position, hash) in hashes.enumerated() { place(tag: tag(hash: hash), position: position + 1) }
    }
}
