import Foundation
import Glibc
import Testing
import TestSupport

/// Adversarial checks of the replay path: GuardedExchange reuse under pipelining, replay bytes
/// (pre-serialised keep-alive bytes vs. close / HTTP/1.0 replays), hostile Idempotency-Key
/// values (SPEC §2), the Redis replay cache (purge, short ttl, cached mismatch) and claim races.
@Suite(.serialized) struct AdversarialReplayTests {
    static let scope = "Bearer caller-1"

    /// A raw guarded request with a key header value given verbatim (nil: no key line).
    static func raw(
        _ path: String = "/v1/payments", keyLines: [[UInt8]], body: String = "{\"a\":1}", version: String = "1.1", extra: String = ""
    ) -> [UInt8] {
        var bytes = Array("POST \(path) HTTP/\(version)\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nAuthorization: \(scope)\r\n\(extra)".utf8)
        for line in keyLines { bytes += Array("Idempotency-Key: ".utf8) + line + [13, 10] }
        return bytes + [13, 10] + Array(body.utf8)
    }

    static func key(_ text: String) -> [[UInt8]] { [Array(text.utf8)] }

    /// Answers /slow after a delay, everything else at once, numbering executions.
    final class Origin: @unchecked Sendable {
        let lock = NSLock()
        var executions = 0
        var count: Int { lock.lock(); defer { lock.unlock() }; return executions }
        var responder: TestUpstream.Responder {
            { [self] request in
                lock.lock(); executions += 1; let n = executions; lock.unlock()
                let body = Array("{\"execution\":\(n),\"len\":\(request.body.count)}".utf8)
                if request.target.hasPrefix("/v1/slow") { return .delayed(seconds: 0.6, status: 201, body: body) }
                return .respond(status: 201, headers: [("X-N", "\(n)")], body: body)
            }
        }
    }

    // MARK: pipelining and GuardedExchange reuse

    @Test(arguments: StoreKind.allCases)
    func pipelinedMixOfOutcomesAnswersEachRequestInOrder(_ store: StoreKind) throws {
        let origin = Origin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: store.yaml())
        defer { proxy.stop() }
        let k1 = uniqueKey(), k2 = uniqueKey(), slow = uniqueKey()
        // Another connection holds `slow` in flight for 600 ms.
        let owner = try proxy.client()
        try owner.send(Self.raw("/v1/slow", keyLines: Self.key("\"\(slow)\"")))
        usleep(150_000)
        let client = try proxy.client()
        let q = { (k: String) in Self.key("\"\(k)\"") }
        let plan: [([UInt8], Int, String?)] = [
            (Self.raw(keyLines: q(k1), body: "{\"a\":1}"), 201, "fresh1"),
            (Self.raw(keyLines: q(k1), body: "{\"a\":1}"), 201, "replay1"),
            (Self.raw(keyLines: q(k1), body: "{\"a\":22}"), 422, nil),
            (Self.raw("/v1/slow", keyLines: q(slow)), 409, nil),
            (Self.raw(keyLines: q(k2), body: "{\"b\":333}"), 201, "fresh2"),
            (Self.raw(keyLines: q(k1), body: "{\"a\":1}"), 201, "replay1"),
            (Self.raw(keyLines: q(k2), body: "{\"b\":1}"), 422, nil),
            (Self.raw(keyLines: q(k2), body: "{\"b\":333}"), 201, "replay2"),
        ]
        try client.send(plan.flatMap { $0.0 })
        var firstBody = "", secondBody = ""
        for (index, step) in plan.enumerated() {
            let response = try client.readResponse(requestMethod: "POST")
            #expect(response.status == step.1, "request \(index): \(response.head)")
            switch step.2 {
            case "fresh1": firstBody = response.bodyText; #expect(response.value("idempotent-replayed") == nil)
            case "fresh2":
                secondBody = response.bodyText
                #expect(response.value("idempotent-replayed") == nil)
                #expect(response.bodyText.contains("\"len\":9"), "request \(index) got another request's body: \(response.bodyText)")
            case "replay1":
                #expect(response.bodyText == firstBody, "request \(index)")
                #expect(response.value("idempotent-replayed") == "true")
            case "replay2":
                #expect(response.bodyText == secondBody, "request \(index)")
                #expect(response.value("idempotent-replayed") == "true")
            default: break
            }
        }
        #expect(firstBody.contains("\"len\":7"))
        #expect(try owner.readResponse(requestMethod: "POST").status == 201)
        // The in-flight one, asked again on the same reused connection, now replays.
        try client.send(Self.raw("/v1/slow", keyLines: Self.key("\"\(slow)\"")))
        let late = try client.readResponse(requestMethod: "POST")
        #expect(late.status == 201 && late.value("idempotent-replayed") == "true")
        // Two key lines on the reused exchange: 400, nothing forwarded.
        try client.send(Self.raw(keyLines: [Array("\"\(k2)\"".utf8), Array("\"x\"".utf8)], body: "{\"b\":333}"))
        #expect(try client.readResponse(requestMethod: "POST").status == 400)
        #expect(origin.count == 3)
    }

    // MARK: replay bytes

    /// A stored head with obs-text, a long field and bodies around the pre-serialisation limit
    /// replays byte for byte, and close / HTTP/1.0 replays are not the keep-alive bytes.
    @Test(arguments: [4095, 4096, 4097, 0])
    func replayBytesAreExactAroundTheSerialisationLimit(_ size: Int) throws {
        var body = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        if size > 0 { body[0] = 0xFF; body[size - 1] = 0x00 }
        let long = String(repeating: "L", count: 6000)
        var head = Array("HTTP/1.1 201 Created\r\nX-Obs: caf".utf8) + [0xE9, 0x80, 0xFE] + Array(" end\r\nX-Long: \(long)\r\nX-Quote: \"a\\\"b\"\r\nContent-Length: \(size)\r\n\r\n".utf8)
        head += body
        let wire = head
        let origin = TestUpstream(behaviour: { _ in .raw(wire) })
        let proxy = try ProxyHarness(upstream: origin, yaml: StoreKind.memory.yaml())
        defer { proxy.stop() }
        let key = uniqueKey()
        let request = Self.raw(keyLines: Self.key("\"\(key)\""))
        let first = try proxy.client()
        try first.send(request)
        let original = try first.readResponse(requestMethod: "POST")
        #expect(original.body == body)
        func fieldLines(_ r: TestClient.Response) -> [[UInt8]] {
            var lines: [[UInt8]] = []
            var current: [UInt8] = []
            for b in r.headBytes { if b == 10 { lines.append(current); current = [] } else if b != 13 { current.append(b) } }
            return lines.filter { line in
                let lower = String(decoding: line.prefix(20), as: UTF8.self).lowercased()
                return lower.hasPrefix("x-")
            }
        }
        let expectedFields = fieldLines(original)
        #expect(expectedFields.count == 3)
        // Keep-alive replays: the first builds the serialised bytes, the second uses them.
        let keepAlive = try proxy.client()
        try keepAlive.send(request + request)
        for round in 0..<2 {
            let replay = try keepAlive.readResponse(requestMethod: "POST")
            #expect(replay.status == 201, "round \(round)")
            #expect(replay.body == body, "round \(round)")
            #expect(fieldLines(replay) == expectedFields, "round \(round)")
            #expect(replay.value("idempotent-replayed") == "true")
            #expect(replay.value("connection") == nil)
        }
        // A third request on the same connection still parses: the framing was exact.
        try keepAlive.send(request)
        #expect(try keepAlive.readResponse(requestMethod: "POST").body == body)
        // Connection: close on HTTP/1.1 — the replay says so and the connection ends.
        let closing = try proxy.client()
        try closing.send(Self.raw(keyLines: Self.key("\"\(key)\""), extra: "Connection: close\r\n"))
        let closed = try closing.readResponse(requestMethod: "POST")
        #expect(closed.body == body)
        #expect(closed.value("connection")?.lowercased() == "close")
        #expect(fieldLines(closed) == expectedFields)
        #expect(closing.isClosedByPeer())
        // HTTP/1.0 without keep-alive: closed after the replay.
        let old = try proxy.client()
        try old.send(Self.raw(keyLines: Self.key("\"\(key)\""), version: "1.0"))
        let oldReplay = try old.readResponse(requestMethod: "POST")
        #expect(oldReplay.body == body)
        #expect(old.isClosedByPeer())
        // HTTP/1.0 with keep-alive: acknowledged, and the connection stays usable.
        let oldKeep = try proxy.client()
        try oldKeep.send(Self.raw(keyLines: Self.key("\"\(key)\""), version: "1.0", extra: "Connection: keep-alive\r\n"))
        let ack = try oldKeep.readResponse(requestMethod: "POST")
        #expect(ack.value("connection")?.lowercased() == "keep-alive")
        #expect(ack.body == body)
        try oldKeep.send(Self.raw(keyLines: Self.key("\"\(key)\""), version: "1.0", extra: "Connection: keep-alive\r\n"))
        #expect(try oldKeep.readResponse(requestMethod: "POST").body == body)
        #expect(proxy.upstream.requests.count == 1)
    }

    // MARK: hostile keys (SPEC §2)

    @Test func hostileKeyValuesAreAnsweredPerSpec() throws {
        let origin = Origin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: StoreKind.memory.yaml())
        defer { proxy.stop() }
        let n = UInt32.random(in: 0...UInt32.max)
        func send(_ lines: [[UInt8]]) throws -> TestClient.Response {
            let c = try proxy.client()
            try c.send(Self.raw(keyLines: lines))
            return try c.readResponse(requestMethod: "POST")
        }
        let a254 = String(repeating: "a", count: 254)
        let rejected: [(String, [[UInt8]])] = [
            ("empty value", [[]]),
            ("whitespace only", [Array("   \t ".utf8)]),
            ("empty string", [Array("\"\"".utf8)]),
            ("invalid escape", [Array("\"a\\b\(n)\"".utf8)]),
            ("unterminated", [Array("\"abc\(n)".utf8)]),
            ("ends in escape", [Array("\"abc\(n)\\".utf8)]),
            ("parameters", [Array("\"k\(n)\";p=1".utf8)]),
            ("list", [Array("\"a\(n)\", \"b\"".utf8)]),
            ("bare list", [Array("a\(n),b".utf8)]),
            ("bare with quote", [Array("a\"\(n)".utf8)]),
            ("bare with space", [Array("a \(n)".utf8)]),
            ("junk after string", [Array("\"k\(n)\" x".utf8)]),
            ("non-ASCII in string", [Array("\"caf".utf8) + [0xE9] + Array("\(n)\"".utf8)]),
            ("obs-text bare", [Array("k\(n)".utf8) + [0xE9]]),
            ("tab in string", [Array("\"a\tb\(n)\"".utf8)]),
            ("two field lines", [Array("\"k\(n)\"".utf8), Array("\"k\(n)\"".utf8)]),
            ("256 characters", [Array("\"\(a254)bb\"".utf8)]),
            ("256 after unquoting, with escapes", [Array("\"\(a254)\\\"\\\\\"".utf8)]),
            ("bare 256", [Array("\(a254)bb".utf8)]),
        ]
        for (name, lines) in rejected {
            let response = try send(lines)
            #expect(response.status == 400, "\(name): \(response.status)")
            #expect(response.bodyText.contains("invalid-key"), "\(name): \(response.bodyText)")
        }
        #expect(origin.count == 0)
        // Accepted forms, and the equivalences unquoting implies.
        let escaped = try send([Array("\"q\\\\\(n)\\\"z\"".utf8)])  // q\<n>"z
        #expect(escaped.status == 201)
        let bareSame = try send([Array("q\\\(n)\"z".utf8)])         // bare cannot hold a quote
        #expect(bareSame.status == 400)
        let backslash = try send([Array("\"b\\\\\(n)\"".utf8)])     // b\<n>
        #expect(backslash.status == 201 && backslash.value("idempotent-replayed") == nil)
        let backslashBare = try send([Array("  b\\\(n)\t".utf8)])     // the same key, bare, with OWS
        #expect(backslashBare.status == 201)
        #expect(backslashBare.value("idempotent-replayed") == "true", "\"b\\\\n\" and b\\n are one key")
        #expect(backslashBare.bodyText == backslash.bodyText)
        let quotedPlain = try send([Array("\"p\(n)\"  ".utf8)])
        let barePlain = try send([Array("p\(n)".utf8)])
        #expect(quotedPlain.status == 201 && barePlain.value("idempotent-replayed") == "true")
        // 255 characters after unquoting, written with two escapes (257 raw bytes): accepted.
        let longEscaped = try send([Array("\"\(String(a254.dropLast()))\(n % 10)\\\"\"".utf8)])
        #expect(longEscaped.status == 201, "255 characters after unquoting must be accepted: \(longEscaped.status)")
        let exactly255 = String(repeating: "z", count: 255 - "\(n)".count) + "\(n)"
        #expect(try send([Array("\"\(exactly255)\"".utf8)]).status == 201)
        #expect(try send([Array(exactly255.utf8)]).value("idempotent-replayed") == "true")
        // A key that differs only in case is another key.
        #expect(try send([Array("\"P\(n)\"".utf8)]).value("idempotent-replayed") == nil)
        #expect(origin.count == 6)
    }

    @Test func strictSyntaxRefusesBareTokens() throws {
        let origin = Origin()
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), yaml: StoreKind.memory.yaml() + "idempotency: { key_syntax: strict }\n")
        defer { proxy.stop() }
        let c = try proxy.client()
        try c.send(Self.raw(keyLines: Self.key("bare-\(UInt32.random(in: 0...UInt32.max))")))
        #expect(try c.readResponse(requestMethod: "POST").status == 400)
        let d = try proxy.client()
        try d.send(Self.raw(keyLines: Self.key("\"quoted-\(UInt32.random(in: 0...UInt32.max))\"")))
        #expect(try d.readResponse(requestMethod: "POST").status == 201)
        #expect(origin.count == 1)
    }

    // MARK: Redis replay cache through the proxy

    func redisProxy(_ origin: Origin, workers: Int = 1, idempotency: String = "") throws -> ProxyHarness {
        try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), yaml: StoreKind.redis.yaml() + "idempotency: { \(idempotency) }\n",
            workers: workers)
    }

    func send(_ proxy: ProxyHarness, _ key: String, body: String = "{\"a\":1}") throws -> TestClient.Response {
        let c = try proxy.client()
        try c.send(Self.raw(keyLines: Self.key("\"\(key)\""), body: body))
        return try c.readResponse(requestMethod: "POST")
    }

    /// Replays until one is served from a worker's cache.
    func warm(_ proxy: ProxyHarness, _ key: String) -> Bool {
        let metrics = proxy.server.metrics
        let before = metrics.replayCacheHits.load(ordering: .relaxed)
        return eventually { (try? send(proxy, key).value("idempotent-replayed")) == "true" && metrics.replayCacheHits.load(ordering: .relaxed) > before }
    }

    @Test func aCachedRecordStillAnswersADifferentBodyWith422() throws {
        let origin = Origin()
        let proxy = try redisProxy(origin)
        defer { proxy.stop() }
        let key = uniqueKey()
        #expect(try send(proxy, key).status == 201)
        #expect(warm(proxy, key))
        let hits = proxy.server.metrics.replayCacheHits.load(ordering: .relaxed)
        let other = try send(proxy, key, body: "{\"a\":2}")
        #expect(other.status == 422)
        #expect(other.bodyText.contains("key-reused"))
        #expect(proxy.server.metrics.replayCacheHits.load(ordering: .relaxed) == hits + 1, "decided on the cached record")
        // Same key, other scope: not the cached record.
        let c = try proxy.client()
        try c.send(Array(String(decoding: Self.raw(keyLines: Self.key("\"\(key)\"")), as: UTF8.self).replacingOccurrences(of: Self.scope, with: "Bearer caller-2").utf8))
        let otherScope = try c.readResponse(requestMethod: "POST")
        #expect(otherScope.status == 201 && otherScope.value("idempotent-replayed") == nil)
        #expect(origin.count == 2)
    }

    /// The cache never outlives the record: with ttl 1s, a retry after expiry executes again.
    @Test func aCachedRecordIsNotServedAfterItsTTL() throws {
        let origin = Origin()
        let proxy = try redisProxy(origin, idempotency: "lease: 1s, ttl: 1500ms")
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try send(proxy, key)
        let stored = Date()
        #expect(first.status == 201)
        #expect(warm(proxy, key))
        // Replays until shortly before expiry all come back as the first response.
        while Date().timeIntervalSince(stored) < 1.0 {
            let r = try send(proxy, key)
            #expect(r.value("idempotent-replayed") == "true" && r.bodyText == first.bodyText)
            usleep(50_000)
        }
        usleep(UInt32(max(0, 2.0 - Date().timeIntervalSince(stored)) * 1_000_000))
        let after = try send(proxy, key)
        #expect(after.status == 201)
        #expect(after.value("idempotent-replayed") == nil, "served from cache after the record expired: \(after.bodyText)")
        #expect(origin.count == 2)
    }

    /// DELETE /records answers 204 "the key may be used again": the very next request with the
    /// key, on any connection (and so on any worker), must execute, not replay the purged one.
    @Test(arguments: [1, 2])
    func aPurgedKeyIsNotReplayedAfterThe204(_ workers: Int) throws {
        let origin = Origin()
        let proxy = try redisProxy(origin, workers: workers)
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try send(proxy, key)
        #expect(first.status == 201)
        // Warm every worker's cache: many connections spread over the workers.
        for _ in 0..<30 { _ = try send(proxy, key) }
        #expect(warm(proxy, key))
        let purged = try proxy.admin("DELETE", "/records?key=\(key)&scope=Bearer+caller-1")
        #expect(purged.status == 204)
        var stale = 0
        var fresh: String? = nil
        for _ in 0..<12 {
            let r = try send(proxy, key)
            if r.bodyText == first.bodyText { stale += 1 } else if fresh == nil { fresh = r.bodyText }
        }
        // The 204 comes only once no replay cache, on any worker, can still serve the record.
        #expect(stale == 0, "\(stale) of 12 requests after the 204 replayed the purged response")
        #expect(fresh != nil)
        for _ in 0..<12 {
            let r = try send(proxy, key)
            #expect(r.bodyText == fresh, "replaying something other than the key's new response")
        }
        #expect(origin.count == 2)
    }

    // MARK: races

    @Test func claimsRacingOnOneKeyWithRedisForwardOnce() throws {
        let origin = Origin()
        let proxy = try redisProxy(origin, workers: 2)
        defer { proxy.stop() }
        for _ in 0..<3 {
            let key = uniqueKey()
            let port = proxy.port
            let statuses = concurrently(12) { _ -> Int in
                guard let c = try? TestClient(port: port) else { return -1 }
                guard (try? c.send(Self.raw("/v1/slow", keyLines: Self.key("\"\(key)\"")))) != nil else { return -2 }
                guard let r = try? c.readResponse(requestMethod: "POST") else { return -3 }
                return r.status * 10 + (r.value("idempotent-replayed") == "true" ? 1 : 0)
            }
            // Exactly one execution; every other request is in flight (409) or a replay.
            #expect(statuses.filter { $0 == 2010 }.count == 1, "\(statuses)")
            #expect(statuses.allSatisfy { $0 == 2010 || $0 == 4090 || $0 == 2011 }, "\(statuses)")
        }
        #expect(origin.count == 3)
    }
}
