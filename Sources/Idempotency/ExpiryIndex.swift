/// Which keys expire when, so that a sweep visits only the records that are due instead of
/// reading every record of the store once a second (at ten million records that was tens of
/// milliseconds of one core per second, and a shard's lock held for a millisecond at a time).
///
/// Keys are kept in buckets of 1,024 ms by their record's current expiry, and every live record
/// has exactly one entry: a write that moves the expiry to another bucket moves the key, and a
/// record removed early (released, purged, expired on access) takes its key out. So the index
/// never holds more keys than the store holds records, needs no compaction, and a key in a
/// bucket that is wholly past is a record that has expired.
struct ExpiryIndex<Key: Hashable> {
    /// log2 of the bucket width in milliseconds.
    static var bucketShift: UInt64 { 10 }

    private var buckets: [UInt64: Set<Key>] = [:]
    /// No bucket below this one holds a key (it may be lower than the first that does).
    private var firstBucket: UInt64 = .max

    /// Keys held: the records of the store, expired ones not yet swept included.
    private(set) var count = 0

    /// `key`'s record now expires at `millis`; `previous` is the expiry it held until now (nil
    /// for a record that is new).
    mutating func set(_ key: Key, expiresAt millis: UInt64, previously previous: UInt64?) {
        let bucket = millis >> Self.bucketShift
        if let previous {
            let old = previous >> Self.bucketShift
            guard old != bucket else { return }
            remove(key, fromBucket: old)
        }
        if buckets[bucket, default: []].insert(key).inserted { count += 1 }
        firstBucket = min(firstBucket, bucket)
    }

    /// `key`'s record, which expired at `millis`, is gone.
    mutating func remove(_ key: Key, expiresAt millis: UInt64) {
        remove(key, fromBucket: millis >> Self.bucketShift)
    }

    private mutating func remove(_ key: Key, fromBucket bucket: UInt64) {
        guard buckets[bucket]?.remove(key) != nil else { return }
        count -= 1
        if buckets[bucket]?.isEmpty == true { buckets[bucket] = nil }
    }

    /// Offers `expire` every key whose bucket has begun by `now`. `expire` removes the key's
    /// record if its expiry is at or before `now` and says whether it did (or whether the record
    /// was gone already); a key it keeps, whose expiry is still ahead in the bucket of `now`,
    /// stays. Every key of a bucket wholly before `now` has expired.
    mutating func sweep(now: UInt64, expire: (Key) -> Bool) {
        let due = now >> Self.bucketShift
        guard firstBucket <= due else { return }
        // Normally the buckets since the last sweep, about one; after a long pause (or in a
        // test that jumps the clock) walking the held buckets is shorter than counting seconds.
        let candidates: [UInt64] =
            due - firstBucket <= UInt64(buckets.count)
            ? Array(firstBucket...due) : buckets.keys.filter { $0 <= due }.sorted()
        for bucket in candidates {
            guard let keys = buckets.removeValue(forKey: bucket) else { continue }
            count -= keys.count
            let kept = keys.filter { !expire($0) }
            if !kept.isEmpty {
                buckets[bucket] = kept
                count += kept.count
            }
        }
        firstBucket = buckets[due] == nil ? due + 1 : due
    }
}
