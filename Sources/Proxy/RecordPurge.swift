import Idempotency

/// An operator's purge (`DELETE /records`, `idemproxy records purge`), refused while the
/// original request may still be running unless forced.
///
/// Purging a live claim lets a retry execute upstream while the original still runs: the one
/// thing the proxy exists to prevent. So unless forced, the store deletes the record only if it
/// is not a live claim, deciding and deleting in one atomic step (`IdempotencyStore.purge`):
/// a retry that claims the key at that moment keeps its claim.
public enum RecordPurge {
    public enum Outcome: Sendable, Equatable {
        case purged
        case absent
        /// Refused: the record is in flight with this much lease left.
        case stillInFlight(leaseRemainingMillis: UInt64)
        /// `mayHavePurged`: the purge itself failed in a way that may have been applied.
        case failed(StoreError, mayHavePurged: Bool)
    }

    public static func run(store: any IdempotencyStore, key: String, force: Bool, completion: @escaping (Outcome) -> Void) {
        store.purge(key: key, evenInFlight: force) { result in
            switch result {
            case .success(.purged): completion(.purged)
            case .success(.absent): completion(.absent)
            case .success(.stillInFlight(let lease)): completion(.stillInFlight(leaseRemainingMillis: lease))
            case .failure(let error): completion(.failed(error, mayHavePurged: error.mayHaveBeenApplied))
            }
        }
    }

    /// Why a live claim was not purged; `override` says how to force it (`add force=1`,
    /// `pass --force`).
    public static func refusal(leaseRemainingMillis: UInt64, override: String) -> String {
        "the request is still in flight (lease \(RecordReport.duration(millis: leaseRemainingMillis)) left): purging its record now would "
            + "let a retry run upstream while the original still runs; wait until it ends, or \(override) to purge anyway"
    }
}
