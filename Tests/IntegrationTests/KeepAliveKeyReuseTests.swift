import Foundation
import Glibc
import Idempotency
import Synchronization
import Testing
import TestSupport

/// One keep-alive connection, so its `GuardedExchange` (and the storage-key buffer it keeps)
/// serves request after request: new keys, replays, the same key scoped and unscoped, under two
/// callers, on another path (422), refused before the key is known (missing scope, empty key),
/// purged through the admin API, expired by the store's clock, and in flight on a second
/// connection (409, then replayed). Every response is checked against a model, every replay
/// against the original byte for byte, and every access-log line's key hash.
@Suite(.serialized) struct KeepAliveKeyReuseTests {
    static let routes = """
        idempotency: { ttl: 1h, lease: 30s }
        routes:
          - match: { path_prefix: /open }
            scope: { header: "" }

        """

    struct Identity: Hashable {
        var scope: String?  // nil: an unscoped route
        var key: String
    }

    struct Original {
        var path: String
        var body: String
        var response: TestClient.Response
    }

    static func lower(_ b: [UInt8]) -> String { String(decoding: b.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }, as: UTF8.self) }

    static func fields(_ r: TestClient.Response) -> [String] {
        let own: Set<String> = ["connection", "idempotent-replayed", "content-length"]
        return TestClient.Response.fieldLines(r.headBytes)
            .filter { !own.contains(lower($0.name)) }
            .map { String(decoding: $0.name + [58] + $0.value, as: UTF8.self) }
    }

    static func request(path: String, key: String?, scope: String?, body: String) -> String {
        var text = "POST \(path) HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
        if let key { text += "Idempotency-Key: \"\(key)\"\r\n" }
        if let scope { text += "Authorization: \(scope)\r\n" }
        return text + "\r\n" + body
    }

    static func form(_ s: String) -> String { s.replacingOccurrences(of: " ", with: "+") }

    /// Everything the proxy wrote to the access-log pipe (read once it has stopped).
    static func drain(_ fd: Int32) -> [String] {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            all += buffer[0..<n]
        }
        return String(decoding: all, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test(arguments: [1, 2, 3])
    func oneConnectionManyKeys(seed: Int) throws {
        var seeded = UInt64(seed)
        func next(_ n: Int) -> Int {
            seeded = seeded &* 6364136223846793005 &+ 1442695040888963407
            return Int(seeded >> 33) % n
        }
        let clock = ManualClock()
        let store = MemoryStore(clock: { clock.nowMillis })
        let executions = Atomic<Int>(0)
        let upstream = TestUpstream { request in
            let n = executions.add(1, ordering: .relaxed).newValue
            let body = Array("{\"run\":\(n),\"target\":\"\(request.target)\",\"seen\":\(request.body.count)}".utf8)
            if request.target.hasPrefix("/v1/slow") || request.target.hasPrefix("/open/slow") {
                return .delayed(seconds: 1.0, status: 202, body: body)
            }
            return .respond(status: [200, 201, 202, 203, 207][n % 5], headers: [("X-Run", "\(n)"), ("X-Target", request.target)], body: body)
        }
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: Self.routes, memoryStore: store, accessLogFD: fds[1])
        var stopped = false
        defer { if !stopped { proxy.stop() } }
        let c = try proxy.client(timeoutSeconds: 15)

        var model: [Identity: Original] = [:]
        var expectedLog: [String] = []  // "outcome key_hash" per proxied request
        let keys = (0..<5).map { "seq-\(seed)-\($0)-\(UInt32.random(in: 0...UInt32.max))" }
        let scopes: [String?] = ["Bearer caller-1", "Bearer caller-2", nil]
        func hash(_ id: Identity) -> String {
            String(StorageKey.digestHex(scope: id.scope.map { Array($0.utf8) }, key: id.key).prefix(keyHashLength))
        }

        /// Sends one guarded request on `client` and checks it against the model.
        func guarded(_ client: TestClient, _ id: Identity, path: String, body: String, step: String) throws -> TestClient.Response {
            try client.send(Self.request(path: path, key: id.key, scope: id.scope, body: body))
            let r = try client.readResponse(requestMethod: "POST")
            if let original = model[id] {
                if original.path == path && original.body == body {
                    #expect(r.value("idempotent-replayed") == "true" && r.values("idempotent-replayed").count == 1, "\(step): not a replay: \(r.head)")
                    #expect(r.status == original.response.status, "\(step): status \(r.status) vs \(original.response.status)")
                    #expect(r.body == original.response.body, "\(step): body \(r.bodyText) vs \(original.response.bodyText)")
                    #expect(Self.fields(r) == Self.fields(original.response), "\(step): fields \(Self.fields(r)) vs \(Self.fields(original.response))")
                    #expect(r.values("content-length") == ["\(original.response.body.count)"], "\(step)")
                    expectedLog.append("replayed \(hash(id))")
                } else {
                    #expect(r.status == 422 && r.bodyText.contains("key-reused"), "\(step): \(r.status) \(r.bodyText)")
                    expectedLog.append("mismatch \(hash(id))")
                }
            } else {
                #expect(r.value("idempotent-replayed") == nil, "\(step): a new key was replayed: \(r.bodyText)")
                #expect(r.bodyText.contains("\"target\":\"\(path)\""), "\(step): \(r.bodyText)")
                model[id] = Original(path: path, body: body, response: r)
                expectedLog.append("forwarded \(hash(id))")
            }
            return r
        }

        for step in 0..<110 {
            let key = keys[next(keys.count)]
            let scope = scopes[next(scopes.count)]
            let id = Identity(scope: scope, key: key)
            let base = scope == nil ? "/open/a" : "/v1/payments"
            let path = next(10) == 0 ? base + "/other" : base
            let body = next(8) == 0 ? "{\"amount\":\(next(3))}" : "{\"amount\":100}"
            switch next(100) {
            case 0..<70:
                _ = try guarded(c, id, path: path, body: body, step: "#\(step)")
            case 70..<76:
                // Refused before its storage key is known: no key hash may be logged for it.
                try c.send(Self.request(path: "/v1/payments", key: key, scope: nil, body: body))
                let r = try c.readResponse(requestMethod: "POST")
                #expect(r.status == 400 && r.bodyText.contains("missing-scope"), "#\(step): \(r.status) \(r.bodyText)")
                expectedLog.append("missing_scope -")
            case 76..<80:
                // An empty key (no body, so the connection stays open), or no key at all
                // (forwarded unguarded): neither has a key hash.
                if next(2) == 0 {
                    try c.send(Self.request(path: scope == nil ? "/open/a" : "/v1/payments", key: "", scope: scope, body: ""))
                    let r = try c.readResponse(requestMethod: "POST")
                    #expect(r.status == 400 && r.bodyText.contains("invalid-key"), "#\(step): \(r.status) \(r.bodyText)")
                    expectedLog.append("invalid_key -")
                } else {
                    try c.send(Self.request(path: scope == nil ? "/open/a" : "/v1/payments", key: nil, scope: scope, body: body))
                    let r = try c.readResponse(requestMethod: "POST")
                    #expect(r.value("idempotent-replayed") == nil && r.bodyText.contains("\"run\":"), "#\(step): \(r.status) \(r.bodyText)")
                    expectedLog.append("no_key -")
                    expectedLog.append("unguarded-execution")
                }
            case 80..<88:
                // Purged between two requests of this connection.
                var target = "/records?key=\(key)"
                if let scope { target += "&scope=\(Self.form(scope))" }
                let purged = try proxy.admin("DELETE", target)
                #expect(purged.status == (model[id] != nil ? 204 : 404), "#\(step) purge: \(purged.status) \(purged.bodyText)")
                model[id] = nil
            case 88..<92:
                // Every record expires (ttl 1h); the next request of each key runs again.
                clock.advance(millis: 3_600_000 + 60_000)
                model.removeAll()
            default:
                // In flight on a second connection: 409 here, then a replay of its response.
                let fresh = Identity(scope: scope, key: "slow-\(step)-\(UInt32.random(in: 0...UInt32.max))")
                let slowPath = scope == nil ? "/open/slow" : "/v1/slow"
                let d = try proxy.client(timeoutSeconds: 15)
                try d.send(Self.request(path: slowPath, key: fresh.key, scope: fresh.scope, body: body))
                usleep(250_000)
                try c.send(Self.request(path: slowPath, key: fresh.key, scope: fresh.scope, body: body))
                let conflict = try c.readResponse(requestMethod: "POST")
                #expect(conflict.status == 409 && conflict.bodyText.contains("in-flight"), "#\(step): \(conflict.status) \(conflict.bodyText)")
                #expect(conflict.value("idempotent-replayed") == nil)
                expectedLog.append("in_flight \(hash(fresh))")
                let original = try d.readResponse(requestMethod: "POST")
                #expect(original.status == 202 && original.value("idempotent-replayed") == nil, "#\(step): \(original.head)")
                model[fresh] = Original(path: slowPath, body: body, response: original)
                expectedLog.append("forwarded \(hash(fresh))")
                _ = try guarded(c, fresh, path: slowPath, body: body, step: "#\(step) after in-flight")
            }
        }
        // Each key as each caller, one last time: what the model holds is what the store holds.
        for key in keys {
            for scope in scopes {
                let id = Identity(scope: scope, key: key)
                let original = model[id]
                _ = try guarded(c, id, path: original?.path ?? (scope == nil ? "/open/a" : "/v1/payments"), body: original?.body ?? "{}", step: "final \(key) \(scope ?? "-")")
            }
        }
        proxy.stop()
        stopped = true
        let lines = Self.drain(fds[0])
        var logged: [String] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            logged.append("\(object["outcome"] as? String ?? "?") \(object["key_hash"] as? String ?? "-")")
        }
        let expectedLines = expectedLog.filter { $0 != "unguarded-execution" }
        for outcome in ["forwarded", "replayed", "mismatch", "missing_scope", "in_flight"] {
            #expect(expectedLines.contains { $0.hasPrefix(outcome + " ") }, "no \(outcome) in this run")
        }
        #expect(logged.count > 100)
        #expect(logged.sorted() == expectedLines.sorted(), "access log differs:\n\(Set(logged).symmetricDifference(Set(expectedLines)))")
        #expect(executions.load(ordering: .relaxed) == expectedLog.filter { $0.hasPrefix("forwarded") || $0 == "unguarded-execution" }.count)
    }
}

/// `AccessLog.keyHashLength`.
private let keyHashLength = 16
