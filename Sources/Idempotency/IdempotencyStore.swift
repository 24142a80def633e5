/// Result of `IdempotencyStore.claim`.
public enum ClaimOutcome: Sendable, Equatable {
    /// A new in-flight record was created for the caller's owner token.
    case claimed
    /// A record already exists (possibly just turned into `unknown` because
    /// its lease had expired under `IndeterminatePolicy.hold`).
    case existing(IdempotencyRecord)
}

/// Store failures. Each case says whether the command may have taken effect, because that
/// decides what the proxy must undo: a claim that may have been written is released by
/// compare-and-set once the store answers again (SPEC §4, "the claim's reply is lost").
public enum StoreError: Error, Sendable, Equatable {
    /// The command was never sent (not connected, refused before queueing, a Redis error
    /// reply): it certainly did not take effect.
    case unavailable(String)
    /// No reply within the command's deadline. The command may still have been applied;
    /// owner tokens make undoing or repeating it safe.
    case timeout
    /// The connection broke after the command was queued: it may have been applied.
    case connectionLost(String)
    /// The store is full (memory store at `store.memory.max_bytes`, Redis `OOM`): nothing was
    /// written and nothing live is evicted to make room.
    case full(String)
    /// The stored bytes are not a valid record.
    case corrupt(String)
    /// The write reached the primary, but fewer replicas than `min_replicas_acked` confirmed
    /// it in time: a failover now could lose it.
    case notReplicated(String)

    /// True when the command may have been applied although it failed.
    public var mayHaveBeenApplied: Bool {
        switch self {
        case .timeout, .connectionLost, .notReplicated: return true
        case .unavailable, .full, .corrupt: return false
        }
    }
}

/// What happens to a request whose outcome is unknown (SPEC §4,
/// `indeterminate`): the request was sent upstream but no complete
/// response came back, or the owner died and its lease expired.
public enum IndeterminatePolicy: Sendable, Equatable {
    /// Keep an `unknown` record until its TTL: retries get `409
    /// outcome-unknown`, so the operation is never run twice by the proxy.
    case hold
    /// Delete the record: a retry executes again (at-least-once).
    case release
}

/// The idempotency record store.
///
/// Threading contract: the proxy runs one event loop per thread. Each call
/// is made on a loop thread, and its `completion` runs exactly once on that
/// same thread: either synchronously before the call returns (the memory
/// store) or later from that thread's event loop (the Redis store). The
/// closures are therefore not `@Sendable`. An implementation shared by all
/// loops must be internally synchronised; one confined to a loop declares
/// that by documentation and marks itself `@unchecked Sendable`.
///
/// Every transition out of `inFlight` is a compare-and-set on the owner
/// token (SPEC §4), so a stale owner can never overwrite or delete a record
/// another owner holds.
public protocol IdempotencyStore: AnyObject, Sendable {
    /// Atomically: if there is no record, create `inFlight(owner,
    /// fingerprint, lease deadline = now + lease)` with key TTL `lease + ttl`
    /// (a record never expires before its lease deadline, and a dead owner's
    /// record is still there to be held as `unknown`) and
    /// return `.claimed`. If there is an in-flight record whose lease has
    /// expired, then with `.hold` turn it into `unknown` (keeping its
    /// fingerprint and owner, TTL `ttl`) and return it as `.existing`; with
    /// `.release` delete it and claim anew (`.claimed`). Otherwise return
    /// `.existing(record)` unchanged.
    func claim(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy,
        completion: @escaping (Result<ClaimOutcome, StoreError>) -> Void)

    /// Only if the record is in flight and owned by `owner`: replace it with
    /// `completed(response)`, TTL `ttl`, and report `true`. `false` means the
    /// owner no longer holds it (lease lost, record released or replaced).
    func complete(
        key: String, owner: [UInt8], response: StoredResponse, ttl: Duration,
        completion: @escaping (Result<Bool, StoreError>) -> Void)

    /// Only if in flight and owned by `owner`: delete the record, so a retry
    /// can execute. Safe to repeat; a second call reports `false`.
    func release(key: String, owner: [UInt8], completion: @escaping (Result<Bool, StoreError>) -> Void)

    /// Only if in flight and owned by `owner`: mark it `unknown`, TTL `ttl`.
    func markUnknown(
        key: String, owner: [UInt8], ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void)

    /// Only if in flight and owned by `owner`: move the lease deadline to
    /// now + `lease`, and the record's expiry to at least that deadline +
    /// `ttl`. The owner calls this while the upstream exchange is alive, so a
    /// slow but healthy request never loses its claim, whatever `ttl` is; and
    /// if the owner then dies, its record outlives the lease by `ttl`, so the
    /// next claim finds the expired lease and holds the key as `unknown`
    /// rather than finding nothing and executing again.
    func refreshLease(
        key: String, owner: [UInt8], lease: Duration, ttl: Duration,
        completion: @escaping (Result<Bool, StoreError>) -> Void)

    /// Reads the record (waiters poll with it under `concurrent: wait`).
    func get(key: String, completion: @escaping (Result<IdempotencyRecord?, StoreError>) -> Void)

    /// The record with its remaining time, for operators (SPEC §8 `/records`); nil when there is
    /// none. Changes nothing: an expired lease is reported as it stands, not turned `unknown`.
    func inspect(key: String, completion: @escaping (Result<RecordInspection?, StoreError>) -> Void)

    /// An operator's purge (SPEC §4 "unchanged until ttl or an operator releases it"): deletes
    /// the record, so the key may be used again at once. Unless `evenInFlight`, a live claim (in
    /// flight, its lease running: the original request may still be executing) is left alone
    /// and reported instead, decided and deleted in one atomic step: a check and a separate
    /// delete would let a retry that claimed the key between them lose its claim, and run
    /// upstream beside the original. With `evenInFlight`, whatever its state or owner is deleted;
    /// an owner still running finds its record gone and counts a lost lease.
    func purge(key: String, evenInFlight: Bool, completion: @escaping (Result<PurgeResult, StoreError>) -> Void)

    /// `claim`, answered at once by a store that can (see the extension below), else nil.
    func claimNow(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError>?

    /// `claimNow` for a storage key given as its bytes (the proxy writes them into a buffer it
    /// reuses), so that a store holding the record need not make a String to find it. `text` is
    /// the same key as a String, asked for only when the store must keep the key (the memory
    /// store asks while it holds a shard's lock, so `text` must not call back into the store).
    func claimNow(
        storageKey: UnsafeRawBufferPointer, text: () -> String, owner: [UInt8], fingerprint: [UInt8], lease: Duration,
        ttl: Duration, expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError>?

    /// `complete`, answered at once by a store that can, else nil. Such a store cannot fail
    /// to answer (one that can reports through `complete`, whose failures the proxy retries).
    func completeNow(key: String, owner: [UInt8], response: StoredResponse, ttl: Duration) -> Bool?
}

/// Stores that answer at once (the memory store) also answer without a completion closure,
/// which the proxy would otherwise allocate for every claim and completion. By default nil: the
/// store answers later, through the closure-taking method.
extension IdempotencyStore {
    public func claimNow(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError>? {
        nil
    }

    public func claimNow(
        storageKey: UnsafeRawBufferPointer, text: () -> String, owner: [UInt8], fingerprint: [UInt8], lease: Duration,
        ttl: Duration, expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError>? {
        nil
    }

    public func completeNow(key: String, owner: [UInt8], response: StoredResponse, ttl: Duration) -> Bool? {
        nil
    }
}

/// What an operator's purge found (`IdempotencyStore.purge`).
public enum PurgeResult: Sendable, Equatable {
    case purged
    /// There was no record (it may have expired, or been purged already).
    case absent
    /// Left alone: in flight with this much lease left (not asked to purge even that).
    case stillInFlight(leaseRemainingMillis: UInt64)
}

extension IdempotencyStore {
    /// Deletes the record whatever its state; `false` when there was none.
    public func purge(key: String, completion: @escaping (Result<Bool, StoreError>) -> Void) {
        purge(key: key, evenInFlight: true) { result in
            completion(result.map { $0 == .purged })
        }
    }
}

/// One record as an operator sees it (`IdempotencyStore.inspect`).
public struct RecordInspection: Sendable, Equatable {
    public var record: IdempotencyRecord
    /// Time until the store forgets the record.
    public var expiresInMillis: UInt64
    /// In flight only: time until the lease runs out; 0 once it has (the owner is gone, and the
    /// next request with the key finds it `unknown` under `hold`, or claims it anew under
    /// `release`).
    public var leaseRemainingMillis: UInt64

    public init(record: IdempotencyRecord, expiresInMillis: UInt64, leaseRemainingMillis: UInt64) {
        self.record = record
        self.expiresInMillis = expiresInMillis
        self.leaseRemainingMillis = leaseRemainingMillis
    }

    /// In flight with its lease running: the original request may still be executing.
    public var isLiveClaim: Bool { record.state == .inFlight && leaseRemainingMillis > 0 }
}

extension Duration {
    /// Whole milliseconds, rounded down, clamped to `0...UInt64.max`.
    /// Store deadlines and TTLs are kept in milliseconds (Redis `PX`), and so are the
    /// proxy's timeouts.
    ///
    /// One 128-by-64-bit division of the attosecond count: `components` divides the 128-bit
    /// count in software, and every claim and completion converts a lease or a TTL.
    public var milliseconds: UInt64 {
        let count = attoseconds
        guard count > 0 else { return 0 }
        let magnitude = UInt128(count)
        let perMillisecond: UInt64 = 1_000_000_000_000_000
        let high = UInt64(truncatingIfNeeded: magnitude >> 64)
        // The quotient fits in 64 bits exactly when the high word is below the divisor.
        guard high < perMillisecond else { return .max }
        return perMillisecond.dividingFullWidth((high: high, low: UInt64(truncatingIfNeeded: magnitude))).quotient
    }
}
