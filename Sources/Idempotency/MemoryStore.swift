import Synchronization

/// The embedded single-instance store (`store.backend: memory`).
///
/// One instance is shared by every event loop. Records are spread over 64
/// shards, each a `RecordTable` behind its own `Mutex`, so loops contend only
/// when their keys hash to the same shard; each operation holds exactly one
/// shard lock for a few table operations, which is what makes `claim`
/// and the owner compare-and-sets atomic. Completions run synchronously on
/// the calling thread, after the lock is released (a completion may call
/// back into the store).
///
/// Expiry is lazy: an expired record is treated as absent, and removed,
/// when its key is next touched. `sweep()` reclaims the rest; the proxy
/// calls it periodically. Time comes from an injectable millisecond clock,
/// `CLOCK_MONOTONIC` by default.
///
/// Memory is bounded (`store.memory.max_bytes`, SPEC §6): every record is
/// charged its key, body and header bytes plus a fixed overhead. A claim
/// that would pass the bound fails with `StoreError.full`, and nothing live
/// is evicted to make room: evicting a record is exactly what would let a
/// retry execute twice. A completion is always stored, even past the bound,
/// because refusing it would turn a request the upstream executed into
/// `unknown`; the overshoot is at most the in-flight claims' responses.
public final class MemoryStore: IdempotencyStore {
    public static let shardCount = 64
    /// What one record costs besides its variable bytes: its place in the shard's table (with the
    /// table's spare capacity), the allocator's headers of its key, digests and response, and its
    /// notes in the shard's expiry index. Measured, not counted: with 150-byte responses the
    /// process grew by 926 to 952 bytes per record from 236,962 to 954,651 records
    /// (BENCHMARKS.md, "Store record size"), and a record is charged 937.
    public static let recordOverhead = 424

    private struct Entry {
        var record: IdempotencyRecord
        var expiresAtMillis: UInt64
        /// What this entry is charged against `maxBytes`.
        var cost: Int
    }

    private struct ShardState {
        var records = RecordTable<Entry>()
        /// Keys by their hash (`StoreKey.fnv`): a note is 8 bytes and holds no key's text.
        var expiring = ExpiryIndex<UInt64>()

        /// Where `key`'s live entry is. An expired one is removed first (lazy expiry) and its
        /// charge handed to `uncharge`.
        ///
        /// A found entry is then read and changed through `records[valueAt: index]`, which
        /// yields the stored value in place: no copy of the entry (a retain and release of each
        /// of its buffers) on a claim or a completion.
        mutating func liveIndex(of key: StoreKey, now: UInt64, uncharge: (Int) -> Void) -> Int? {
            guard let index = records.index(forKey: key) else { return nil }
            let (expiresAt, cost) = Self.inPlace(&records[valueAt: index]) { ($0.expiresAtMillis, $0.cost) }
            guard expiresAt <= now else { return index }
            uncharge(cost)
            records.remove(at: index)
            return nil
        }

        /// Removes the entry at `index` and hands back its charge.
        mutating func remove(at index: Int) -> Int {
            let cost = records[valueAt: index].cost
            records.remove(at: index)
            return cost
        }

        /// `body` on a value in place (a read through `inout` copies nothing).
        @inline(__always)
        static func inPlace<R>(_ entry: inout Entry, _ body: (inout Entry) -> R) -> R { body(&entry) }

        /// Drops the notes of records that are gone once they pile up (`ExpiryIndex`).
        mutating func compactIndexIfNeeded() {
            guard expiring.needsCompaction(liveRecords: records.count) else { return }
            expiring = .compacted(from: records.all.lazy.map { (key: $0.key.fnv, expiresAt: $0.value.expiresAtMillis) })
        }
    }

    private final class Shard: Sendable {
        let state = Mutex<ShardState>(ShardState())
    }

    private let shards: [Shard]
    private let clock: @Sendable () -> UInt64
    /// Unix milliseconds, for a record's creation time only (operators read it; leases and
    /// expiry run on `clock`, which never jumps).
    private let wallClock: @Sendable () -> UInt64
    public let maxBytes: Int
    private let used = Atomic<Int>(0)

    /// - Parameters:
    ///   - maxBytes: the bound on charged bytes; claims beyond it fail with `.full`.
    ///   - clock: current time in milliseconds; must not go backwards.
    ///   - wallClock: Unix time in milliseconds, stamped on each claim as its creation time.
    public init(
        maxBytes: Int = 256 << 20, clock: @escaping @Sendable () -> UInt64 = MonotonicClock.nowMillis,
        wallClock: @escaping @Sendable () -> UInt64 = MonotonicClock.unixMillis
    ) {
        self.clock = clock
        self.wallClock = wallClock
        self.maxBytes = maxBytes
        self.shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    /// Bytes currently charged (records, bodies and overhead, expired records until swept).
    public var usedBytes: Int { used.load(ordering: .relaxed) }

    private static func cost(_ key: StoreKey, _ record: IdempotencyRecord) -> Int {
        var total = recordOverhead + key.text.utf8.count + record.fingerprint.count + record.owner.count
        if let response = record.response { total += response.storedBytes }
        return total
    }

    public func claim(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy,
        completion: @escaping (Result<ClaimOutcome, StoreError>) -> Void
    ) {
        completion(claimResult(key: key, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl, expiredLease: expiredLease))
    }

    /// The memory store answers every claim at once.
    public func claimNow(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError>? {
        claimResult(key: key, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl, expiredLease: expiredLease)
    }

    /// The same claim for a key given as its bytes. A record the table holds is found under the
    /// bytes alone, so a replay makes no String; `text` is asked for only to store a new record.
    public func claimNow(
        storageKey: UnsafeRawBufferPointer, text: () -> String, owner: [UInt8], fingerprint: [UInt8], lease: Duration,
        ttl: Duration, expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError>? {
        claimResult(
            probe: StoreKey(borrowing: storageKey), text: text, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl,
            expiredLease: expiredLease)
    }

    private func claimResult(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError> {
        // Hashed once for the shard and the table.
        claimResult(probe: StoreKey(key), text: { key }, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl, expiredLease: expiredLease)
    }

    private func claimResult(
        probe: StoreKey, text: () -> String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError> {
        let now = clock()
        let outcome = shard(for: probe).state.withLock { state -> ClaimOutcome? in
            // A key that borrows the caller's bytes must never be stored, in the table or the
            // expiry index: an existing record is handled under the table's own key, a new one
            // under one that owns its text.
            let outcome: ClaimOutcome?
            if let index = state.liveIndex(of: probe, now: now, uncharge: { forceCharge(-$0) }) {
                outcome = claimExisting(
                    at: index, in: &state, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl,
                    expiredLease: expiredLease, now: now)
            } else {
                let key = probe.isBorrowed ? StoreKey(text(), hash: probe.fnv) : probe
                outcome = claimFree(
                    key: key, in: &state, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl, now: now)
            }
            state.compactIndexIfNeeded()
            return outcome
        }
        guard let outcome else {
            return .failure(.full("the memory store holds \(usedBytes) of its \(maxBytes) bytes (store.memory.max_bytes)"))
        }
        return .success(outcome)
    }

    public func complete(
        key: String, owner: [UInt8], response: StoredResponse, ttl: Duration,
        completion: @escaping (Result<Bool, StoreError>) -> Void
    ) {
        completion(.success(completeResult(key: key, owner: owner, response: response, ttl: ttl)))
    }

    /// The memory store answers every completion at once (and a completion is always stored,
    /// even past `maxBytes`, so it cannot fail).
    public func completeNow(key: String, owner: [UInt8], response: StoredResponse, ttl: Duration) -> Bool? {
        completeResult(key: key, owner: owner, response: response, ttl: ttl)
    }

    private func completeResult(key: String, owner: [UInt8], response: StoredResponse, ttl: Duration) -> Bool {
        let now = clock()
        return updateOwned(key: key, owner: owner, now: now, alreadyIn: .completed) { storeKey, entry in
            entry.record.state = .completed
            entry.record.response = response
            entry.expiresAtMillis = Self.deadline(now, ttl)
            let cost = Self.cost(storeKey, entry.record)
            forceCharge(cost - entry.cost)
            entry.cost = cost
        }
    }

    public func release(key: String, owner: [UInt8], completion: @escaping (Result<Bool, StoreError>) -> Void) {
        let now = clock()
        let key = StoreKey(key)
        let released = shard(for: key).state.withLock { state -> Bool in
            guard let index = state.liveIndex(of: key, now: now, uncharge: { forceCharge(-$0) }),
                Self.ownedInFlight(state.records[valueAt: index], owner)
            else { return false }
            forceCharge(-state.remove(at: index))
            return true
        }
        completion(.success(released))
    }

    public func markUnknown(
        key: String, owner: [UInt8], ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void
    ) {
        let now = clock()
        completion(.success(updateOwned(key: key, owner: owner, now: now, alreadyIn: .unknown) { _, entry in
            entry.record.state = .unknown
            entry.expiresAtMillis = Self.deadline(now, ttl)
        }))
    }

    public func refreshLease(
        key: String, owner: [UInt8], lease: Duration, ttl: Duration,
        completion: @escaping (Result<Bool, StoreError>) -> Void
    ) {
        let now = clock()
        completion(.success(updateOwned(key: key, owner: owner, now: now) { _, entry in
            entry.record.leaseDeadlineMillis = Self.deadline(now, lease)
            // The key outlives the lease it carries by ttl, whatever ttl is (SPEC §4).
            entry.expiresAtMillis = max(entry.expiresAtMillis, Self.deadline(entry.record.leaseDeadlineMillis, ttl))
        }))
    }

    public func get(key: String, completion: @escaping (Result<IdempotencyRecord?, StoreError>) -> Void) {
        let now = clock()
        let key = StoreKey(key)
        let record = shard(for: key).state.withLock { state in
            state.liveIndex(of: key, now: now, uncharge: { forceCharge(-$0) }).map { state.records[valueAt: $0].record }
        }
        completion(.success(record))
    }

    public func inspect(key: String, completion: @escaping (Result<RecordInspection?, StoreError>) -> Void) {
        let now = clock()
        let key = StoreKey(key)
        let entry = shard(for: key).state.withLock { state in
            state.liveIndex(of: key, now: now, uncharge: { forceCharge(-$0) }).map { state.records[valueAt: $0] }
        }
        completion(.success(entry.map { entry in
            RecordInspection(
                record: entry.record, expiresInMillis: entry.expiresAtMillis - now,
                leaseRemainingMillis: entry.record.state == .inFlight && entry.record.leaseDeadlineMillis > now
                    ? entry.record.leaseDeadlineMillis - now : 0)
        }))
    }

    public func purge(key: String, evenInFlight: Bool, completion: @escaping (Result<PurgeResult, StoreError>) -> Void) {
        let now = clock()
        let key = StoreKey(key)
        // Under one lock: a claim made by another worker cannot slip between the look and the delete.
        let result = shard(for: key).state.withLock { state -> PurgeResult in
            guard let index = state.liveIndex(of: key, now: now, uncharge: { forceCharge(-$0) }) else { return .absent }
            let record = state.records[valueAt: index].record
            if !evenInFlight && record.state == .inFlight && record.leaseDeadlineMillis > now {
                return .stillInFlight(leaseRemainingMillis: record.leaseDeadlineMillis - now)
            }
            forceCharge(-state.remove(at: index))
            return .purged
        }
        completion(.success(result))
    }

    /// Removes every record whose TTL has passed at `now`; returns how many.
    @discardableResult
    public func sweep(now: UInt64) -> Int {
        (0..<shards.count).reduce(0) { $0 + sweep(shard: $1, now: now) }
    }

    /// The same for one shard (`index` modulo `shardCount`). A loop sweeps one shard per tick,
    /// and visits only the records its expiry index says are due (`ExpiryIndex`), so neither
    /// the loop nor the shard's lock is held for a pass over every record.
    @discardableResult
    public func sweep(shard index: Int, now: UInt64) -> Int {
        shards[index % shards.count].state.withLock { state in
            var removed = 0
            state.expiring.sweep(now: now) { hash in
                // The records noted under `hash` (one, unless two keys share all 64 bits): each
                // due one is removed, and the earliest expiry of the rest tells the index
                // whether to keep the note.
                while true {
                    var due: Int?
                    var earliestLeft: UInt64?
                    state.records.forEachIndex(withHash: hash) { index in
                        let expiresAt = state.records[valueAt: index].expiresAtMillis
                        if expiresAt <= now { due = index } else { earliestLeft = min(earliestLeft ?? .max, expiresAt) }
                    }
                    guard let due else { return earliestLeft }
                    // `state.records`, not `state.remove(at:)`: `state.expiring` is being changed.
                    forceCharge(-state.records[valueAt: due].cost)
                    state.records.remove(at: due)
                    removed += 1
                }
            }
            return removed
        }
    }

    /// `sweep(shard:now:)` at the store clock's current time.
    @discardableResult
    public func sweep(shard index: Int) -> Int {
        sweep(shard: index, now: clock())
    }

    /// `sweep(now:)` at the store clock's current time.
    @discardableResult
    public func sweep() -> Int {
        sweep(now: clock())
    }

    /// Notes held by the shards' expiry indexes, stale ones included (tests).
    var expiryNoteCount: Int {
        shards.reduce(0) { total, shard in total + shard.state.withLock { $0.expiring.noteCount } }
    }

    /// Records currently held, including expired ones not yet swept.
    public var storedCount: Int {
        shards.reduce(0) { total, shard in total + shard.state.withLock { $0.records.count } }
    }

    // MARK: - Helpers (all called with the shard lock held)

    /// `claim` on a live record (`liveIndex`), read and changed in place, with the shard's lock
    /// held: a record whose lease runs (or that is settled) is returned; a dead owner's claim
    /// is held as unknown or, under `release`, replaced by this claim.
    private func claimExisting(
        at index: Int, in state: inout ShardState, owner: [UInt8], fingerprint: [UInt8],
        lease: Duration, ttl: Duration, expiredLease: IndeterminatePolicy, now: UInt64
    ) -> ClaimOutcome? {
        let (leaseExpired, previousExpiry, replaced) = ShardState.inPlace(&state.records[valueAt: index]) {
            ($0.record.leaseExpired(atMillis: now), $0.expiresAtMillis, $0.cost)
        }
        // The one copy: the record an existing claim returns.
        guard leaseExpired else { return ShardState.inPlace(&state.records[valueAt: index]) { .existing($0.record) } }
        let key = state.records.key(at: index)
        switch expiredLease {
        case .hold:
            // The owner died or stalled past its lease: whether the upstream ran the request
            // is unknown, so hold the key.
            let (expiresAt, outcome) = ShardState.inPlace(&state.records[valueAt: index]) { entry -> (UInt64, ClaimOutcome) in
                entry.record.state = .unknown
                entry.expiresAtMillis = Self.deadline(now, ttl)
                return (entry.expiresAtMillis, .existing(entry.record))
            }
            Self.note(key.fnv, expiresAt: expiresAt, in: &state.expiring, previousExpiry: previousExpiry)
            return outcome
        case .release:
            // Claimed over the dead record, under the key the table already holds.
            guard let entry = newClaim(key: key, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl, now: now, replacing: replaced)
            else { return nil }
            ShardState.inPlace(&state.records[valueAt: index]) { $0 = entry }
            Self.note(key.fnv, expiresAt: entry.expiresAtMillis, in: &state.expiring, previousExpiry: previousExpiry)
            return .claimed
        }
    }

    /// `claim` on a key the table does not hold (or held only expired), with the shard's lock
    /// held. `key` owns its text: it is stored.
    private func claimFree(
        key: StoreKey, in state: inout ShardState, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        now: UInt64
    ) -> ClaimOutcome? {
        guard let entry = newClaim(key: key, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl, now: now, replacing: 0)
        else { return nil }
        state.records.insert(entry, forKey: key)
        Self.note(key.fnv, expiresAt: entry.expiresAtMillis, in: &state.expiring, previousExpiry: nil)
        return .claimed
    }

    /// A new in-flight entry, charged against `maxBytes` net of the `replacing` entry's cost;
    /// nil when the store is full.
    private func newClaim(
        key: StoreKey, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration, now: UInt64, replacing: Int
    ) -> Entry? {
        let record = IdempotencyRecord(
            state: .inFlight, fingerprint: fingerprint, owner: owner,
            leaseDeadlineMillis: Self.deadline(now, lease), createdAtMillis: wallClock())  // read only for a new claim
        let cost = Self.cost(key, record)
        guard charge(cost - replacing) else { return nil }
        // A record never expires before its lease deadline, whatever ttl is (SPEC §4), and
        // outlives it by ttl so that a dead owner's claim is found and held as unknown.
        return Entry(record: record, expiresAtMillis: Self.deadline(now, lease + ttl), cost: cost)
    }

    /// Notes `entry`'s expiry under its key's hash unless the key is noted in that bucket already
    /// (`previousExpiry`, the expiry it held until now, was in the same bucket).
    /// Takes the expiry alone: passing the entry would copy it (a retain and release of each
    /// of its buffers) on every claim and completion.
    private static func note(_ hash: UInt64, expiresAt: UInt64, in expiring: inout ExpiryIndex<UInt64>, previousExpiry: UInt64?) {
        let shift = ExpiryIndex<UInt64>.bucketShift
        if let previousExpiry, previousExpiry >> shift == expiresAt >> shift { return }
        expiring.note(hash, expiresAt: expiresAt)
    }

    /// Applies `change` if the live record is in flight and owned by `owner`. With `alreadyIn`,
    /// a record this owner already moved to that state also succeeds (unchanged): the same
    /// contract as the Redis scripts, where a write may be retried after a lost reply.
    private func updateOwned(
        key: String, owner: [UInt8], now: UInt64, alreadyIn: RecordState? = nil, _ change: @Sendable (StoreKey, inout Entry) -> Void
    ) -> Bool {
        let key = StoreKey(key)
        return shard(for: key).state.withLock { state -> Bool in
            guard let index = state.liveIndex(of: key, now: now, uncharge: { forceCharge(-$0) }) else { return false }
            // Changed in place (`liveIndex`): no copy of the entry's buffers.
            let (updated, previousExpiry, expiresAt) = ShardState.inPlace(&state.records[valueAt: index]) { entry -> (Bool, UInt64, UInt64) in
                let previousExpiry = entry.expiresAtMillis
                if let alreadyIn, entry.record.state == alreadyIn, entry.record.owner == owner { return (true, previousExpiry, previousExpiry) }
                guard entry.record.state == .inFlight && entry.record.owner == owner else { return (false, previousExpiry, previousExpiry) }  // `ownedInFlight`
                change(key, &entry)
                return (true, previousExpiry, entry.expiresAtMillis)
            }
            if updated && expiresAt != previousExpiry {
                Self.note(key.fnv, expiresAt: expiresAt, in: &state.expiring, previousExpiry: previousExpiry)
            }
            state.compactIndexIfNeeded()  // lease refreshes add notes too
            return updated
        }
    }

    /// Adds `bytes` to the charge unless that would pass `maxBytes` (releases always pass).
    private func charge(_ bytes: Int) -> Bool {
        guard bytes > 0 else {
            forceCharge(bytes)
            return true
        }
        var current = used.load(ordering: .relaxed)
        while true {
            guard current + bytes <= maxBytes else { return false }
            let (exchanged, original) = used.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    private func forceCharge(_ bytes: Int) {
        used.add(bytes, ordering: .relaxed)
    }

    /// The owner compare-and-set condition shared by every transition out
    /// of `inFlight`. A lease that expired without anyone taking over still
    /// belongs to its owner: only `claim` takes a dead lease away.
    private static func ownedInFlight(_ entry: Entry, _ owner: [UInt8]) -> Bool {
        entry.record.state == .inFlight && entry.record.owner == owner
    }

    private static func deadline(_ now: UInt64, _ duration: Duration) -> UInt64 {
        let (sum, overflow) = now.addingReportingOverflow(duration.milliseconds)
        return overflow ? .max : sum
    }

    /// FNV-1a over the key's UTF-8: stable across runs (unlike `Hasher`),
    /// and storage keys end in a SHA-256 hex digest, so they spread evenly.
    private func shard(for key: StoreKey) -> Shard {
        shards[Int(key.fnv % UInt64(Self.shardCount))]
    }
}
