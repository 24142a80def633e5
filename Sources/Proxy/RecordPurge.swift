import Idempotency

/// An operator's purge (`DELETE /records`, `idemproxy records purge`), refused while the
/// original request may still be running unless forced.
///
/// Purging a live claim lets a retry execute upstream while the original still runs: the one
/// thing the proxy exists to prevent. So the record is inspected first, and a live claim is
/// left alone unless `force`. A record that turns into a live claim between the two calls (its
/// TTL ends and a new request claims the key) is still purged: the window is one store round
/// trip, where a compare-and-delete would need its own store operation.
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
        guard !force else {
            purge(store: store, key: key, completion: completion)
            return
        }
        store.inspect(key: key) { result in
            switch result {
            case .success(nil):
                // Deleted already (an earlier purge whose announcement failed, or a delete behind
                // idemproxy's back): the purge still goes out, so replicas' caches drop it too.
                purge(store: store, key: key, completion: completion)
            case .success(let inspection?) where inspection.isLiveClaim:
                completion(.stillInFlight(leaseRemainingMillis: inspection.leaseRemainingMillis))
            case .success:
                purge(store: store, key: key, completion: completion)
            case .failure(let error):
                completion(.failed(error, mayHavePurged: false))
            }
        }
    }

    private static func purge(store: any IdempotencyStore, key: String, completion: @escaping (Outcome) -> Void) {
        store.purge(key: key) { result in
            switch result {
            case .success(true): completion(.purged)
            case .success(false): completion(.absent)
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
