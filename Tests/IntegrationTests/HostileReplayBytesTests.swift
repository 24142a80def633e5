import Foundation
import Synchronization
import Testing
import TestSupport

/// Adversarial checks of the one-buffer `StoredResponse` replay paths (keep-alive, close,
/// HTTP/1.0 keep-alive), per-connection buffer reuse, `max_stored_body` edges, escaped keys and
/// races across two workers. Every replay is compared byte for byte with the others and field
/// for field with what the original client received.
@Suite(.serialized) struct HostileReplayBytesTests {
    static func post(_ key: String, path: String = "/p", body: String = "{}", version: String = "1.1", extra: String = "") -> String {
        "POST \(path) HTTP/\(version)\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\n\(extra)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    static func lower(_ b: [UInt8]) -> String {
        String(decoding: b.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    static func fields(_ head: [UInt8]) -> [([UInt8], [UInt8])] {
        TestClient.Response.fieldLines(head).map { ($0.name, $0.value) }
    }

    /// The head's lines without the named fields (raw lines, CRLF-split).
    static func lines(_ head: [UInt8], without names: Set<String>) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var start = 0
        var i = 0
        while i + 1 < head.count {
            if head[i] == 13 && head[i + 1] == 10 {
                let line = Array(head[start..<i])
                let name = line.firstIndex(of: UInt8(ascii: ":")).map { lower(Array(line[..<$0])) }
                if name == nil || !names.contains(name!) { out.append(line) }
                start = i + 2
                i += 2
            } else {
                i += 1
            }
        }
        return out
    }

    static func same(_ a: [([UInt8], [UInt8])], _ b: [([UInt8], [UInt8])]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    static func show(_ pairs: [([UInt8], [UInt8])]) -> String {
        pairs.map { "\(String(decoding: $0.0, as: UTF8.self)): \(Array($0.1))" }.joined(separator: " | ")
    }

    /// A hostile 201 head: >64 fields, obs-text, empty values, duplicates, Set-Cookie, an
    /// upstream Idempotent-Replayed and a duplicated Content-Length, a field named `Close` that
    /// `Connection: close` removes, a field named by another Connection token.
    static func hostileHead(bodyCount: Int) -> [UInt8] {
        var head = Array("HTTP/1.1 201 Made\r\n".utf8)
        func add(_ name: String, _ value: [UInt8]) { head += Array(name.utf8) + Array(": ".utf8) + value + [13, 10] }
        for i in 0..<80 {
            switch i {
            case 3: add("X-Empty", [])
            case 5: add("Close", Array("gone".utf8))
            case 7: add("X-Obs", [0x80, 0xFF, 0x09, 0xC3, 0xA9, 0x7E])
            case 9: add("x-dup", Array("one".utf8))
            case 10: add("X-DUP", Array("two".utf8))
            case 20: add("Set-Cookie", Array("s=1; Path=/".utf8))
            case 30: add("Idempotent-Replayed", Array("false".utf8))
            case 40: add("Connection", Array("close, x-named".utf8))
            case 41: add("X-Named", Array("hop".utf8))
            case 63: add("Content-Length", Array("\(bodyCount)".utf8))
            case 70: add("X-Long", Array(String(repeating: "L", count: 3000).utf8))
            default: add("X-F\(i)", Array("v\(i) with  spaces, and \"quotes\"".utf8))
            }
        }
        return head + [13, 10]
    }

    // MARK: 1. every replay form carries the same bytes

    @Test(arguments: StoreKind.allCases)
    func everyReplayFormCarriesTheSameBytes(store: StoreKind) throws {
        let body = Array("{\"id\":1,\"pad\":\"".utf8) + [UInt8](repeating: 0x61, count: 700) + Array("\"}".utf8)
        let upstream = TestUpstream { _ in .raw(Self.hostileHead(bodyCount: body.count) + body) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml() + "limits: { max_headers: 500 }\n")
        defer { proxy.stop() }
        let original = try proxy.request(Self.post("forms-\(store)"))
        #expect(original.status == 201 && original.body == body, "original: \(original.head) \(original.bodyText.prefix(300))")
        // The client's copy: `Close` (named by `close`) and X-Named are gone, as are framing fields.
        let originalFields = Self.fields(original.headBytes)
        #expect(!originalFields.contains { Self.lower($0.0) == "close" }, "original carried Close")
        #expect(!originalFields.contains { Self.lower($0.0) == "x-named" })

        // (a) HTTP/1.1 keep-alive
        let keepAlive = try proxy.request(Self.post("forms-\(store)"))
        // (b) HTTP/1.1 Connection: close
        let c11 = try proxy.client()
        try c11.send(Self.post("forms-\(store)", extra: "Connection: close\r\n"))
        let close11 = try c11.readResponse(requestMethod: "POST")
        #expect(c11.isClosedByPeer(), "HTTP/1.1 close replay left the connection open")
        // (c) HTTP/1.0, no keep-alive
        let c10 = try proxy.client()
        try c10.send(Self.post("forms-\(store)", version: "1.0"))
        let close10 = try c10.readResponse(requestMethod: "POST")
        #expect(c10.isClosedByPeer(), "HTTP/1.0 replay left the connection open")
        // (d) HTTP/1.0 keep-alive, twice on one connection
        let k10 = try proxy.client()
        try k10.send(Self.post("forms-\(store)", version: "1.0", extra: "Connection: keep-alive\r\n"))
        let keep10a = try k10.readResponse(requestMethod: "POST")
        try k10.send(Self.post("forms-\(store)", version: "1.0", extra: "Connection: keep-alive\r\n"))
        let keep10b = try k10.readResponse(requestMethod: "POST")

        #expect(upstream.requests.count == 1)
        for (name, r) in [("keep-alive", keepAlive), ("1.1 close", close11), ("1.0 close", close10), ("1.0 keep-alive", keep10a), ("1.0 keep-alive 2", keep10b)] {
            #expect(r.status == 201, "\(name): \(r.status)")
            #expect(r.value("idempotent-replayed") == "true" && r.values("idempotent-replayed").count == 1, "\(name): \(r.head)")
            #expect(r.values("content-length") == ["\(body.count)"], "\(name): \(r.values("content-length"))")
            #expect(r.body == body, "\(name): body differs (\(r.body.count) bytes)")
            // Byte for byte the keep-alive replay, less the Connection line.
            #expect(Self.lines(r.headBytes, without: ["connection"]) == Self.lines(keepAlive.headBytes, without: ["connection"]), "\(name) head differs:\n\(r.head)\n---\n\(keepAlive.head)")
        }
        #expect(close11.value("connection") == "close" && close10.value("connection") == "close")
        #expect(keep10a.value("connection")?.lowercased() == "keep-alive" && keep10b.value("connection")?.lowercased() == "keep-alive")
        #expect(keepAlive.value("connection") == nil)
        // What the original client received, less Set-Cookie and what the proxy adds itself.
        let proxyOwn: Set<String> = ["set-cookie", "content-length", "connection", "idempotent-replayed"]
        let want = originalFields.filter { !proxyOwn.contains(Self.lower($0.0)) }
        let got = Self.fields(keepAlive.headBytes).filter { !proxyOwn.contains(Self.lower($0.0)) }
        #expect(Self.same(got, want), "replayed:\n\(Self.show(got))\nexpected:\n\(Self.show(want))")
    }

    // MARK: 2. max_stored_body edges with a chunked body captured in pieces

    @Test(arguments: StoreKind.allCases)
    func storedBodyAtTheLimit(store: StoreKind) throws {
        let limit = 1024
        let upstream = TestUpstream { request in
            let n = Int(request.target.dropFirst(3)) ?? 0  // "/n/<count>"
            let body = (0..<n).map { UInt8(0x21 + $0 % 90) }
            let pieces = stride(from: 0, to: n, by: 7).map { Array(body[$0..<min($0 + 7, n)]) }
            return .chunked(status: 200, pieces: pieces)
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml() + "idempotency: { max_stored_body: 1KiB }\n")
        defer { proxy.stop() }
        for n in [0, limit - 1, limit, limit + 1, limit + 7] {
            let key = "lim-\(store)-\(n)"
            let first = try proxy.request(Self.post(key, path: "/n/\(n)"))
            #expect(first.status == 200 && first.body.count == n, "n=\(n): original \(first.status) \(first.body.count)")
            let again = try proxy.request(Self.post(key, path: "/n/\(n)"))
            if n <= limit {
                #expect(again.status == 200 && again.value("idempotent-replayed") == "true" && again.body == first.body,
                        "n=\(n): replay \(again.status) \(again.body.count) bytes")
                #expect(again.value("transfer-encoding") == nil && again.values("content-length") == ["\(n)"])
            } else {
                #expect(again.status == 409 && again.bodyText.contains("replay-unavailable"), "n=\(n): \(again.status) \(again.bodyText)")
            }
        }
        #expect(upstream.requests.count == 5)
    }

    // MARK: 3. per-connection buffer reuse: pipelined keys, large then small responses

    @Test(arguments: StoreKind.allCases)
    func pipelinedLargeThenSmallResponsesLeakNothing(store: StoreKind) throws {
        let runs = Mutex<[String: Int]>([:])
        let upstream = TestUpstream { request in
            let key = request.values("idempotency-key").first ?? "-"
            let n = runs.withLock { $0[key, default: 0] += 1; return $0[key]! }
            switch request.target {
            case "/big":
                // > 4 KiB of field lines and body (past keptResponseCapacity, under 16 KiB).
                var headers: [(String, String)] = []
                for i in 0..<70 { headers.append(("X-Big\(i)", String(repeating: "b", count: 90) + "\(i)")) }
                return .respond(status: 201, headers: headers, body: Array(String(repeating: "B", count: 9000).utf8) + Array("\(key)-\(n)".utf8))
            case "/none":
                return .raw(Array("HTTP/1.1 204 No Content\r\nX-None: \(key)\r\n\r\n".utf8))
            default:
                return .respond(status: 200, headers: [("X-Small", key)], body: Array("\(key)-\(n)".utf8))
            }
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml())
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 15)
        let plan: [(String, String)] = [("big1", "/big"), ("s1", "/small"), ("n1", "/none"), ("big2", "/big"), ("s2", "/small"),
                                        ("s1", "/small"), ("big1", "/big"), ("n1", "/none"), ("s3", "/small"), ("big2", "/big"), ("s2", "/small")]
        var batch = ""
        for (key, path) in plan { batch += Self.post("\(store)-\(key)", path: path) }
        try client.send(batch)
        var firstSeen: [String: TestClient.Response] = [:]
        for (index, (key, path)) in plan.enumerated() {
            let r = try client.readResponse(requestMethod: "POST")
            let k = "\(store)-\(key)"
            if let original = firstSeen[k] {
                #expect(r.value("idempotent-replayed") == "true", "#\(index) \(key): not a replay")
                #expect(r.status == original.status && r.body == original.body, "#\(index) \(key): replay differs")
                let proxyOwn: Set<String> = ["content-length", "connection", "idempotent-replayed"]
                let want = Self.fields(original.headBytes).filter { !proxyOwn.contains(Self.lower($0.0)) }
                let got = Self.fields(r.headBytes).filter { !proxyOwn.contains(Self.lower($0.0)) }
                #expect(Self.same(got, want), "#\(index) \(key): replayed \(Self.show(got).prefix(300)) expected \(Self.show(want).prefix(300))")
            } else {
                #expect(r.value("idempotent-replayed") == nil, "#\(index) \(key): fresh key replayed")
                firstSeen[k] = r
                switch path {
                case "/big": #expect(r.status == 201 && r.values("x-big69").count == 1 && r.bodyText.hasSuffix("\(k)-1"))
                case "/none": #expect(r.status == 204 && r.value("x-none") == k && r.value("x-small") == nil)
                default: #expect(r.status == 200 && r.value("x-small") == k && r.value("x-big0") == nil && r.bodyText == "\(k)-1", "#\(index): \(r.head)")
                }
            }
        }
        #expect(runs.withLock { $0 }.values.allSatisfy { $0 == 1 }, "\(runs.withLock { $0 })")
    }

    // MARK: 4. upstream reset mid-body, then the same connection's neighbours

    @Test(arguments: StoreKind.allCases)
    func upstreamResetMidBodyIsNeverReplayedAsComplete(store: StoreKind) throws {
        let runs = Mutex<Int>(0)
        let upstream = TestUpstream { request in
            if request.target == "/reset" {
                runs.withLock { $0 += 1 }
                return .sequence([Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-R: 1\r\n\r\n".utf8) + [UInt8](repeating: 0x7A, count: 40)],
                                 gapSeconds: 0, ending: .reset)
            }
            return .respond(status: 201, headers: [("X-K", "k")], body: Array("fine".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml())
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send(Self.post("\(store)-before"))
        let before = try client.readResponse(requestMethod: "POST")
        #expect(before.status == 201)
        try client.send(Self.post("\(store)-cut", path: "/reset"))
        // The client sees a truncated message (the connection is cut), never a wrong one.
        var cutFailed = false
        do { _ = try client.readResponse(requestMethod: "POST") } catch { cutFailed = true }
        #expect(cutFailed, "a body cut short upstream was delivered as complete")
        for _ in 0..<2 {
            let retry = try proxy.request(Self.post("\(store)-cut", path: "/reset"))
            #expect(retry.status != 200 && retry.value("idempotent-replayed") == nil, "retry of a cut response: \(retry.status) \(retry.bodyText)")
        }
        #expect(runs.withLock { $0 } == 1, "cut key ran \(runs.withLock { $0 }) times")
        let again = try proxy.request(Self.post("\(store)-before"))
        #expect(again.value("idempotent-replayed") == "true" && again.bodyText == "fine" && again.value("x-r") == nil)
    }

    // MARK: 5. HTTP/1.0 guarded request without Host

    @Test func http10GuardedRequestWithoutHost() throws {
        let upstream = TestUpstream { _ in .respond(status: 201, headers: [("X-A", "1")], body: Array("made".utf8)) }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let raw = "POST /p HTTP/1.0\r\nAuthorization: Bearer t\r\nIdempotency-Key: h10\r\nContent-Length: 2\r\n\r\n{}"
        let c1 = try proxy.client()
        try c1.send(raw)
        let first = try c1.readResponse(requestMethod: "POST")
        #expect(first.status == 201 && first.bodyText == "made")
        let c2 = try proxy.client()
        try c2.send(raw)
        let replay = try c2.readResponse(requestMethod: "POST")
        #expect(replay.status == 201 && replay.value("idempotent-replayed") == "true" && replay.bodyText == "made")
        #expect(c2.isClosedByPeer())
        #expect(upstream.requests.count == 1)
        #expect(upstream.requests.first?.values("host") == ["127.0.0.1:\(upstream.port)"], "\(upstream.requests.first?.head ?? "")")
    }

    // MARK: 6. escaped keys through the kept key buffer

    @Test func escapedKeysNameTheirOwnRecords() throws {
        let runs = Mutex<[String: Int]>([:])
        let upstream = TestUpstream { request in
            let key = request.values("idempotency-key").first ?? "-"
            let n = runs.withLock { $0[key, default: 0] += 1; return $0[key]! }
            return .respond(status: 201, headers: [], body: Array("\(key)#\(n)".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client()
        // Long escaped key, then shorter ones on the same connection: no byte of one may
        // survive into the next in the connection's key buffer.
        let long = "\"" + String(repeating: "k\\\\", count: 60) + "x\\\"y\""
        let keys = [long, "\"k\\\\\"", "\"k\\\"\"", "\"k\"", "\"kk\"", long, "\"k\\\\\"", "\"k\"", "\"k\\\"\""]
        var bodies: [String: String] = [:]
        for key in keys {
            try client.send(Self.post(key))
            let r = try client.readResponse(requestMethod: "POST")
            #expect(r.status == 201, "\(key): \(r.status) \(r.bodyText)")
            if let seen = bodies[key] {
                #expect(r.bodyText == seen && r.value("idempotent-replayed") == "true", "\(key): \(r.bodyText) vs \(seen)")
            } else {
                #expect(r.value("idempotent-replayed") == nil && r.bodyText.hasSuffix("#1"), "\(key) was answered as another key: \(r.bodyText)")
                bodies[key] = r.bodyText
            }
        }
        #expect(Set(bodies.values).count == 5)
        #expect(runs.withLock { $0 }.values.allSatisfy { $0 == 1 })
    }

    // MARK: 7. two workers racing on one key, wait mode: one execution, identical replays

    @Test(arguments: StoreKind.allCases)
    func twoWorkersRacingOnOneKeyReplayIdenticalBytes(store: StoreKind) throws {
        let runs = Mutex<Int>(0)
        let upstream = TestUpstream { _ in
            let n = runs.withLock { $0 += 1; return $0 }
            return .delayed(seconds: 0.4, status: 201, body: Array("run-\(n)".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml() + "idempotency: { concurrent: wait, wait_timeout: 10s }\n", workers: 2)
        defer { proxy.stop() }
        let count = 12
        let results = Mutex<[TestClient.Response?]>(Array(repeating: nil, count: count))
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                let r = try? proxy.request(Self.post("race-\(store)"))
                results.withLock { $0[i] = r }
            }
        }
        #expect(group.wait(timeout: .now() + 30) == .success)
        let all = results.withLock { $0 }.compactMap { $0 }
        #expect(all.count == count)
        #expect(runs.withLock { $0 } == 1)
        let replays = all.filter { $0.value("idempotent-replayed") == "true" }
        #expect(replays.count == count - 1, "\(all.map { "\($0.status) \($0.value("idempotent-replayed") ?? "-")" })")
        for r in all { #expect(r.status == 201 && r.bodyText == "run-1") }
        if let first = replays.first {
            for r in replays { #expect(r.headBytes == first.headBytes && r.body == first.body) }
        }
        // And after the race, a late retry is the same bytes again.
        let late = try proxy.request(Self.post("race-\(store)"))
        if let first = replays.first { #expect(late.headBytes == first.headBytes) }
    }

    // MARK: 8. a request naming `close` loses its own `Close` field, keeps its key

    @Test func requestConnectionCloseNamesCloseButNeverTheKey() throws {
        let upstream = TestUpstream { _ in .respond(status: 201, headers: [], body: Array("ok".utf8)) }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let raw = "POST /p HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nClose: c\r\nIdempotency-Key: cl1\r\nConnection: close, idempotency-key, authorization\r\nContent-Length: 2\r\n\r\n{}"
        let first = try proxy.request(raw)
        #expect(first.status == 201)
        let second = try proxy.request(raw)
        #expect(second.value("idempotent-replayed") == "true", "\(second.status) \(second.bodyText)")
        #expect(upstream.requests.count == 1)
        let forwarded = upstream.requests.first
        #expect(forwarded?.values("close").isEmpty == true, "Close was forwarded: \(forwarded?.head ?? "")")
        #expect(forwarded?.values("idempotency-key") == ["cl1"], "\(forwarded?.head ?? "")")
    }
}
