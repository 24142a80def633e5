/// Completed records kept in process memory, so a replay needs no store round trip.
///
/// A completed record never changes: it lives until it expires or an operator purges it. A
/// copy may therefore be served for as long as the record lives, as long as purges reach the
/// copy (the Redis store's purge log, `RedisPurgeLog`). Entries live until the earlier of the
/// record's own expiry and `maxAgeMillis`; the cache holds at most `maxBytes` (keys, bodies and
/// headers, plus a fixed overhead per entry), evicting the oldest entries first.
///
/// One cache per event loop, used only on that loop's thread: no locks.
public final class ReplayCache {
    public let maxBytes: Int
    public let maxAgeMillis: UInt64
    public private(set) var bytes = 0
    public var count: Int { entries.count }

    private struct Entry {
        var record: IdempotencyRecord
        var expiresAtMillis: UInt64
        var size: Int
        /// Position in `order` (an entry re-inserted under the same key gets a new one).
        var sequence: UInt64
    }

    private var entries: [StoreKey: Entry] = [:]
    /// Insertion order for eviction; keys whose entry was replaced or removed are skipped.
    private var order: [(key: StoreKey, sequence: UInt64)] = []
    private var orderStart = 0
    private var nextSequence: UInt64 = 0

    /// Dictionary, array and string overhead per entry, counted against `maxBytes`.
    public static let entryOverhead = 160

    public init(maxBytes: Int, maxAgeMillis: UInt64 = 60_000) {
        self.maxBytes = maxBytes
        self.maxAgeMillis = maxAgeMillis
    }

    /// The completed record under `key`, if cached and not expired at `nowMillis` (the same
    /// clock as the insertion's).
    public func lookup(_ key: String, nowMillis: UInt64) -> IdempotencyRecord? {
        lookup(StoreKey(key), nowMillis: nowMillis)
    }

    /// The same for a key given as its bytes: a replay served from here then makes no String.
    public func lookup(storageKey: UnsafeRawBufferPointer, nowMillis: UInt64) -> IdempotencyRecord? {
        lookup(StoreKey(borrowing: storageKey), nowMillis: nowMillis)
    }

    private func lookup(_ key: StoreKey, nowMillis: UInt64) -> IdempotencyRecord? {
        guard let entry = entries[key] else { return nil }
        guard entry.expiresAtMillis > nowMillis else {
            remove(key)  // removes without storing the key, which may be borrowed
            return nil
        }
        return entry.record
    }

    /// Caches a completed record that the store says lives `remainingMillis` more. Anything
    /// else (in flight, unknown, no response) is not cached: it may still change.
    public func insert(_ key: String, record: IdempotencyRecord, remainingMillis: UInt64, nowMillis: UInt64) {
        guard record.state == .completed, let response = record.response, remainingMillis > 0 else { return }
        let size = Self.entryOverhead + key.utf8.count + response.storedBytes
        guard size <= maxBytes else { return }
        let key = StoreKey(key)
        remove(key)
        while bytes + size > maxBytes, evictOldest() {}
        nextSequence &+= 1
        entries[key] = Entry(
            record: record, expiresAtMillis: nowMillis &+ min(remainingMillis, maxAgeMillis), size: size,
            sequence: nextSequence)
        order.append((key, nextSequence))
        bytes += size
        // Entries removed by expiry or purge leave stale keys behind in `order`: keep it
        // proportional to what is cached.
        if order.count - orderStart > 2 * entries.count + 1024 {
            order = order[orderStart...].filter { entries[$0.key]?.sequence == $0.sequence }
            orderStart = 0
        }
    }

    public func remove(_ key: String) {
        remove(StoreKey(key))
    }

    private func remove(_ key: StoreKey) {
        guard let entry = entries.removeValue(forKey: key) else { return }
        bytes -= entry.size
    }

    public func removeAll() {
        entries.removeAll()
        order.removeAll()
        orderStart = 0
        bytes = 0
    }

    /// Drops the oldest live entry; false when there is none.
    private func evictOldest() -> Bool {
        while orderStart < order.count {
            let (key, sequence) = order[orderStart]
            orderStart += 1
            if let entry = entries[key], entry.sequence == sequence {
                remove(key)
                compactOrder()
                return true
            }
        }
        compactOrder()
        return false
    }

    /// Reclaims the consumed front of `order` once it is most of the array.
    private func compactOrder() {
        guard orderStart > 1024, orderStart * 2 > order.count else { return }
        order.removeFirst(orderStart)
        orderStart = 0
    }
}
