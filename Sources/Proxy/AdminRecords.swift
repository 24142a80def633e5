import Config
import HTTP1
import Idempotency
import RedisStore

/// `/records?key=K&scope=S` on the admin listener (SPEC §8): `GET` shows one record, `DELETE`
/// purges it so the key may be used again (how an operator resolves an `unknown` record once
/// the upstream's side is checked, SPEC §9). A record whose request is still in flight is not
/// purged without `force=1` (`RecordPurge`).
///
/// Who may ask: with `admin.token` set, only a request carrying `Authorization: Bearer <token>`;
/// without one, anyone who can reach a loopback listener (the same trust as the process's own
/// machine), and nobody on any other listener: records reveal which requests ran, and a purge
/// lets a request execute again.
struct AdminRecords {
    let store: any IdempotencyStore
    let settings: ProxySettings

    func handle(_ request: AdminRequest, _ answer: @escaping (AdminAnswer) -> Void) {
        guard settings.adminRecordsEnabled else {
            answer(Self.error(403, "/records is refused on a non-loopback admin listener without admin.token"))
            return
        }
        guard authorized(request.authorization) else {
            answer(Self.error(403, "/records needs Authorization: Bearer <admin.token>"))
            return
        }
        guard request.method == .get || request.method == .head || request.method == .delete else {
            var refused = Self.error(405, "/records takes GET or HEAD (inspect) or DELETE (purge)")
            refused.extraFields = [("Allow", "GET, HEAD, DELETE")]
            answer(refused)
            return
        }
        let target: RecordsTarget
        switch Self.lookup(query: request.query, prefix: settings.keyPrefix, scoping: settings.recordScoping) {
        case .success(let named): target = named
        case .failure(let failure):
            answer(Self.error(400, failure.message))
            return
        }
        if request.method != .delete {
            guard !target.force else {
                answer(Self.error(400, "force=1 applies to DELETE only"))
                return
            }
            inspect(target.storageKey, answer)
        } else {
            purge(target, answer)
        }
    }

    private func inspect(_ storageKey: String, _ answer: @escaping (AdminAnswer) -> Void) {
        let expiredLease = settings.expiredLeasePolicy
        store.inspect(key: storageKey) { result in
            switch result {
            case .success(let inspection?):
                answer(AdminAnswer(status: 200, body: RecordReport(inspection, storageKey: storageKey, expiredLease: expiredLease).json + "\n"))
            case .success(nil):
                answer(Self.error(404, "no record for this key and scope"))
            case .failure(let error):
                answer(Self.error(503, "the store did not answer: \(error)"))
            }
        }
    }

    /// `204` purged, `404` none, `409` still in flight (without `force=1`), `503` store trouble.
    private func purge(_ target: RecordsTarget, _ answer: @escaping (AdminAnswer) -> Void) {
        let log = settings.log
        RecordPurge.run(store: store, key: target.storageKey, force: target.force) { outcome in
            switch outcome {
            case .purged:
                var fields = ["key_hash": String(RecordLookup.keyHash(ofStorageKey: target.storageKey))]
                if target.force { fields["force"] = "1" }
                log.info("record purged", fields)
                answer(AdminAnswer(status: 204, body: ""))
            case .absent:
                answer(Self.error(404, "no record for this key and scope"))
            case .stillInFlight(let lease):
                answer(Self.error(409, RecordPurge.refusal(leaseRemainingMillis: lease, override: "add force=1"), extra: ",\"lease_expires_in_ms\":\(lease)"))
            case .failed(let error, let mayHavePurged):
                answer(Self.error(503, "the store did not answer: \(error)" + (mayHavePurged ? "; the record may or may not have been purged" : "")))
            }
        }
    }

    /// How long a `/records` request may wait for the store: the store's own timeouts end every
    /// operation within `RecordsBudget`, and answer with their own words; this is the bound
    /// beyond them. The memory store answers at once.
    func answerBudgetMillis(for method: HTTPMethod) -> UInt64 {
        guard let redis = settings.redis else { return AdminConnection.headMillis }
        let budget = RecordsBudget.millis(
            purge: method == .delete, commandMillis: redis.connection.commandTimeoutMillis,
            acknowledgement: settings.replicaAcknowledgement)
        return RecordsBudget.adding(budget, Self.answerMarginMillis)
    }

    /// Lets the store's own timeout, which comes with its reason, answer before the deadline.
    static let answerMarginMillis: UInt64 = 1_000

    /// The `503` for an operation the store has not finished by the deadline: whether it took
    /// effect is not known, and for a purge that decides what the operator does next.
    static func outcomeUnknown(_ method: HTTPMethod, afterMillis millis: UInt64) -> AdminAnswer {
        let what = method == .delete
            ? "the record may or may not have been purged; purge again"
            : "the record's state is unknown; ask again"
        return error(503, "the store did not answer within \(millis) ms: \(what)", extra: ",\"outcome\":\"unknown\"")
    }

    /// `Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1), compared in constant time.
    private func authorized(_ authorization: [UInt8]?) -> Bool {
        guard !settings.adminToken.isEmpty else { return true }
        guard let authorization else { return false }
        let scheme = Array("bearer ".utf8)
        guard authorization.count > scheme.count,
              zip(authorization, scheme).allSatisfy({ ($0 &- 0x41 < 26 ? $0 | 0x20 : $0) == $1 }) else { return false }
        let offered = authorization[scheme.count...].drop { $0 == 0x20 }
        let expected = Array(settings.adminToken.utf8)
        guard offered.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(offered, expected) { difference |= a ^ b }
        return difference == 0
    }

    /// What a `/records` query names.
    struct RecordsTarget: Equatable {
        var storageKey: String
        /// `force=1`: purge even a record whose request is still in flight.
        var force = false
    }

    /// The record named by `key=…&scope=…[&force=1]`; a scope that disagrees with `scoping`
    /// (missing where every record has one, given where none has) is an error, not a 404 that
    /// reads as "no record".
    static func lookup(query: Substring, prefix: String, scoping: RecordScoping = .mixed) -> Result<RecordsTarget, RecordLookup.Failure> {
        var key: [UInt8]?
        var scope: [UInt8]?
        var force: Bool?
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let value = percentDecoded(parts.count > 1 ? parts[1] : "") else {
                return .failure(RecordLookup.Failure("invalid percent-encoding in the query"))
            }
            switch parts[0] {
            case "key":
                guard key == nil else { return .failure("key given twice") }
                key = value
            case "scope":
                guard scope == nil else { return .failure("scope given twice") }
                scope = value
            case "force":
                guard force == nil else { return .failure("force given twice") }
                guard value == Array("1".utf8) else { return .failure("force takes 1 (force=1)") }
                force = true
            default:
                return .failure(RecordLookup.Failure("unknown query parameter \(parts[0]): expected key, scope and force"))
            }
        }
        guard let key, !key.isEmpty else { return .failure("the query needs key=<Idempotency-Key> (and scope=<scope header value>)") }
        if let failure = RecordLookup.checkScope(scope, scoping, parameter: "scope=<value>") { return .failure(failure) }
        return RecordLookup.storageKey(key: key, scope: scope, prefix: prefix).map { RecordsTarget(storageKey: $0, force: force ?? false) }
    }

    /// `application/x-www-form-urlencoded` value decoding: `%XX` and `+` for a space.
    static func percentDecoded(_ text: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        var bytes = text.utf8.makeIterator()
        while let byte = bytes.next() {
            switch byte {
            case UInt8(ascii: "+"):
                out.append(0x20)
            case UInt8(ascii: "%"):
                guard let high = bytes.next().flatMap(Hex.digitValue), let low = bytes.next().flatMap(Hex.digitValue) else { return nil }
                out.append(high << 4 | low)
            default:
                out.append(byte)
            }
        }
        return out
    }

    /// `{"error": message}`; `extra` adds fields (`,"name":value`).
    static func error(_ status: Int, _ message: String, extra: String = "") -> AdminAnswer {
        var body = "{\"error\":"
        ProblemResponse.appendJSONString(message, to: &body)
        return AdminAnswer(status: status, body: body + extra + "}\n")
    }
}

/// How long one records operation (`/records`, `idemproxy records`) may take against Redis when
/// each of its commands uses its whole `command_timeout`: three commands for an inspection
/// (with room for the connection's own handshake), and for a purge two more (its delete and
/// announcement, `RedisIdempotencyStore.purge`), the settle wait after which no replica's
/// replay cache still serves the record, and with `min_replicas_acked` a `WAIT` after each.
/// Anything shorter could report "did not answer" for an operation that went through.
public enum RecordsBudget {
    public static func millis(purge: Bool, commandMillis: UInt64, acknowledgement: ReplicaAcknowledgement?) -> UInt64 {
        var total = adding(commandMillis, commandMillis, commandMillis)
        guard purge else { return total }
        total = adding(total, commandMillis, commandMillis, RedisIdempotencyStore.purgeSettleMillis)
        if let acknowledgement {
            total = adding(total, acknowledgement.timeoutMillis, commandMillis, acknowledgement.timeoutMillis, commandMillis)
        }
        return total
    }

    /// Saturating: `command_timeout` has no upper bound in the configuration, and a deadline
    /// that wrapped around would fire at once.
    static func adding(_ values: UInt64...) -> UInt64 {
        values.reduce(0) { sum, value in
            let (result, overflow) = sum.addingReportingOverflow(value)
            return overflow ? .max / 2 : min(result, .max / 2)
        }
    }
}
