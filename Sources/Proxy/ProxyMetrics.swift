import Idempotency
import Observability
import Synchronization

/// How a request ended, as counted by `idemproxy_requests_total{outcome=...}` (SPEC §8).
public enum RequestOutcome: Int, CaseIterable, Sendable {
    case forwarded, replayed, inFlight, mismatch, missingKey, invalidKey, noKey, unguarded
    case storeUnavailable, outcomeUnknown, upstreamError, missingScope, storeFull, unscoped

    public var label: String {
        switch self {
        case .forwarded: return "forwarded"
        case .replayed: return "replayed"
        case .inFlight: return "in_flight"
        case .mismatch: return "mismatch"
        case .missingKey: return "missing_key"
        case .invalidKey: return "invalid_key"
        case .noKey: return "no_key"
        case .unguarded: return "unguarded"
        case .storeUnavailable: return "store_unavailable"
        case .outcomeUnknown: return "outcome_unknown"
        case .upstreamError: return "upstream_error"
        case .missingScope: return "missing_scope"
        case .storeFull: return "store_full"
        case .unscoped: return "unscoped"
        }
    }
}

/// Process-wide counters, updated with relaxed atomics from every loop (the only state shared
/// across threads on the hot path).
public final class ProxyMetrics: Sendable {
    /// Requests by outcome, indexed by `RequestOutcome.rawValue`.
    private let outcomes = AtomicCounters(count: RequestOutcome.allCases.count)
    /// Claims that found the store unreachable and were forwarded unguarded (pass_through).
    public let passThroughForwards = Atomic<Int>(0)
    /// Compare-and-sets (refresh, complete, mark unknown) that found the record gone or owned by
    /// another request: the owner lost its lease (SPEC §4, §8).
    public let lostLeases = Atomic<Int>(0)
    /// Store writes (complete, release, mark unknown) retried after a store fault.
    public let storeWriteRetries = Atomic<Int>(0)
    /// Store writes waiting for their next attempt (a gauge).
    public let pendingStoreWrites = Atomic<Int>(0)
    /// Writes given up because too many were already waiting for the store.
    public let abandonedStoreWrites = Atomic<Int>(0)
    /// Claims whose reply was lost (timeout, disconnect), released by compare-and-set.
    public let deferredReleases = Atomic<Int>(0)
    /// A Redis that came back without its records, by how it was noticed.
    public let storeResetsRunID = Atomic<Int>(0)
    public let storeResetsRecordsMissing = Atomic<Int>(0)
    /// Replays answered from a worker's replay cache, without a store round trip.
    public let replayCacheHits = Atomic<Int>(0)

    /// Whole requests by outcome, from the parsed head to the response's last byte queued.
    private let requestDurations: [Histogram]
    private let requestDurationRefs: [Unmanaged<Histogram>]
    /// Upstream exchanges, from forwarding the request to the end of the response.
    public let upstreamDuration = Histogram()
    /// Store calls by operation, from issuing the call to its completion.
    public let storeClaimDuration = Histogram()
    public let storeCompleteDuration = Histogram()
    public let activeConnections = Atomic<Int>(0)
    /// Readiness inputs, written by the loops and read by /readyz.
    public let redisConnectionsReady = Atomic<Int>(0)
    /// Redis latency, errors and readiness by node.
    let redisNodes = RedisNodeMetrics()
    public let upstreamReachable = Atomic<Bool>(true)
    public let shuttingDown = Atomic<Bool>(false)
    /// The embedded store, when it is the backend: its fill is read at each scrape.
    private let memoryStore = Mutex<MemoryStore?>(nil)

    public init() {
        requestDurations = RequestOutcome.allCases.map { _ in Histogram() }
        requestDurationRefs = requestDurations.map { Unmanaged.passUnretained($0) }
    }

    /// One finished request: its outcome's latency histogram.
    public func observeRequest(_ outcome: RequestOutcome, nanoseconds: UInt64) {
        // Through the unmanaged copy: the histogram taken from the array would be retained and
        // released around the call, and `requestDurations` keeps it alive as long as `self`.
        requestDurationRefs[outcome.rawValue]._withUnsafeGuaranteedRef { $0.observe(nanoseconds: nanoseconds) }
    }

    /// Called on every exchange: a load first, so the shared cache line is only written when
    /// the flag actually changes (all loops would otherwise bounce it between cores).
    @inline(__always)
    public func markUpstreamReachable() {
        if !upstreamReachable.load(ordering: .relaxed) { upstreamReachable.store(true, ordering: .relaxed) }
    }

    /// Reports `store`'s fill with every scrape (`idemproxy_memory_store_*`).
    public func watch(_ store: MemoryStore) {
        memoryStore.withLock { $0 = store }
    }

    /// The whole registry in Prometheus text format (SPEC §8).
    public func exposition() -> String {
        var text = PrometheusText()
        text.counter(
            "idemproxy_requests_total", help: "Requests by how they ended.",
            samples: RequestOutcome.allCases.map { ([("outcome", $0.label)], value($0)) })
        text.counter(
            "idemproxy_store_pass_through_total", help: "Guarded requests forwarded unguarded because the store was unavailable (pass_through).",
            samples: [([], passThroughForwards.load(ordering: .relaxed))])
        text.counter(
            "idemproxy_lost_leases_total", help: "Claims whose owner found its record gone or taken over (lease lost).",
            samples: [([], lostLeases.load(ordering: .relaxed))])
        text.counter(
            "idemproxy_store_write_retries_total", help: "Store writes (complete, release, mark unknown) retried after a store fault.",
            samples: [([], storeWriteRetries.load(ordering: .relaxed))])
        text.gauge(
            "idemproxy_store_pending_writes", help: "Store writes waiting to be retried.",
            value: pendingStoreWrites.load(ordering: .relaxed))
        text.counter(
            "idemproxy_store_abandoned_writes_total", help: "Store writes given up because too many were waiting for the store.",
            samples: [([], abandonedStoreWrites.load(ordering: .relaxed))])
        text.counter(
            "idemproxy_store_deferred_releases_total", help: "Claims whose reply was lost, scheduled for release by compare-and-set (retried until the store answers).",
            samples: [([], deferredReleases.load(ordering: .relaxed))])
        text.counter(
            "idemproxy_store_resets_total", help: "Times the store came back without its records (restart, failover, flush).",
            samples: [([("reason", "run_id_changed")], storeResetsRunID.load(ordering: .relaxed)),
                      ([("reason", "records_missing")], storeResetsRecordsMissing.load(ordering: .relaxed))])
        text.counter(
            "idemproxy_store_replay_cache_hits_total", help: "Claims answered from a worker's cache of completed records (replays, or a mismatch on a cached record), without a store round trip.",
            samples: [([], replayCacheHits.load(ordering: .relaxed))])
        text.gauge("idemproxy_connections_active", help: "Open client connections.", value: activeConnections.load(ordering: .relaxed))
        if let store = memoryStore.withLock({ $0 }) {
            // How close the embedded store is to answering 503 store-full (SPEC §6): the bytes
            // it charges its records against store.memory.max_bytes, and how many it holds.
            text.gauge(
                "idemproxy_memory_store_bytes", help: "Bytes the memory store charges against store.memory.max_bytes.",
                value: store.usedBytes)
            text.gauge("idemproxy_memory_store_max_bytes", help: "store.memory.max_bytes.", value: store.maxBytes)
            text.gauge(
                "idemproxy_memory_store_records", help: "Records held by the memory store, expired ones not yet swept included.",
                value: store.storedCount)
        }
        text.histogram(
            "idemproxy_request_duration_seconds", help: "Whole requests by outcome, head received to response queued.",
            series: RequestOutcome.allCases.map { ([("outcome", $0.label)], requestDurations[$0.rawValue]) })
        text.histogram(
            "idemproxy_upstream_duration_seconds", help: "Upstream exchanges, request forwarded to response complete.",
            series: [([], upstreamDuration)])
        text.histogram(
            "idemproxy_store_duration_seconds", help: "Idempotency store calls.",
            series: [([("operation", "claim")], storeClaimDuration), ([("operation", "complete")], storeCompleteDuration)])
        redisNodes.write(to: &text)
        return text.text
    }

    public func count(_ outcome: RequestOutcome) {
        outcomes.add(1, at: outcome.rawValue)
    }

    public func value(_ outcome: RequestOutcome) -> Int {
        outcomes.value(at: outcome.rawValue)
    }
}
