/// Which keys may expire when, so that a sweep visits only the records that are due instead of
/// reading every record of the store once a second (at ten million records that was tens of
/// milliseconds of one core per second, and a shard's lock held for a millisecond at a time).
///
/// Keys are noted in buckets of 1,024 ms by the expiry they were given. A key is noted again
/// whenever its expiry changes and never taken out of its old bucket: the sweep asks for each
/// key's current expiry and removes only what is due, so a stale note costs one lookup when its
/// bucket comes due, and a record removed early (released, purged, expired on access) leaves a
/// note that finds nothing. Every expiry a record has had is noted, so its current one is.
///
/// A live record usually carries two notes (its claim's and its completion's expiry). Notes
/// left by records that are gone would otherwise stay until their bucket comes due, a day with
/// the default ttl: a stream of claims that are released (429s) would grow the index without
/// bound and outside `max_bytes`. `compacted(from:)` rebuilds it from the live records once the
/// notes outnumber them more than `needsCompaction` allows.
struct ExpiryIndex<Key: Hashable> {
    /// log2 of the bucket width in milliseconds.
    static var bucketShift: UInt64 { 10 }

    private var buckets: [UInt64: [Key]] = [:]
    /// No bucket below this one holds a note.
    private var firstBucket: UInt64 = .max

    /// How many notes are held (stale ones included), for tests and memory accounting.
    private(set) var noteCount = 0

    /// Stale notes a shard may hold beyond two per live record before it is rebuilt.
    /// They are not charged against `max_bytes` (the memory store notes a key's 8-byte hash;
    /// when notes held the key itself, each kept the key's text alive, about 140 bytes), so the
    /// margin is small: 64 per shard. A rebuild costs a pass over the live records and follows at least that many new
    /// notes, so its cost per note stays constant however small the margin.
    static var compactionMargin: Int { 64 }

    /// More notes than two per live record and the margin: the rebuild's pass over the
    /// records is paid for by the notes that built up since the last one.
    func needsCompaction(liveRecords: Int) -> Bool {
        noteCount > 2 * liveRecords + Self.compactionMargin
    }

    /// One note per live record, at its current expiry; stale notes are gone.
    static func compacted(from records: some Sequence<(key: Key, expiresAt: UInt64)>) -> ExpiryIndex {
        var index = ExpiryIndex()
        for record in records { index.note(record.key, expiresAt: record.expiresAt) }
        return index
    }

    mutating func note(_ key: Key, expiresAt millis: UInt64) {
        let bucket = millis >> Self.bucketShift
        buckets[bucket, default: []].append(key)
        firstBucket = min(firstBucket, bucket)
        noteCount += 1
    }

    /// Visits every key noted with an expiry at or before `now`. `visit` removes every record
    /// noted under the key whose current expiry has passed (a key may stand for more than one
    /// record: the memory store notes hashes) and returns the earliest current expiry of those
    /// left, or nil when none is; a key whose expiry is still ahead in the bucket of `now` stays
    /// noted (a record moved to a later bucket has a note there already).
    mutating func sweep(now: UInt64, visit: (Key) -> UInt64?) {
        let due = now >> Self.bucketShift
        guard firstBucket <= due else { return }
        // Normally the buckets since the last sweep, about one; after a long pause (or in a
        // test that jumps the clock) walking the held buckets is shorter than counting seconds.
        let candidates: [UInt64] =
            due - firstBucket <= UInt64(buckets.count)
            ? Array(firstBucket...due) : buckets.keys.filter { $0 <= due }.sorted()
        for bucket in candidates {
            guard let keys = buckets.removeValue(forKey: bucket) else { continue }
            noteCount -= keys.count
            var notYetDue: [Key] = []
            for key in keys {
                // Only the bucket of `now` can hold an expiry still ahead.
                if let expiry = visit(key), expiry > now, expiry >> Self.bucketShift == bucket { notYetDue.append(key) }
            }
            if !notYetDue.isEmpty {
                buckets[bucket] = notYetDue
                noteCount += notYetDue.count
            }
        }
        firstBucket = buckets[due] == nil ? due + 1 : due
    }
}
