import Observability
import Synchronization

/// How a request ended, as counted by `idemproxy_requests_total{outcome=...}` (SPEC §8).
public enum RequestOutcome: Int, CaseIterable, Sendable {
    case forwarded, replayed, inFlight, mismatch, missingKey, invalidKey, noKey, unguarded
    case storeUnavailable, outcomeUnknown, upstreamError

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
        }
    }
}

/// Process-wide counters, updated with relaxed atomics from every loop (the only state shared
/// across threads on the hot path).
public final class ProxyMetrics: Sendable {
    /// A class so an array can hold the non-copyable atomics.
    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    private let outcomes: [Counter]
    /// Claims that found the store unreachable and were forwarded unguarded (pass_through).
    public let passThroughForwards = Atomic<Int>(0)
    /// Completions or releases the store refused because the claim was no longer ours.
    public let staleOwnerRefusals = Atomic<Int>(0)

    /// Upstream exchanges, from forwarding the request to the end of the response.
    public let upstreamDuration = Histogram()
    /// Store calls by operation, from issuing the call to its completion.
    public let storeClaimDuration = Histogram()
    public let storeCompleteDuration = Histogram()
    public let activeConnections = Atomic<Int>(0)
    /// Readiness inputs, written by the loops and read by /readyz.
    public let redisConnectionsReady = Atomic<Int>(0)
    public let upstreamReachable = Atomic<Bool>(true)
    public let shuttingDown = Atomic<Bool>(false)

    public init() {
        outcomes = RequestOutcome.allCases.map { _ in Counter() }
    }

    /// Called on every exchange: a load first, so the shared cache line is only written when
    /// the flag actually changes (all loops would otherwise bounce it between cores).
    @inline(__always)
    public func markUpstreamReachable() {
        if !upstreamReachable.load(ordering: .relaxed) { upstreamReachable.store(true, ordering: .relaxed) }
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
            "idemproxy_store_stale_owner_total", help: "Completions the store refused because the claim was no longer ours.",
            samples: [([], staleOwnerRefusals.load(ordering: .relaxed))])
        text.gauge("idemproxy_connections_active", help: "Open client connections.", value: activeConnections.load(ordering: .relaxed))
        text.histogram(
            "idemproxy_upstream_duration_seconds", help: "Upstream exchanges, request forwarded to response complete.",
            series: [([], upstreamDuration)])
        text.histogram(
            "idemproxy_store_duration_seconds", help: "Idempotency store calls.",
            series: [([("operation", "claim")], storeClaimDuration), ([("operation", "complete")], storeCompleteDuration)])
        return text.text
    }

    public func count(_ outcome: RequestOutcome) {
        outcomes[outcome.rawValue].value.add(1, ordering: .relaxed)
    }

    public func value(_ outcome: RequestOutcome) -> Int {
        outcomes[outcome.rawValue].value.load(ordering: .relaxed)
    }
}
