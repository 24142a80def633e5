import Config
import HTTP1
import Idempotency

/// `/records?key=K&scope=S` on the admin listener (SPEC §8): `GET` shows one record, `DELETE`
/// purges it so the key may be used again (how an operator resolves an `unknown` record once
/// the upstream's side is checked, SPEC §9).
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
        guard request.method == .get || request.method == .delete else {
            var refused = Self.error(405, "/records takes GET (inspect) or DELETE (purge)")
            refused.extraFields = [("Allow", "GET, DELETE")]
            answer(refused)
            return
        }
        let storageKey: String
        switch Self.lookup(
            query: request.query, prefix: settings.keyPrefix, scoping: settings.recordScoping) {
        case .success(let key): storageKey = key
        case .failure(let failure):
            answer(Self.error(400, failure.message))
            return
        }
        if request.method == .get {
            store.inspect(key: storageKey) { result in
                switch result {
                case .success(let inspection?):
                    answer(AdminAnswer(status: 200, body: RecordReport(inspection, storageKey: storageKey, expiredLease: settings.expiredLeasePolicy).json + "\n"))
                case .success(nil):
                    answer(Self.error(404, "no record for this key and scope"))
                case .failure(let error):
                    answer(Self.error(503, "the store did not answer: \(error)"))
                }
            }
        } else {
            let log = settings.log
            store.purge(key: storageKey) { result in
                switch result {
                case .success(true):
                    log.info("record purged", ["key_hash": String(RecordLookup.keyHash(ofStorageKey: storageKey))])
                    answer(AdminAnswer(status: 204, body: ""))
                case .success(false):
                    answer(Self.error(404, "no record for this key and scope"))
                case .failure(let error):
                    answer(Self.error(503, "the store did not answer: \(error)"))
                }
            }
        }
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

    /// The storage key named by `key=…&scope=…`; a scope that disagrees with `scoping` (missing
    /// where every record has one, given where none has) is an error, not a 404 that reads as
    /// "no record".
    static func lookup(query: Substring, prefix: String, scoping: RecordScoping = .mixed) -> Result<String, RecordLookup.Failure> {
        var key: [UInt8]?
        var scope: [UInt8]?
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
            default:
                return .failure(RecordLookup.Failure("unknown query parameter \(parts[0]): expected key and scope"))
            }
        }
        guard let key, !key.isEmpty else { return .failure("the query needs key=<Idempotency-Key> (and scope=<scope header value>)") }
        if let failure = RecordLookup.checkScope(scope, scoping, parameter: "scope=<value>") { return .failure(failure) }
        return RecordLookup.storageKey(key: key, scope: scope, prefix: prefix)
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

    static func error(_ status: Int, _ message: String) -> AdminAnswer {
        var body = "{\"error\":"
        ProblemResponse.appendJSONString(message, to: &body)
        return AdminAnswer(status: status, body: body + "}\n")
    }
}
