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

    public init() {
        outcomes = RequestOutcome.allCases.map { _ in Counter() }
    }

    public func count(_ outcome: RequestOutcome) {
        outcomes[outcome.rawValue].value.add(1, ordering: .relaxed)
    }

    public func value(_ outcome: RequestOutcome) -> Int {
        outcomes[outcome.rawValue].value.load(ordering: .relaxed)
    }
}
