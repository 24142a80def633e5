/// The stable problem types idemproxy answers with (SPEC §4; README).
public enum ProblemType: String, Sendable, CaseIterable {
    case missingKey = "missing-key"
    case invalidKey = "invalid-key"
    case missingScope = "missing-scope"
    case keyReused = "key-reused"
    case inFlight = "in-flight"
    case outcomeUnknown = "outcome-unknown"
    case replayUnavailable = "replay-unavailable"
    case storeUnavailable = "store-unavailable"
    case storeFull = "store-full"
    case bodyTooLarge = "body-too-large"
    case upstreamUnreachable = "upstream-unreachable"
    case upstreamTimeout = "upstream-timeout"

    /// RFC 9457 §3.1.1: the `type` member, a URI that identifies the problem
    /// type and should resolve to human-readable documentation.
    public var uri: String { "https://idemproxy.dev/problems/" + rawValue }

    /// The status used unless the caller has a more specific one (e.g.
    /// `outcome-unknown` is `504` on the request that timed out, `409` on
    /// later retries).
    public var defaultStatus: Int {
        switch self {
        case .missingKey, .invalidKey, .missingScope: return 400
        case .keyReused: return 422
        case .inFlight, .outcomeUnknown, .replayUnavailable: return 409
        case .storeUnavailable, .storeFull: return 503
        case .bodyTooLarge: return 413
        case .upstreamUnreachable: return 502
        case .upstreamTimeout: return 504
        }
    }

    /// RFC 9457 §3.1.3: a short summary that does not change between
    /// occurrences.
    public var title: String {
        switch self {
        case .missingKey: return "Idempotency-Key header required"
        case .invalidKey: return "Invalid Idempotency-Key header"
        case .missingScope: return "Caller identity (scope header) required"
        case .keyReused: return "Idempotency-Key reused for a different request"
        case .inFlight: return "A request with this Idempotency-Key is still being processed"
        case .outcomeUnknown: return "Outcome of the original request is unknown"
        case .replayUnavailable: return "Stored response too large to replay"
        case .storeUnavailable: return "Idempotency store unavailable"
        case .storeFull: return "Idempotency store full"
        case .bodyTooLarge: return "Request body too large"
        case .upstreamUnreachable: return "Upstream unreachable"
        case .upstreamTimeout: return "Upstream timed out"
        }
    }
}

/// RFC 9457 problem details bodies (`application/problem+json`).
public enum ProblemDetails {
    public static let contentType = "application/problem+json"

    /// `{"type":…,"title":…,"status":…,"detail":…}`; `detail` is omitted when
    /// `nil`. Strings are escaped per RFC 8259 §7, so a client-supplied value
    /// quoted in `detail` cannot break out of the document.
    public static func json(type: ProblemType, status: Int? = nil, detail: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + (detail?.utf8.count ?? 0))
        out.append(contentsOf: #"{"type":"#.utf8)
        JSONValue.writeString(type.uri, into: &out)
        out.append(contentsOf: #","title":"#.utf8)
        JSONValue.writeString(type.title, into: &out)
        out.append(contentsOf: #","status":"#.utf8)
        out.append(contentsOf: String(status ?? type.defaultStatus).utf8)
        if let detail {
            out.append(contentsOf: #","detail":"#.utf8)
            JSONValue.writeString(detail, into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A problem without a specific type (RFC 9457 §4.2.1 `about:blank`): the title is the
    /// status phrase, for protocol errors such as a malformed request.
    public static func json(status: Int, title: String, detail: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96 + (detail?.utf8.count ?? 0))
        out.append(contentsOf: #"{"type":"about:blank","title":"#.utf8)
        JSONValue.writeString(title, into: &out)
        out.append(contentsOf: #","status":"#.utf8)
        out.append(contentsOf: String(status).utf8)
        if let detail {
            out.append(contentsOf: #","detail":"#.utf8)
            JSONValue.writeString(detail, into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// The JSON string escaper canonical JSON and problem bodies use, for other JSON writers
/// (log lines) so the project has one escaping rule.
public enum JSONString {
    public static func write(_ text: String, into out: inout [UInt8]) {
        JSONValue.writeString(text, into: &out)
    }
}
