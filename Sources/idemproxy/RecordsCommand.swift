import ArgumentParser
import Config
import EventLoop
import Foundation
import Idempotency
import Proxy
import RedisClient
import RedisStore

/// `idemproxy records get|purge --key K [--scope S] --config PATH [--json]` (SPEC §7), and
/// `purge --force` for a record whose request is still in flight.
/// With Redis it talks to Redis directly, so it works with no proxy running; the memory store
/// lives inside the running proxy, so then it asks that proxy's admin endpoint.
/// Exit status: 0 the record exists (or was purged), 1 there is none, 2 an error (or a purge
/// refused because the request is still in flight).
struct Records: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect or purge one idempotency record.",
        discussion: """
            S is the scope header's value exactly as the caller sends it (e.g. "Bearer sk_live_…"). \
            It is required when every guarded request is scoped, and an error when scoping is off \
            (scope.header: "" for every guarded request). Exit status: 0 found or purged, 1 no \
            such record, 2 error (or, for purge without --force, a request still in flight).
            """,
        subcommands: [Get.self, Purge.self])

    /// `idemproxy records` alone names no operation: a usage error (exit 2, SPEC §7), where
    /// ArgumentParser's default would print the help and exit 0 as if something was done.
    func run() throws {
        throw ValidationError("say what to do with the record: records get or records purge (idemproxy records --help)")
    }

    struct Target: ParsableArguments {
        @Option(name: .long, help: "The Idempotency-Key as the client sent it (quotes optional).")
        var key: String

        @Option(name: .long, help: "The scope header's value as the caller sent it.")
        var scope: String?

        @Flag(name: .long, help: "Print the /records JSON instead of readable lines.")
        var json = false

        @OptionGroup var options: ConfigOption
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one record: state, status, age, expiry, sizes.")
        @OptionGroup var target: Target

        func run() throws { try target.run(.inspect) }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete one record: the key may be used again.",
            discussion: """
                A record still in flight (its lease running: the original request may still be \
                executing) is not purged: a retry would then run upstream while the original still \
                runs. The command says so and exits 2; --force purges it anyway. For an unknown \
                record, or one whose lease expired, check first whether the upstream executed the \
                request. Exit status: 0 purged, 1 no such record, 2 error or still in flight.
                """)
        @OptionGroup var target: Target

        @Flag(name: .long, help: "Purge even a record whose request is still in flight.")
        var force = false

        func run() throws { try target.run(.purge(force: force)) }
    }
}

extension Records.Target {
    /// Runs one operation and turns its outcome into output and the exit status.
    func run(_ operation: RecordsLookup.Operation) throws {
        let lookup = try RecordsLookup(self)
        switch lookup.perform(operation) {
        case .found(let report, let jsonText):
            print(json ? jsonText : report.text(), terminator: json ? "\n" : "")
        case .purged:
            print(json ? "{\"purged\":true,\"key_hash\":\"\(lookup.keyHash)\"}" : "purged: the record for key hash \(lookup.keyHash) is gone; the key may be used again")
        case .absent:
            lookup.sayAbsent(json: json)
            throw ExitCode(1)
        case .failed(let message):
            throw RecordsLookup.fail(message)
        }
    }
}

/// One `records` invocation: the configuration, the storage key, and where to ask.
struct RecordsLookup {
    enum Operation: Equatable {
        case inspect
        /// `force`: even a record whose request is still in flight.
        case purge(force: Bool)
    }
    enum Outcome {
        case found(RecordReport, json: String)
        case purged
        case absent
        case failed(String)
    }

    let config: IdemproxyConfig
    let key: String
    let scope: String?
    let storageKey: String

    init(_ target: Records.Target) throws {
        config = try target.options.load()
        key = target.key
        scope = target.scope.flatMap { $0.isEmpty ? nil : $0 }
        if let failure = RecordLookup.checkScope(scope.map { Array($0.utf8) }, config.recordScoping, parameter: "--scope <value>") {
            throw Self.fail(failure.message)
        }
        switch RecordLookup.storageKey(key: Array(key.utf8), scope: scope.map { Array($0.utf8) }, prefix: config.store.redis.keyPrefix) {
        case .success(let storageKey): self.storageKey = storageKey
        case .failure(let failure): throw Self.fail(failure.message)
        }
    }

    var keyHash: String { String(RecordLookup.keyHash(ofStorageKey: storageKey)) }

    func perform(_ operation: Operation) -> Outcome {
        config.store.backend == .redis ? overRedis(operation) : overAdminEndpoint(operation)
    }

    func sayAbsent(json: Bool) {
        if json {
            print("{\"error\":\"no record\",\"key_hash\":\"\(keyHash)\"}")
        } else {
            print("no record for this key and scope (key hash \(keyHash))")
        }
    }

    static func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("idemproxy records: \(message)\n".utf8))
        return ExitCode(2)
    }

    // MARK: Redis, directly

    private func overRedis(_ operation: Operation) -> Outcome {
        let redis = config.store.redis
        let target: RedisTarget
        do {
            target = try RedisTarget(redis, commandTimeoutMillis: max(2000, redis.commandTimeout.milliseconds))
        } catch {
            return .failed("cannot connect to Redis at \(redis.host):\(redis.port): \(error)")
        }
        guard let loop = try? EventLoop() else { return .failed("cannot create an event loop") }
        let connection = target.makeConnection(loop: loop)
        // A purge waits for replicas as the proxy's own writes do (`min_replicas_acked`).
        let acknowledgement = target.replicaAcknowledgement
        let store = RedisIdempotencyStore(connection: connection, keyPrefix: redis.keyPrefix, replicaAcknowledgement: acknowledgement)
        var outcome: Outcome?
        let storeReady = connection.onReady
        let storageKey = self.storageKey
        let expiredLease = config.expiredLeasePolicy
        var started = false
        connection.onReady = { connection in
            storeReady?(connection)
            // Once, on the first ready connection (a Cluster has one per node; the store
            // routes the command to the key's node itself).
            guard !started else { return }
            started = true
            switch operation {
            case .inspect:
                store.inspect(key: storageKey) { result in
                    switch result {
                    case .success(let inspection?):
                        let report = RecordReport(inspection, storageKey: storageKey, expiredLease: expiredLease)
                        outcome = .found(report, json: report.json)
                    case .success(nil): outcome = .absent
                    case .failure(let error): outcome = .failed("Redis: \(error)")
                    }
                }
            case .purge(let force):
                RecordPurge.run(store: store, key: storageKey, force: force) { purge in
                    switch purge {
                    case .purged: outcome = .purged
                    case .absent: outcome = .absent
                    case .stillInFlight(let lease): outcome = .failed(Self.refusal(leaseRemainingMillis: lease))
                    case .failed(let error, let mayHavePurged):
                        outcome = .failed(mayHavePurged
                            ? "Redis: \(error); the record may or may not have been purged: purge again"
                            : "Redis: \(error)")
                    }
                }
            }
        }
        connection.connect()
        // Each command has its own deadline (the connection's command timeout), and the answer
        // comes from them; this bound only stops a connection that never becomes ready. So it
        // covers every step (`RecordsBudget`, the admin endpoint's bound too): a shorter bound
        // could report "did not answer" for a purge that went through.
        let timeoutMillis = RecordsBudget.millis(
            purge: operation != .inspect, commandMillis: target.connection.commandTimeoutMillis, acknowledgement: acknowledgement)
        let deadline = loop.refreshNow() + timeoutMillis
        while outcome == nil && loop.refreshNow() < deadline {
            loop.runOnce(maxWaitMillis: 20)
        }
        return outcome ?? .failed("Redis (\(target.description)) did not answer within \(timeoutMillis) ms (\(connection.lastError))")
    }

    // MARK: the running proxy's admin endpoint (memory store)

    private func overAdminEndpoint(_ operation: Operation) -> Outcome {
        guard let listen = config.admin.listen else {
            return .failed("the memory store lives inside the running proxy, and admin.listen is off: enable it to use records")
        }
        var query = "key=" + Self.formEncoded(key)
        if let scope { query += "&scope=" + Self.formEncoded(scope) }
        if operation == .purge(force: true) { query += "&force=1" }
        let response: AdminClient.Response
        do {
            response = try AdminClient.request(
                method: operation == .inspect ? "GET" : "DELETE", path: "/records?" + query,
                listen: listen, token: config.admin.token)
        } catch {
            return .failed("cannot reach the proxy's admin endpoint at \(listen) (is the proxy running?): \(error)")
        }
        let body = response.bodyText.trimmingCharacters(in: .whitespacesAndNewlines)
        switch response.status {
        case 200 where operation == .inspect:
            guard let report = Self.report(fromJSON: body) else { return .failed("unexpected /records answer: \(body)") }
            return .found(report, json: body)
        case 204 where operation != .inspect:
            return .purged
        case 409 where operation != .inspect:
            // Still in flight: said in the CLI's words (--force, not force=1).
            guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                  let lease = (object["lease_expires_in_ms"] as? NSNumber).flatMap({ UInt64(exactly: $0) }) else { break }
            return .failed(Self.refusal(leaseRemainingMillis: lease))
        case 404:
            return .absent
        default:
            break
        }
        return .failed("the admin endpoint answered \(response.status): \(body)")
    }

    /// Why a record still in flight was not purged, in the command's terms.
    static func refusal(leaseRemainingMillis: UInt64) -> String {
        RecordPurge.refusal(leaseRemainingMillis: leaseRemainingMillis, override: "pass --force")
    }

    /// RFC 3986 unreserved characters as they are, everything else percent-encoded.
    static func formEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// The `/records` JSON back into a report, for readable output; nil when it is not one
    /// (then the command fails with exit status 2).
    static func report(fromJSON text: String) -> RecordReport? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let state = object["state"] as? String, let fingerprint = object["fingerprint"] as? String,
              let bodyBytes = object["body_bytes"] as? Int,
              let createdAt = unixMillis(rfc3339: object["created_at"]),
              let expires = millis(object["expires_in_ms"]),
              let lease = millis(object["lease_expires_in_ms"]) else { return nil }
        return RecordReport(
            keyHash: object["key_hash"] as? String ?? "", state: state, effectiveState: object["effective_state"] as? String,
            status: object["status"] as? Int,
            fingerprintHex: fingerprint, createdAtMillis: createdAt, expiresInMillis: expires ?? .max,
            leaseExpiresInMillis: lease, bodyBytes: bodyBytes, bodyOmitted: object["body_omitted"] as? Bool ?? false)
    }

    /// A milliseconds field: `.some(nil)` when absent or null, `.some(n)` for a whole number
    /// from 0 to `UInt64.max`, nil for anything else. Checked exactly: `NSNumber.uint64Value`
    /// would turn -5 into a huge count and 1.5 into 1.
    private static func millis(_ value: Any?) -> UInt64?? {
        switch value {
        case nil, is NSNull: return .some(nil)
        case let number as NSNumber: return UInt64(exactly: number).map { .some($0) }
        default: return nil
        }
    }

    /// `created_at` as Unix milliseconds: `.some(nil)` when absent or null, nil when it is not
    /// an RFC 3339 time at or after 1970 (a record time is never earlier, and converting one
    /// with `UInt64(_:)` would trap).
    private static func unixMillis(rfc3339 value: Any?) -> UInt64?? {
        switch value {
        case nil, is NSNull: return .some(nil)
        case let text as String:
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            guard let date = formatter.date(from: text) else { return nil }
            return UInt64(exactly: (date.timeIntervalSince1970 * 1000).rounded()).map { .some($0) }
        default: return nil
        }
    }
}
