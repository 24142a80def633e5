import Foundation
import Glibc
import Testing
import Idempotency
import TestSupport

/// The admin endpoint (SPEC §8) and the access log, over real sockets.
@Suite(.serialized) struct AdminAndLoggingTests {
    func admin(_ proxy: ProxyHarness, _ path: String) throws -> TestClient.Response {
        let client = try TestClient(port: try #require(proxy.server.adminPort))
        try client.send("GET \(path) HTTP/1.1\r\nHost: admin\r\n\r\n")
        return try client.readResponse()
    }

    @Test func healthAndReadinessWithAReachableUpstream() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        #expect(try admin(proxy, "/healthz").status == 200)
        let ready = try admin(proxy, "/readyz")
        #expect(ready.status == 200)
        #expect(ready.bodyText.contains("\"status\":\"ready\""))
        #expect(try admin(proxy, "/nope").status == 404)
    }

    @Test func readinessFailsAfterTheUpstreamRefusedAConnection() throws {
        let probe = TestUpstream()
        let port = probe.port
        probe.stop()
        let proxy = try ProxyHarness(upstreamPort: port)
        defer { proxy.stop() }
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET").status == 502)
        let ready = try admin(proxy, "/readyz")
        #expect(ready.status == 503)
        #expect(ready.bodyText.contains("upstream"))
        // The upstream comes back while no traffic arrives (a pod out of rotation): the
        // proxy's own probe must make it ready again.
        let revived = TestUpstream(port: port)
        defer { revived.stop() }
        var recovered = false
        for _ in 0..<30 where !recovered {
            usleep(100_000)
            recovered = try admin(proxy, "/readyz").status == 200
        }
        #expect(recovered)
    }

    @Test func metricsCountOutcomesAndObserveLatencies() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        for _ in 0..<3 { _ = try proxy.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET") }
        let key = "k\(UInt32.random(in: 0...UInt32.max))"
        for _ in 0..<2 {
            _ = try proxy.request("POST /p HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}")
        }
        let metrics = try admin(proxy, "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.value("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = metrics.bodyText
        #expect(text.contains("idemproxy_requests_total{outcome=\"unguarded\"} 3\n"))
        #expect(text.contains("idemproxy_requests_total{outcome=\"forwarded\"} 1\n"))
        #expect(text.contains("idemproxy_requests_total{outcome=\"replayed\"} 1\n"))
        #expect(text.contains("idemproxy_upstream_duration_seconds_count 4\n"))
        #expect(text.contains("idemproxy_store_duration_seconds_count{operation=\"claim\"} 2\n"))
        #expect(text.contains("# TYPE idemproxy_upstream_duration_seconds histogram"))
        // Whole-request latency by outcome (SPEC §8).
        #expect(text.contains("# TYPE idemproxy_request_duration_seconds histogram"))
        #expect(text.contains("idemproxy_request_duration_seconds_count{outcome=\"unguarded\"} 3\n"))
        #expect(text.contains("idemproxy_request_duration_seconds_count{outcome=\"forwarded\"} 1\n"))
        #expect(text.contains("idemproxy_request_duration_seconds_count{outcome=\"replayed\"} 1\n"))
        #expect(text.contains("idemproxy_request_duration_seconds_bucket{outcome=\"replayed\",le=\"+Inf\"} 1\n"))
        #expect(text.contains("idemproxy_request_duration_seconds_count{outcome=\"mismatch\"} 0\n"))
    }

    /// An operator sees how close the memory store is to 503 store-full: the scrape reports what
    /// the store itself counts, and the records it holds.
    @Test func metricsReportTheMemoryStoresFill() throws {
        let store = MemoryStore(maxBytes: 1 << 20)
        let proxy = try ProxyHarness(yaml: "store: { backend: memory, memory: { max_bytes: 1MiB } }\n", memoryStore: store)
        defer { proxy.stop() }
        func gauge(_ name: String) throws -> Int? {
            let text = try admin(proxy, "/metrics").bodyText
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + " ") }) else { return nil }
            return Int(line.dropFirst(name.count + 1))
        }
        #expect(try gauge("idemproxy_memory_store_records") == 0)
        #expect(try gauge("idemproxy_memory_store_bytes") == 0)
        #expect(try gauge("idemproxy_memory_store_max_bytes") == 1 << 20)
        for index in 0..<3 {
            let response = try proxy.request(
                "POST /p HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: fill-\(index)\r\nContent-Length: 2\r\n\r\n{}")
            #expect(response.status == 200)
        }
        #expect(try gauge("idemproxy_memory_store_records") == 3)
        let bytes = try gauge("idemproxy_memory_store_bytes")
        #expect(bytes == store.usedBytes && store.usedBytes > 3 * MemoryStore.recordOverhead)
    }

    /// Reads what the proxy wrote to the access-log pipe once it has stopped (and flushed).
    func accessLines(_ fd: Int32) -> [Substring] {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = read(fd, &buffer, buffer.count)
        return String(decoding: buffer[0..<max(count, 0)], as: UTF8.self).split(separator: "\n")
    }

    @Test func accessLogNamesAGuardedKeyOnlyByItsHash() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let proxy = try ProxyHarness(accessLogFD: fds[1])
        let key = "secret-key-\(UInt32.random(in: 0...UInt32.max))"
        for _ in 0..<2 {
            _ = try proxy.request("POST /p HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}")
        }
        proxy.stop()
        let lines = accessLines(fds[0])
        #expect(lines.count == 2)
        let expected = String(StorageKey.digestHex(scope: Array("Bearer t".utf8), key: key).prefix(16))
        for (line, outcome) in zip(lines, ["forwarded", "replayed"]) {
            #expect(!line.contains(key))
            #expect(!line.contains("Bearer"))
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["key_hash"] as? String == expected)
            #expect(object?["outcome"] as? String == outcome)
        }
    }

    /// A response that breaks after its head went out (the connection is cut, SPEC §4) still
    /// counts once, under its final outcome, with a latency sample and an access-log line.
    @Test func truncatedResponsesAreCountedOnceAndLogged() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let upstream = TestUpstream { _ in .partial(status: 200, declared: 100, sent: 10) }
        let proxy = try ProxyHarness(upstream: upstream, accessLogFD: fds[1])
        _ = try? proxy.request("POST /t HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: k-trunc\r\nContent-Length: 2\r\n\r\n{}")
        _ = try? proxy.request("GET /t HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
        usleep(100_000)
        let text = try admin(proxy, "/metrics").bodyText
        #expect(text.contains("idemproxy_requests_total{outcome=\"outcome_unknown\"} 1\n"))
        #expect(text.contains("idemproxy_requests_total{outcome=\"forwarded\"} 0\n"))
        #expect(text.contains("idemproxy_requests_total{outcome=\"unguarded\"} 1\n"))
        #expect(text.contains("idemproxy_request_duration_seconds_count{outcome=\"outcome_unknown\"} 1\n"))
        #expect(text.contains("idemproxy_request_duration_seconds_count{outcome=\"unguarded\"} 1\n"))
        proxy.stop()
        let lines = accessLines(fds[0])
        #expect(lines.count == 2)
        #expect(lines.contains { $0.contains("\"outcome\":\"outcome_unknown\"") && $0.contains("\"status\":200") })
        #expect(lines.contains { $0.contains("\"method\":\"GET\"") && $0.contains("\"outcome\":\"unguarded\"") })
    }

    /// A request refused before any outcome was decided (a malformed target, CONNECT) is in
    /// neither `idemproxy_requests_total` nor the duration histogram, so the two always agree;
    /// its access-log line says `-` rather than an outcome it never had.
    @Test func requestsRefusedBeforeAnOutcomeAreNeitherCountedNorTimed() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let proxy = try ProxyHarness(accessLogFD: fds[1])
        #expect(try proxy.request("GET /../bad HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET").status == 400)
        #expect(try proxy.request("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", method: "GET").status == 501)
        _ = try proxy.request("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
        let text = try admin(proxy, "/metrics").bodyText
        #expect(text.contains("idemproxy_requests_total{outcome=\"unguarded\"} 1\n"))
        #expect(text.contains("idemproxy_request_duration_seconds_count{outcome=\"unguarded\"} 1\n"))
        let counted = text.split(separator: "\n").filter { $0.hasPrefix("idemproxy_requests_total{") }.compactMap { Int($0.split(separator: " ").last!) }
        let timed = text.split(separator: "\n").filter { $0.hasPrefix("idemproxy_request_duration_seconds_count{") }.compactMap { Int($0.split(separator: " ").last!) }
        #expect(counted.reduce(0, +) == 1 && timed.reduce(0, +) == 1, "\(text)")
        proxy.stop()
        let lines = accessLines(fds[0])
        #expect(lines.count == 3)
        let outcomes = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["outcome"] as? String }
        #expect(outcomes == ["-", "-", "unguarded"])
    }

    @Test func textAccessLogIsOneReadableLinePerRequest() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let proxy = try ProxyHarness(accessLogFD: fds[1], logFormat: "text")
        _ = try proxy.request("GET /one?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
        _ = try proxy.request("POST /p HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: k1\r\nContent-Length: 2\r\n\r\n{}")
        proxy.stop()
        let lines = accessLines(fds[0])
        #expect(lines.count == 2)
        // 2026-11-30T19:50:01.123Z 127.0.0.1 "GET /one?x=1" 200 0.412ms unguarded
        let first = lines[0].split(separator: " ")
        #expect(first.count == 7)
        #expect(first[0].count == 24 && first[0].hasSuffix("Z") && first[0].contains("T"))
        #expect(first[1] == "127.0.0.1")
        #expect(first[2] == "\"GET" && first[3] == "/one?x=1\"")
        #expect(first[4] == "200")
        #expect(first[5].hasSuffix("ms") && Double(first[5].dropLast(2)) != nil)
        #expect(first[6] == "unguarded")
        let hash = String(StorageKey.digestHex(scope: Array("Bearer t".utf8), key: "k1").prefix(16))
        #expect(lines[1].hasSuffix(" forwarded key=\(hash)"))
    }

    @Test func accessLogWritesOneJSONLinePerRequest() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let proxy = try ProxyHarness(accessLogFD: fds[1])
        _ = try proxy.request("GET /one?x=\"q\" HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
        _ = try proxy.request("GET /../bad HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
        proxy.stop()  // flushes the per-loop buffers
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = read(fds[0], &buffer, buffer.count)
        let lines = String(decoding: buffer[0..<max(count, 0)], as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(first?["target"] as? String == "/one?x=\"q\"")
        #expect(first?["status"] as? Int == 200)
        #expect(first?["method"] as? String == "GET")
        #expect(first?["outcome"] as? String == "unguarded")
        let second = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any]
        #expect(second?["status"] as? Int == 400)
    }
}
