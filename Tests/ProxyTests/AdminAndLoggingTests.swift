import Foundation
import Glibc
import Testing
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
