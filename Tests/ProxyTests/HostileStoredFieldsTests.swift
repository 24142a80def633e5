import Foundation
import RedisClient
import Synchronization
import Testing
import TestSupport

/// The fields of a head, as raw byte pairs (name, value with OWS trimmed).
private func fieldPairs(_ headBytes: [UInt8]) -> [([UInt8], [UInt8])] {
    TestClient.Response.fieldLines(headBytes).map { ($0.name, $0.value) }
}

private func lower(_ b: [UInt8]) -> String {
    String(decoding: b.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }, as: UTF8.self)
}

/// The reference filter: RFC 9110 §7.6.1 plus Content-Length and (unless kept) Set-Cookie.
private func expectedStored(_ fields: [([UInt8], [UInt8])], keep: [String] = []) -> [([UInt8], [UInt8])] {
    var named = Set<String>()
    for (name, value) in fields where lower(name) == "connection" {
        for option in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            var token = Array(option)
            while let f = token.first, f == 32 || f == 9 { token.removeFirst() }
            while let l = token.last, l == 32 || l == 9 { token.removeLast() }
            if !token.isEmpty { named.insert(lower(token)) }
        }
    }
    let never: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length"]
    return fields.filter { name, _ in
        let n = lower(name)
        if never.contains(n) || named.contains(n) { return false }
        if n == "set-cookie" && !keep.contains(where: { $0.lowercased() == "set-cookie" }) { return false }
        return true
    }
}

private func show(_ pairs: [([UInt8], [UInt8])]) -> String {
    pairs.map { "\(String(decoding: $0.0, as: UTF8.self)): \(Array($0.1))" }.joined(separator: " | ")
}

/// Replay fields minus what the proxy adds itself.
private func replayedStored(_ response: TestClient.Response) -> [([UInt8], [UInt8])] {
    fieldPairs(response.headBytes).filter { !["idempotent-replayed", "content-length", "connection"].contains(lower($0.0)) }
}

private func same(_ a: [([UInt8], [UInt8])], _ b: [([UInt8], [UInt8])]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
}

final class Runs: Sendable { let counts = Mutex<[String: Int]>([:]) }

/// Hostile upstream heads through a real proxy (many fields, several Connection fields, empty
/// and odd tokens, obs-text, interim responses, chunked trailers), and one keep-alive connection
/// mixing replays, new keys, mismatches, releases and in-flight waits: the replay carries
/// exactly the fields a reference filter keeps, and every key runs once upstream.
@Suite(.serialized) struct HostileStoredFieldsTests {
    static func request(_ key: String, path: String = "/p", body: String = "{}") -> String {
        "POST \(path) HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// Runs a raw upstream head + body through the proxy and checks the replay's fields.
    func check(
        _ head: [UInt8], body: [UInt8] = Array("{}".utf8), key: String, expectStatus: Int, keep: [String] = [], extraYAML: String = "",
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let upstream = TestUpstream { _ in .raw(head + body) }
        let yaml = extraYAML + "limits: { max_headers: 1000 }\n" + (keep.isEmpty ? "" : "idempotency:\n  replay: { keep_headers: [\(keep.joined(separator: ", "))] }\n")
        let proxy = try ProxyHarness(upstream: upstream, yaml: yaml)
        defer { proxy.stop() }
        let first = try proxy.request(Self.request(key))
        let replay = try proxy.request(Self.request(key))
        #expect(first.status == expectStatus, sourceLocation: sourceLocation)
        #expect(replay.status == expectStatus, sourceLocation: sourceLocation)
        #expect(replay.value("idempotent-replayed") == "true", "not a replay: \(replay.head)", sourceLocation: sourceLocation)
        #expect(upstream.requests.count == 1, sourceLocation: sourceLocation)
        // The upstream's head as fields: only the final response's.
        var finalHead = head
        while let end = TestUpstream.find([13, 10, 13, 10], in: finalHead), end + 4 < finalHead.count {
            finalHead = Array(finalHead[(end + 4)...])
        }
        let sent = fieldPairs(finalHead)
        let want = expectedStored(sent, keep: keep)
        let got = replayedStored(replay)
        #expect(same(got, want), "replayed:\n\(show(got))\nexpected:\n\(show(want))", sourceLocation: sourceLocation)
        #expect(replay.body == first.body, sourceLocation: sourceLocation)
    }

    @Test func manyHostileFieldsAcrossThe64Boundary() throws {
        var head = Array("HTTP/1.1 201 Created\r\n".utf8)
        func add(_ name: String, _ value: [UInt8]) { head += Array(name.utf8) + Array(": ".utf8) + value + [13, 10] }
        add("X-Before", Array("precedes".utf8))  // named by a Connection header that follows
        for i in 0..<100 {
            switch i {
            case 10: add("Connection", Array(",, ,\tX-Before ,\t, CONNECTION, content-length,x-f70,".utf8))
            case 20: add("X-Empty", [])
            case 30: add("x-dup", Array("a".utf8))
            case 31: add("X-DUP", Array("b".utf8))
            case 40: add("Set-Cookie", Array("s=1".utf8))
            case 50: add("X-Obs", [0x80, 0xFF, 0x20, 0xC3, 0xA9])
            case 62, 63, 64, 65: add("Keep-Alive", Array("timeout=\(i)".utf8))
            case 66: add("connection", Array("\tx-after\t".utf8))
            case 67: add("X-After", Array("follows".utf8))
            case 80: add("CoNnEcTiOn", Array("x-F99 , x-dup".utf8))
            case 90: add("Trailer", Array("X-T".utf8))
            default: add("X-F\(i)", Array("v\(i)".utf8))
            }
        }
        head += Array("Content-Length: 2\r\n\r\n".utf8)
        try check(head, key: "hostile-100", expectStatus: 201)
    }

    @Test(arguments: [60, 63, 64, 65, 66, 127, 128, 129, 500])
    func fieldCountBoundaries(count: Int) throws {
        try fieldCountBoundaries(count: count, extraYAML: "")
    }

    static var redisYAML: String {
        let url = ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:1/0"
        return "store: { backend: redis, redis: { url: \"\(url)\", key_prefix: \"adv2-\(UInt64.random(in: 0..<UInt64.max))\", command_timeout: 500ms } }\n"
    }

    @Test(arguments: [3, 64, 65, 200])
    func fieldCountBoundariesOnRedis(count: Int) throws {
        try fieldCountBoundaries(count: count, extraYAML: Self.redisYAML)
    }

    func fieldCountBoundaries(count: Int, extraYAML: String) throws {
        var head = Array("HTTP/1.1 200 OK\r\n".utf8)
        for i in 0..<count {
            // every third field is dropped (named by Connection at the end)
            head += Array("X-G\(i): \(i % 3 == 0 ? "drop" : "keep")\(i)\r\n".utf8)
        }
        let names = stride(from: 0, to: count, by: 3).map { "x-g\($0)" }.joined(separator: ",")
        head += Array("Connection: \(names)\r\nContent-Length: 2\r\n\r\n".utf8)
        head[head.count - 10] = head[head.count - 10]  // unchanged
        var withObs = head
        withObs.insert(contentsOf: Array("X-Obs: ".utf8) + [0x80, 0xFE, 0x20, 0x41] + [13, 10], at: 17)
        try check(withObs, key: "count-\(count)", expectStatus: 200, extraYAML: extraYAML)
    }

    @Test func onlyDroppedFields() throws {
        let head = Array("HTTP/1.1 201 Created\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\n".utf8)
        try check(head, key: "only-dropped", expectStatus: 201)
    }

    @Test func connectionTokensWithOnlyCommasAndWhitespace() throws {
        let head = Array("HTTP/1.1 201 Created\r\nX-A: 1\r\nConnection: \t , ,,\t\r\nConnection:\r\nX-B: 2\r\nContent-Length: 2\r\n\r\n".utf8)
        try check(head, key: "commas", expectStatus: 201)
    }

    @Test func keepHeadersSetCookieOddCase() throws {
        let head = Array("HTTP/1.1 201 Created\r\nSET-COOKIE: a=1\r\nset-cookie: b=2\r\nConnection: SeT-CoOkIe\r\nX-K: 1\r\nContent-Length: 2\r\n\r\n".utf8)
        try check(head, key: "cookies", expectStatus: 201, keep: ["set-cookie"])
        let head2 = Array("HTTP/1.1 201 Created\r\nSET-COOKIE: a=1\r\nset-cookie: b=2\r\nX-K: 1\r\nContent-Length: 2\r\n\r\n".utf8)
        try check(head2, key: "cookies2", expectStatus: 201, keep: ["Set-Cookie"])
    }

    @Test func earlyHintsBeforeTheFinalResponse() throws {
        let head = Array("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nX-Early: 1\r\nConnection: x-final\r\n\r\n".utf8)
            + Array("HTTP/1.1 201 Created\r\nX-Final: 1\r\nLocation: /x\r\nContent-Length: 2\r\n\r\n".utf8)
        try check(head, key: "hints", expectStatus: 201)
    }

    @Test func twoInterimResponses() throws {
        let head = Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".utf8)
            + Array("HTTP/1.1 202 Accepted\r\nX-Z: z\r\nContent-Length: 2\r\n\r\n".utf8)
        try check(head, key: "hints2", expectStatus: 202)
    }

    @Test func noContentAndNotModified() throws {
        try check(Array("HTTP/1.1 204 No Content\r\nX-A: 1\r\nConnection: x-b\r\nX-B: 2\r\nETag: \"e\"\r\n\r\n".utf8), body: [], key: "204", expectStatus: 204)
        try check(Array("HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nContent-Length: 10\r\nX-C: 3\r\n\r\n".utf8), body: [], key: "304", expectStatus: 304)
    }

    @Test func chunkedResponseWithTrailer() throws {
        let head = Array("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nX-A: ok\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n\r\n".utf8)
        let body = Array("5\r\nhello\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n".utf8)
        try check(head, body: body, key: "chunked", expectStatus: 201)
    }

    @Test func connectionNamingItselfAndLengthWithDuplicateNames() throws {
        let head = Array("HTTP/1.1 201 Created\r\nX-Y: 1\r\nConnection: connection,connection\r\nx-y: 2\r\nConnection: content-length, x-y\r\nX-Z: 3\r\nContent-Length: 2\r\n\r\n".utf8)
        try check(head, key: "self", expectStatus: 201)
    }

    @Test func longFieldValuesAndLongNames() throws {
        let long = String(repeating: "v", count: 6_000)
        let longName = "X-" + String(repeating: "n", count: 300)
        let head = Array("HTTP/1.1 201 Created\r\n\(longName): \(long)\r\nX-Short: s\r\nConnection: \(longName.uppercased())x\r\nContent-Length: 2\r\n\r\n".utf8)
        try check(head, key: "long", expectStatus: 201)
    }

    /// The head arrives in pieces (a 103 in its own packet, the final head split mid-field).
    @Test func headSplitAcrossReads() throws {
        let interim = Array("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".utf8)
        var final = Array("HTTP/1.1 201 Created\r\n".utf8)
        for i in 0..<70 { final += Array("X-S\(i): \(String(repeating: "s", count: i))\r\n".utf8) }
        final += Array("Connection: x-s3, X-S66\r\nContent-Length: 2\r\n\r\n{}".utf8)
        let parts = [interim, Array(final[0..<37]), Array(final[37..<400]), Array(final[400..<(final.count - 3)]), Array(final[(final.count - 3)...])]
        let upstream = TestUpstream { _ in .sequence(parts, gapSeconds: 0.05, ending: .keepOpen) }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let first = try proxy.request(Self.request("split"))
        let replay = try proxy.request(Self.request("split"))
        #expect(first.status == 201 && replay.status == 201 && replay.value("idempotent-replayed") == "true")
        #expect(upstream.requests.count == 1)
        let headOnly = Array(final[0..<(final.count - 2)])
        let want = expectedStored(fieldPairs(headOnly))
        let got = replayedStored(replay)
        #expect(same(got, want), "replayed:\n\(show(got))\nexpected:\n\(show(want))")
        #expect(replay.bodyText == "{}")
    }

    // MARK: one keep-alive connection, many kinds of outcomes

    /// Upstream: /ok → 201 body "run-<key>-<n>"; /busy → 503; /slow → 1 s delay then 201.
    static func sessionUpstream(_ runs: Runs) -> TestUpstream {
        TestUpstream { request in
            let key = request.values("idempotency-key").first ?? "-"
            let n = runs.counts.withLock { $0[key, default: 0] += 1; return $0[key]! }
            let body = Array("run-\(key)-\(n)".utf8)
            switch request.target {
            case "/busy": return .respond(status: 503, headers: [("X-Run", "\(n)")], body: body)
            case "/limited": return .respond(status: 429, headers: [("Retry-After", "1")], body: body)
            case "/slow": return .delayed(seconds: 1.0, status: 201, body: body)
            default: return .respond(status: 201, headers: [("X-Run", "\(n)"), ("Connection", "x-run2"), ("X-Run2", "drop")], body: body)
            }
        }
    }

    @Test func oneKeepAliveConnectionWaitModeOnRedis() throws { try runSession(concurrentWait: true, extraYAML: Self.redisYAML) }

    func runSession(concurrentWait: Bool, extraYAML: String = "") throws {
        let runs = Runs()
        let upstream = Self.sessionUpstream(runs)
        let yaml = extraYAML + (concurrentWait ? "idempotency: { concurrent: wait, wait_timeout: 10s }\n" : "")
        let proxy = try ProxyHarness(upstream: upstream, yaml: yaml)
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 15)
        func send(_ key: String, _ path: String = "/ok", _ body: String = "{}") throws -> TestClient.Response {
            try client.send(Self.request(key, path: path, body: body))
            return try client.readResponse(requestMethod: "POST")
        }
        var completed: [String: String] = [:]  // key → body of its one execution
        for round in 0..<12 {
            let k = "s\(round)"
            // new key
            let r1 = try send(k)
            #expect(r1.status == 201 && r1.bodyText == "run-\(k)-1", "round \(round): \(r1.head) \(r1.bodyText)")
            completed[k] = r1.bodyText
            // replay of it and of an older key
            let r2 = try send(k)
            #expect(r2.status == 201 && r2.bodyText == "run-\(k)-1" && r2.value("idempotent-replayed") == "true", "round \(round) replay: \(r2.head)")
            #expect(r2.value("x-run") == "1" && r2.value("x-run2") == nil)
            if round > 0 {
                let old = "s\(round - 1)"
                let r3 = try send(old)
                #expect(r3.bodyText == completed[old], "round \(round): replay of \(old) was \(r3.bodyText)")
            }
            // mismatch: same key, other body / other path
            let r4 = try send(k, "/ok", "{\"x\":\(round)}")
            #expect(r4.status == 422, "round \(round) mismatch body: \(r4.status)")
            let r5 = try send(k, "/other")
            #expect(r5.status == 422, "round \(round) mismatch path: \(r5.status)")
            // released: 503 then the retry runs again
            let b = "b\(round)"
            let r6 = try send(b, "/busy")
            #expect(r6.status == 503 && r6.bodyText == "run-\(b)-1")
            let r7 = try send(b, "/busy")
            #expect(r7.status == 503 && r7.bodyText == "run-\(b)-2", "round \(round): 503 not released? \(r7.bodyText)")
            let r7b = try send(b, "/limited")
            #expect(r7b.status == 422 || r7b.status == 429, "\(r7b.status)")
            // in flight on another connection
            let slowKey = "w\(round)"
            let other = try proxy.client(timeoutSeconds: 15)
            try other.send(Self.request(slowKey, path: "/slow"))
            // give the proxy time to claim
            Thread.sleep(forTimeInterval: 0.2)
            let r8 = try send(slowKey, "/slow")
            if concurrentWait {
                #expect(r8.status == 201 && r8.bodyText == "run-\(slowKey)-1" && r8.value("idempotent-replayed") == "true",
                        "round \(round) waiter: \(r8.status) \(r8.bodyText)")
            } else {
                #expect(r8.status == 409, "round \(round) in flight: \(r8.status)")
            }
            // mismatch against in-flight / just-finished
            let r9 = try send(slowKey, "/slow", "{\"y\":1}")
            #expect(r9.status == 422 || (!concurrentWait && r9.status == 409), "round \(round) mismatch in flight: \(r9.status)")
            let o = try other.readResponse(requestMethod: "POST")
            #expect(o.status == 201 && o.bodyText == "run-\(slowKey)-1")
            completed[slowKey] = o.bodyText
            let r10 = try send(slowKey, "/slow")
            #expect(r10.bodyText == "run-\(slowKey)-1" && r10.value("idempotent-replayed") == "true", "round \(round): \(r10.bodyText)")
        }
        // every completed key executed exactly once
        let counts = runs.counts.withLock { $0 }
        for key in completed.keys { #expect(counts[key] == 1, "\(key) ran \(counts[key] ?? 0) times") }
    }

    @Test func oneKeepAliveConnectionRejectMode() throws { try runSession(concurrentWait: false) }
    @Test func oneKeepAliveConnectionWaitMode() throws { try runSession(concurrentWait: true) }

    /// Pipelined on one connection: replay, new key, mismatch, replay — sent at once.
    @Test func pipelinedMix() throws {
        let runs = Runs()
        let upstream = Self.sessionUpstream(runs)
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send(Self.request("pa"))
        _ = try client.readResponse(requestMethod: "POST")
        var batch = ""
        for i in 0..<20 {
            batch += Self.request("pa")
            batch += Self.request("pn\(i)")
            batch += Self.request("pa", body: "{\"m\":\(i)}")
            batch += Self.request("pn\(i)")
        }
        try client.send(batch)
        for i in 0..<20 {
            let a = try client.readResponse(requestMethod: "POST")
            let n = try client.readResponse(requestMethod: "POST")
            let m = try client.readResponse(requestMethod: "POST")
            let n2 = try client.readResponse(requestMethod: "POST")
            #expect(a.bodyText == "run-pa-1" && a.value("idempotent-replayed") == "true", "pipelined \(i): \(a.bodyText)")
            #expect(n.bodyText == "run-pn\(i)-1" && n.value("idempotent-replayed") == nil, "pipelined \(i): \(n.bodyText)")
            #expect(m.status == 422, "pipelined \(i): \(m.status)")
            #expect(n2.bodyText == "run-pn\(i)-1" && n2.value("idempotent-replayed") == "true", "pipelined \(i): \(n2.bodyText)")
        }
        let counts = runs.counts.withLock { $0 }
        #expect(counts.values.allSatisfy { $0 == 1 }, "\(counts)")
    }
}

/// RESP framing of numbers and arguments at their edges, against an independent encoder.
@Suite struct RedisCommandFramingTests {
    static func resp(_ args: [[UInt8]]) -> [UInt8] {
        var out = Array("*\(args.count)\r\n".utf8)
        for a in args { out += Array("$\(a.count)\r\n".utf8) + a + [13, 10] }
        return out
    }

    @Test(arguments: [UInt64(0), 1, 9, 10, 11, 99, 100, 101, 999, 1_000, 1_024, 65_535, 1_000_000, 4_294_967_295, 4_294_967_296,
                      999_999_999_999_999_999, 1_000_000_000_000_000_000, 9_999_999_999_999_999_999, 10_000_000_000_000_000_000, UInt64.max, UInt64.max - 1])
    func numbersAreExactDecimal(number: UInt64) {
        var command = RedisCommand(argumentCount: 3, capacity: 4)
        command.append("SET")
        command.append(number)
        command.append(number)
        #expect(command.isComplete)
        let digits = Array(String(number).utf8)
        #expect(command.bytes == Self.resp([Array("SET".utf8), digits, digits]), "\(String(decoding: command.bytes, as: UTF8.self))")
    }

    @Test(arguments: [0, 1, 9, 10, 11, 99, 100, 1_000, 10_000, 100_000])
    func argumentLengthsAndCounts(length: Int) {
        let argument = [UInt8](repeating: 0x0D, count: length)
        let count = length % 23 + 1
        var command = RedisCommand(argumentCount: count, capacity: 0)
        for _ in 0..<count { command.append(argument) }
        #expect(command.isComplete)
        #expect(command.bytes == Self.resp(Array(repeating: argument, count: count)))
    }

    @Test func largeArgumentCounts() {
        for count in [9, 10, 11, 99, 100, 101, 1_000, 12_345] {
            var command = RedisCommand(argumentCount: count)
            for i in 0..<count { command.append(UInt64(i)) }
            #expect(command.bytes == Self.resp((0..<count).map { Array(String($0).utf8) }))
        }
    }
}
