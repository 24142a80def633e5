import Synchronization

/// Notices a Redis that came back without the records it held, across every loop's
/// connection of one process (SPEC §8, "detected store resets").
///
/// Each connection reports, after every (re)connect and every few seconds, the server's
/// `run_id` and whether the store's marker key was missing (the marker is written once,
/// without expiry, and re-written by whoever finds it gone). A connection's first report
/// never counts a missing marker: at startup several loops race to write it, and the one
/// that wrote it may report after another set the baseline; a new data set is not a reset.
/// After that:
/// - a different `run_id` means the server restarted or another node took over; records
///   written since its last save, or not yet replicated, may be gone;
/// - a missing marker means the data set lost what it had (restart without persistence,
///   `FLUSHALL`, a replica that never had it).
/// Several loops see the same event: the shared baseline makes it count once.
public final class StoreResetDetector: Sendable {
    public enum Reason: String, Sendable, CaseIterable {
        case runIDChanged = "run_id_changed"
        case recordsMissing = "records_missing"
    }

    /// The last `run_id` seen per server (one for a single server, one per Cluster node).
    private struct Baseline {
        var runIDs: [String: String] = [:]
    }

    private let baseline = Mutex(Baseline())
    private let onReset: @Sendable (Reason, String) -> Void

    /// `onReset` runs on the reporting loop's thread with the reason and a sentence for logs.
    public init(onReset: @escaping @Sendable (Reason, String) -> Void) {
        self.onReset = onReset
    }

    /// `server` names what the report is about (`RedisChannel.serverName(of:)`).
    public func observe(server: String = "primary", runID: String, markerMissing: Bool, firstReport: Bool = false) {
        let events = baseline.withLock { state -> [(Reason, String)] in
            guard let known = state.runIDs[server] else {
                state.runIDs[server] = runID
                return []
            }
            var events: [(Reason, String)] = []
            if runID != known {
                state.runIDs[server] = runID
                events.append((.runIDChanged, "redis run_id changed from \(known) to \(runID): the server restarted or failed over; records it had not persisted or replicated are lost"))
            }
            if markerMissing && !firstReport {
                events.append((.recordsMissing, "redis came back without its records (the store's marker key is gone): keys claimed before are no longer protected and a retry of them will execute again"))
            }
            return events
        }
        for (reason, detail) in events { onReset(reason, detail) }
    }
}
