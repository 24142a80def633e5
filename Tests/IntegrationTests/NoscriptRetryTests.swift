import EventLoop
import Foundation
import Idempotency
import RedisClient
import RedisStore
import Testing
import TestSupport

/// `RedisIdempotencyStore.run` frames a script's arguments once and, on a NOSCRIPT reply,
/// re-sends the same framed bytes behind `EVAL` and the source. Every kind of store call is
/// made right after `SCRIPT FLUSH` (on a redis-server of the test's own, so no other suite's
/// scripts are flushed), Redis' own error statistics prove each call went through the NOSCRIPT
/// path, and what is read back must be exactly what was written: binary and obs-text field
/// values, RESP-looking body bytes, a 100 KB response section, an empty one.
@Suite(.serialized) struct NoscriptRetryTests {
    typealias Fixture = RedisStoreTests.Fixture

    let fingerprint: [UInt8] = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    let otherFingerprint: [UInt8] = (0..<32).map { UInt8(truncatingIfNeeded: 200 &- $0) }

    /// Field values and a body made to trip a framing bug: every byte value a field may hold
    /// (every byte in the body, CR LF included), and text that reads as RESP ("$5\r\n",
    /// "*3\r\n", "-NOSCRIPT"; with its line breaks only in the body, since a field value
    /// holds none, RFC 9110 §5.5).
    static func hostileResponse(bodyBytes: Int, fieldCount: Int = 40) -> StoredResponse {
        var headers: [HeaderPair] = [
            HeaderPair(name: Array("X-All-Bytes".utf8), value: (0...255).map { UInt8($0) }.filter { $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 }),
            HeaderPair(name: Array("X-Obs".utf8), value: Array("caf".utf8) + [0xE9, 0x80, 0xFF, 0x20, 0x09]),
            HeaderPair(name: Array("X-Empty".utf8), value: []),
            HeaderPair(name: Array("X-Resp".utf8), value: Array("*3 $4 EVAL -NOSCRIPT x $5".utf8)),
        ]
        for i in 0..<fieldCount { headers.append(HeaderPair(name: "X-F\(i)", value: String(repeating: "v", count: i * 7))) }
        let pattern = Array("$5\r\nhello\r\n*1\r\n:1\r\n-NOSCRIPT\r\n".utf8) + (0...255).map { UInt8($0) }
        let body = (0..<bodyBytes).map { pattern[$0 % pattern.count] }
        return StoredResponse(status: 201, headers: headers, body: body)
    }

    func flush(_ f: Fixture, sourceLocation: SourceLocation = #_sourceLocation) {
        let reply = f.await { done in f.connection.send(["SCRIPT", "FLUSH"]) { done($0) } }
        #expect(reply == .success(.status("OK")), sourceLocation: sourceLocation)
    }

    /// Replies come in command order: once a PING sent now is answered, so is every SCRIPT LOAD
    /// the store queued before it (so the next call goes by SHA again).
    func settle(_ f: Fixture) {
        _ = f.await { done in f.connection.send(["PING"]) { done($0) } }
    }

    /// How many NOSCRIPT errors Redis has answered (INFO errorstats).
    func noscriptCount(_ f: Fixture) -> Int {
        let reply = f.await { done in f.connection.send(["INFO", "errorstats"]) { done($0) } }
        guard case .success(let value)? = reply, let text = value.text else { return -1 }
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("errorstat_NOSCRIPT:count=") {
            return Int(line.dropFirst("errorstat_NOSCRIPT:count=".count)) ?? -1
        }
        return 0
    }

    func claim(_ f: Fixture, _ key: String, _ owner: [UInt8], fingerprint: [UInt8]? = nil, lease: Duration = .seconds(5), expiredLease: IndeterminatePolicy = .hold) -> Result<ClaimOutcome, StoreError>? {
        f.await { done in
            f.store.claim(key: key, owner: owner, fingerprint: fingerprint ?? self.fingerprint, lease: lease, ttl: .seconds(60), expiredLease: expiredLease, completion: done)
        }
    }

    func read(_ f: Fixture, _ key: String) -> IdempotencyRecord?? {
        guard case .success(let record)? = f.await({ done in f.store.get(key: key, completion: done) }) else { return nil }
        return .some(record)
    }

    /// Each store script, called by SHA right after the cache was flushed.
    @Test func everyScriptRunsFromItsSourceAfterAFlush() throws {
        let redis = try RedisServer()
        let f = try Fixture(url: redis.url)
        defer { withExtendedLifetime(redis) {} }
        settle(f)
        var noscripts = noscriptCount(f)
        #expect(noscripts == 0)
        /// Flushes, runs `call`, waits for the reloads, and checks one more NOSCRIPT was answered.
        func afterFlush<T>(_ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ call: (@escaping (T) -> Void) -> Void) -> T? {
            flush(f, sourceLocation: sourceLocation)
            let value = f.await(call)
            settle(f)
            noscripts += 1
            #expect(noscriptCount(f) == noscripts, "\(what) did not go through NOSCRIPT", sourceLocation: sourceLocation)
            return value
        }
        let a = OwnerToken.random(), b = OwnerToken.random()

        // claimContended on a live in-flight key: the existing record, untouched.
        let k1 = f.key()
        #expect(claim(f, k1, a) == .success(.claimed))
        let contended: Result<ClaimOutcome, StoreError>? = afterFlush("claimContended") { done in
            f.store.claim(key: k1, owner: b, fingerprint: self.otherFingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .release, completion: done)
        }
        guard case .success(.existing(let live))? = contended else { Issue.record("claimContended: \(String(describing: contended))"); return }
        #expect(live.state == .inFlight && live.owner == a && live.fingerprint == fingerprint)

        // refresh by the owner, then by a stranger.
        let refreshed: Result<Bool, StoreError>? = afterFlush("refresh") { done in
            f.store.refreshLease(key: k1, owner: a, lease: .seconds(7), ttl: .seconds(60), completion: done)
        }
        #expect(refreshed == .success(true))
        let strangerRefresh: Result<Bool, StoreError>? = afterFlush("refresh (stranger)") { done in
            f.store.refreshLease(key: k1, owner: b, lease: .seconds(7), ttl: .seconds(60), completion: done)
        }
        #expect(strangerRefresh == .success(false))

        // complete with a 100 KB section of hostile bytes.
        let big = Self.hostileResponse(bodyBytes: 100_000, fieldCount: 120)
        let completed: Result<Bool, StoreError>? = afterFlush("complete") { done in
            f.store.complete(key: k1, owner: a, response: big, ttl: .seconds(60), completion: done)
        }
        #expect(completed == .success(true))
        let stored = read(f, k1)
        #expect(stored??.state == .completed && stored??.owner == a && stored??.fingerprint == fingerprint)
        #expect(stored??.response == big, "the 100 KB response read back differs")

        // inspect (a script too) reads the same record.
        let inspected: Result<RecordInspection?, StoreError>? = afterFlush("inspect") { done in f.store.inspect(key: k1, completion: done) }
        guard case .success(let inspection?)? = inspected else { Issue.record("inspect: \(String(describing: inspected))"); return }
        #expect(inspection.record == (stored ?? nil))
        #expect(inspection.expiresInMillis > 50_000 && inspection.expiresInMillis <= 60_000)

        // markUnknown.
        let k2 = f.key()
        #expect(claim(f, k2, a) == .success(.claimed))
        let marked: Result<Bool, StoreError>? = afterFlush("markUnknown") { done in f.store.markUnknown(key: k2, owner: a, ttl: .seconds(60), completion: done) }
        #expect(marked == .success(true))
        let unknown = read(f, k2)
        #expect(unknown??.state == .unknown && unknown??.owner == a && unknown??.fingerprint == fingerprint && unknown??.response == nil)

        // release: refused for a stranger, done for the owner.
        let k3 = f.key()
        #expect(claim(f, k3, a) == .success(.claimed))
        let strangerRelease: Result<Bool, StoreError>? = afterFlush("release (stranger)") { done in f.store.release(key: k3, owner: b, completion: done) }
        #expect(strangerRelease == .success(false))
        #expect(read(f, k3)??.owner == a)
        let released: Result<Bool, StoreError>? = afterFlush("release") { done in f.store.release(key: k3, owner: a, completion: done) }
        #expect(released == .success(true))
        #expect(read(f, k3) == .some(nil))

        // claimContended on expired leases: replaced under release (the new record is the
        // one framed in the retry), turned unknown under hold.
        let k4 = f.key(), k5 = f.key()
        #expect(claim(f, k4, a, lease: .milliseconds(20)) == .success(.claimed))
        #expect(claim(f, k5, a, lease: .milliseconds(20)) == .success(.claimed))
        usleep(80_000)  // both leases run out (a precondition, not an assertion)
        let takeover: Result<ClaimOutcome, StoreError>? = afterFlush("claimContended (release)") { done in
            f.store.claim(key: k4, owner: b, fingerprint: self.otherFingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .release, completion: done)
        }
        #expect(takeover == .success(.claimed))
        let taken = read(f, k4)
        #expect(taken??.state == .inFlight && taken??.owner == b && taken??.fingerprint == otherFingerprint)
        let held: Result<ClaimOutcome, StoreError>? = afterFlush("claimContended (hold)") { done in
            f.store.claim(key: k5, owner: b, fingerprint: self.fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done)
        }
        guard case .success(.existing(let heldRecord))? = held else { Issue.record("hold: \(String(describing: held))"); return }
        #expect(heldRecord.state == .unknown && heldRecord.owner == a)

        // An empty response section: no fields, no body, a 204.
        let empty = StoredResponse(status: 204, headers: [], body: [])
        let emptyDone: Result<Bool, StoreError>? = afterFlush("complete (empty)") { done in
            f.store.complete(key: k4, owner: b, response: empty, ttl: .seconds(60), completion: done)
        }
        #expect(emptyDone == .success(true))
        #expect(read(f, k4)??.response == empty)
    }

    /// The flush lands while many script calls of every kind are queued behind it on the one
    /// connection: each answers NOSCRIPT, each is retried from its own framed bytes (never
    /// another call's), in order, and every record read back is the one its calls wrote.
    @Test func manyCallsInFlightWhenTheCacheIsFlushed() throws {
        let redis = try RedisServer()
        let f = try Fixture(url: redis.url, commandTimeoutMillis: 2000)
        defer { withExtendedLifetime(redis) {} }
        settle(f)
        let count = 40
        let keys = (0..<count).map { _ in f.key() }
        let owners = (0..<count).map { _ in OwnerToken.random() }
        for i in 0..<count { #expect(claim(f, keys[i], owners[i]) == .success(.claimed)) }
        let responses = (0..<count).map { i in
            var response = Self.hostileResponse(bodyBytes: i % 7 == 0 ? 100_000 : i * 53, fieldCount: i % 11)
            response.status = 200 + i
            return response
        }
        let before = noscriptCount(f)

        // Nothing below runs until the loop does: the flush is queued first, every call after it.
        var flushed: Result<RedisValue, RedisClientError>?
        f.connection.send(["SCRIPT", "FLUSH"]) { flushed = $0 }
        var results: [String: Result<Bool, StoreError>] = [:]
        var claims: [Int: Result<ClaimOutcome, StoreError>] = [:]
        var scriptCalls = 0
        for i in 0..<count {
            let key = keys[i], owner = owners[i]
            switch i % 5 {
            case 0:
                f.store.complete(key: key, owner: owner, response: responses[i], ttl: .seconds(60)) { results["c\(i)"] = $0 }
                scriptCalls += 1
            case 1:
                f.store.refreshLease(key: key, owner: owner, lease: .seconds(9), ttl: .seconds(60)) { results["r\(i)"] = $0 }
                f.store.complete(key: key, owner: owner, response: responses[i], ttl: .seconds(60)) { results["c\(i)"] = $0 }
                scriptCalls += 2
            case 2:
                f.store.release(key: key, owner: owner) { results["x\(i)"] = $0 }
                scriptCalls += 1
            case 3:
                f.store.markUnknown(key: key, owner: owner, ttl: .seconds(60)) { results["u\(i)"] = $0 }
                scriptCalls += 1
            default:
                // A second claimer first (its SET finds the live claim, so claimContended
                // follows), then the owner's completion.
                f.store.claim(key: key, owner: OwnerToken.random(), fingerprint: otherFingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .release) { claims[i] = $0 }
                f.store.complete(key: key, owner: owner, response: responses[i], ttl: .seconds(60)) { results["c\(i)"] = $0 }
                scriptCalls += 1
            }
        }
        let expectedResults = (0..<count).reduce(0) { $0 + ($1 % 5 == 1 ? 2 : 1) }
        #expect(f.run(seconds: 10, until: { results.count == expectedResults && claims.count == count / 5 && flushed != nil }))
        #expect(flushed == .success(.status("OK")))
        for (name, result) in results.sorted(by: { $0.key < $1.key }) { #expect(result == .success(true), "\(name): \(result)") }
        for (i, outcome) in claims.sorted(by: { $0.key < $1.key }) {
            guard case .success(.existing(let record)) = outcome else { Issue.record("claim \(i): \(outcome)"); continue }
            #expect(record.owner == owners[i] && record.fingerprint == fingerprint, "claim \(i) saw another record")
        }
        settle(f)
        let noscripts = noscriptCount(f) - before
        // Every script call queued behind the flush answered NOSCRIPT once; a contended claim's
        // script, sent later, may or may not have found its script reloaded.
        #expect(noscripts >= scriptCalls && noscripts <= scriptCalls + count / 5, "\(noscripts) NOSCRIPT replies for \(scriptCalls) calls")

        for i in 0..<count {
            let record = read(f, keys[i])
            switch i % 5 {
            case 2:
                #expect(record == .some(nil), "key \(i) was not released")
            case 3:
                #expect(record??.state == .unknown && record??.owner == owners[i], "key \(i)")
            default:
                #expect(record??.state == .completed && record??.owner == owners[i] && record??.fingerprint == fingerprint, "key \(i)")
                #expect(record??.response == responses[i], "key \(i): the response read back differs")
            }
        }
        // The next call goes by SHA again and needs no retry.
        let after = noscriptCount(f)
        #expect(f.await { done in f.store.release(key: keys[0], owner: owners[0], completion: done) } == .success(false))
        #expect(noscriptCount(f) == after)
    }
}
