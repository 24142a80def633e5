import Config
import Glibc
import Idempotency

/// One record as an operator sees it: the `/records` JSON (SPEC §8) and the readable form
/// `idemproxy records get` prints (SPEC §7). Built from a store inspection, or, when the CLI
/// asked a running proxy, from that JSON.
public struct RecordReport: Sendable, Equatable {
    /// The first 16 hex digits of the storage key's digest: what the access log prints as
    /// `key_hash` (never the key itself).
    public var keyHash: String
    /// As stored: `in_flight`, `completed` or `unknown`.
    public var state: String
    /// What the next request with this key acts on: `state`, except for an in-flight record
    /// whose lease ran out (its owner is gone, and the store has not been told): `unknown` under
    /// `indeterminate: hold`, `absent` under `release` (the request executes); nil when routes
    /// set different policies.
    public var effectiveState: String?
    /// The original response's status; nil unless completed.
    public var status: Int?
    public var fingerprintHex: String
    /// Unix milliseconds; nil when the record predates creation times.
    public var createdAtMillis: UInt64?
    public var expiresInMillis: UInt64
    /// In flight only; 0 once the lease has run out.
    public var leaseExpiresInMillis: UInt64?
    public var bodyBytes: Int
    /// The response was too large to store (`replay-unavailable`).
    public var bodyOmitted: Bool

    public init(
        keyHash: String, state: String, effectiveState: String?, status: Int?, fingerprintHex: String, createdAtMillis: UInt64?,
        expiresInMillis: UInt64, leaseExpiresInMillis: UInt64?, bodyBytes: Int, bodyOmitted: Bool
    ) {
        self.keyHash = keyHash
        self.state = state
        self.effectiveState = effectiveState
        self.status = status
        self.fingerprintHex = fingerprintHex
        self.createdAtMillis = createdAtMillis
        self.expiresInMillis = expiresInMillis
        self.leaseExpiresInMillis = leaseExpiresInMillis
        self.bodyBytes = bodyBytes
        self.bodyOmitted = bodyOmitted
    }

    /// `expiredLease`: what guarded requests do with an expired lease (nil: routes differ).
    public init(_ inspection: RecordInspection, storageKey: String, expiredLease: IndeterminateMode?) {
        let record = inspection.record
        let state: String
        switch record.state {
        case .inFlight: state = "in_flight"
        case .completed: state = "completed"
        case .unknown: state = "unknown"
        }
        let leaseExpired = record.state == .inFlight && inspection.leaseRemainingMillis == 0
        self.init(
            keyHash: String(RecordLookup.keyHash(ofStorageKey: storageKey)), state: state,
            effectiveState: leaseExpired ? expiredLease.map { $0 == .hold ? "unknown" : "absent" } : state,
            status: record.response?.status,
            fingerprintHex: Hex.encode(record.fingerprint),
            createdAtMillis: record.createdAtMillis == 0 ? nil : record.createdAtMillis,
            expiresInMillis: inspection.expiresInMillis,
            leaseExpiresInMillis: record.state == .inFlight ? inspection.leaseRemainingMillis : nil,
            bodyBytes: record.response?.bodyCount ?? 0, bodyOmitted: record.response?.bodyOmitted ?? false)
    }

    /// `{"state": …, "status": 201|null, "fingerprint": hex, "created_at": RFC 3339|null,
    /// "expires_in_ms": n, "body_bytes": n, …}`: SPEC §8's fields first, then the extras
    /// (fields are only ever added, so readers of earlier output keep working).
    public var json: String {
        var out = "{\"state\":\"\(state)\",\"status\":\(status.map(String.init) ?? "null"),\"fingerprint\":\"\(fingerprintHex)\""
        out += ",\"created_at\":" + (createdAtMillis.map { "\"\(Self.rfc3339(unixMillis: $0))\"" } ?? "null")
        // A key without expiry (only if someone removed its TTL in Redis) has no expires_in_ms.
        out += ",\"expires_in_ms\":\(expiresInMillis == .max ? "null" : String(expiresInMillis)),\"body_bytes\":\(bodyBytes),\"body_omitted\":\(bodyOmitted)"
        out += ",\"key_hash\":\"\(keyHash)\""
        if let leaseExpiresInMillis { out += ",\"lease_expires_in_ms\":\(leaseExpiresInMillis),\"lease_expired\":\(leaseExpired)" }
        out += ",\"effective_state\":" + (effectiveState.map { "\"\($0)\"" } ?? "null")
        return out + "}"
    }

    /// An in-flight record whose owner is gone: the next request decides what becomes of it.
    public var leaseExpired: Bool { leaseExpiresInMillis == 0 }

    /// What the next request with this key gets, for a record whose lease expired.
    private var afterExpiredLease: String {
        switch effectiveState {
        case "unknown": return "the next request gets 409 outcome-unknown"
        case "absent": return "the next request executes again"
        default: return "the next request gets 409 outcome-unknown where its route holds, executes again where it releases"
        }
    }

    /// Aligned `name  value` lines, with what the state means for the client and what the
    /// operator can do about it.
    public func text(nowMillis: UInt64 = MonotonicClock.unixMillis()) -> String {
        var lines: [(String, String)] = [("key hash", keyHash), ("state", leaseExpired ? "\(state) (lease expired: \(afterExpiredLease))" : state)]
        if let status { lines.append(("status", "\(status)")) }
        if let createdAtMillis {
            let age = nowMillis > createdAtMillis ? Self.duration(millis: nowMillis - createdAtMillis) + " ago" : "just now"
            lines.append(("created", "\(Self.rfc3339(unixMillis: createdAtMillis)) (\(age))"))
        } else {
            lines.append(("created", "unknown (written by an earlier version)"))
        }
        lines.append(("expires in", expiresInMillis == .max ? "never" : Self.duration(millis: expiresInMillis)))
        if let leaseExpiresInMillis {
            lines.append(("lease", leaseExpired
                ? "expired: the proxy running the request is gone"
                : "\(Self.duration(millis: leaseExpiresInMillis)) left (the original request is still running)"))
        }
        if state == "completed" {
            lines.append(("body", bodyOmitted ? "not stored (larger than max_stored_body; retries get replay-unavailable)" : "\(bodyBytes) bytes"))
        }
        lines.append(("fingerprint", fingerprintHex))
        var out = ""
        for (name, value) in lines { out += name.padding(to: 13) + value + "\n" }
        let checkUpstream = "Check on the upstream whether it ran; then `idemproxy records purge` lets the key run again.\n"
        switch state {
        case "unknown":
            out += "\nThe request reached the upstream but its outcome was not recorded: retries get 409 outcome-unknown.\n" + checkUpstream
        case "in_flight" where leaseExpired:
            out += "\nThe proxy running the request stopped before recording its outcome (the request may or may not have"
            out += " reached the upstream): \(afterExpiredLease).\n" + (effectiveState == "absent" ? "" : checkUpstream)
        case "in_flight":
            out += "\nRetries get 409 in-flight (or wait, with concurrent: wait) until the original request ends.\n"
        default:
            break
        }
        return out
    }

    /// UTC with milliseconds (RFC 3339 §5.6).
    public static func rfc3339(unixMillis: UInt64) -> String {
        var seconds = time_t(unixMillis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(Int(unixMillis % 1000), 3))Z"
    }

    /// `850ms`, `12s`, `3m12s`, `23h56m48s`, `2d3h`.
    public static func duration(millis: UInt64) -> String {
        if millis < 1000 { return "\(millis)ms" }
        let seconds = millis / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(seconds % 60)s" }
        if seconds < 86_400 { return "\(seconds / 3600)h\(seconds % 3600 / 60)m\(seconds % 60)s" }
        return "\(seconds / 86_400)d\(seconds % 86_400 / 3600)h"
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}

/// From what an operator types (the key as the client sent it, the scope header's value) to the
/// storage key, exactly as the proxy computed it (SPEC §3).
public enum RecordLookup {
    /// Why a key or query names no storage key, in words for the operator.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible, ExpressibleByStringLiteral {
        public let message: String
        public init(_ message: String) { self.message = message }
        public init(stringLiteral message: String) { self.message = message }
        public var description: String { message }
    }

    /// The key is read like the `Idempotency-Key` field (lenient: an sf-string or a bare
    /// token), so `"abc"` copied with its quotes and `abc` find the same record. The scope is
    /// read as a field value (`fieldValue(ofScope:)`): an empty one means none, as for the
    /// proxy, which never stores under an empty scope.
    public static func storageKey(key: [UInt8], scope: [UInt8]?, prefix: String) -> Result<String, Failure> {
        switch IdempotencyKeyParser.parse(fieldValues: [key[...]], syntax: .lenient, maxLength: 8192) {
        case .success(let parsed):
            return .success(Idempotency.storageKey(prefix: prefix, scope: fieldValue(ofScope: scope), key: parsed))
        case .failure(let error):
            return .failure(Failure("not an idempotency key: \(error.reason)"))
        }
    }

    /// A lookup's scope checked against how the configuration scopes records: one that can only
    /// miss is an error, since "no record" would be a wrong answer to act on. `parameter` is how
    /// the operator gives a scope (`scope=<value>` in a query, `--scope <value>` to the CLI).
    /// An empty scope (or only whitespace) is none, as for the proxy.
    public static func checkScope(_ scope: [UInt8]?, _ scoping: RecordScoping, parameter: String) -> Failure? {
        let given = fieldValue(ofScope: scope) != nil
        switch scoping {
        case .required(let headers) where !given:
            return Failure("keys are scoped by the \(headers.joined(separator: " or ")) header: give \(parameter), the header's value as the caller sent it")
        case .off where given:
            return Failure("scoping is off (scope.header is \"\" for every guarded request), so records have no scope: leave out \(parameter)")
        default:
            return nil
        }
    }

    /// The scope as the proxy hashed it: a field value never includes the whitespace around it
    /// (OWS, RFC 9110 §5.5), which the proxy's header parser strips, so a scope typed or copied
    /// with some (`Authorization: Bearer x` cut at the colon) would name a record that cannot
    /// exist: a false "no record". Only SP and HTAB are OWS; bytes inside stay as given (obs-text
    /// included, SPEC §3). Nil when nothing is left: no scope, as for the proxy.
    public static func fieldValue(ofScope scope: [UInt8]?) -> [UInt8]? {
        guard let scope else { return nil }
        let value = IdempotencyKeyParser.trimOWS(scope[...])
        return value.isEmpty ? nil : Array(value)
    }

    /// The access log's `key_hash` for a storage key `prefix{digest}`: the digest's first
    /// `AccessLog.keyHashLength` hex digits; empty when the key has no hash tag.
    public static func keyHash(ofStorageKey storageKey: String) -> Substring {
        guard let brace = storageKey.utf8.firstIndex(of: UInt8(ascii: "{")) else { return "" }
        return storageKey[storageKey.index(after: brace)...].prefix(AccessLog.keyHashLength)
    }
}
