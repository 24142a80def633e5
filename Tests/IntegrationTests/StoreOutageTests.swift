import Foundation
import Glibc
import Testing
import TestSupport

/// Redis goes away during traffic and comes back (SPEC §4 "store unreachable").
@Suite(.serialized) struct StoreOutageTests {
    @Test func rejectModeAnswers503AndRecoversWithoutDuplicates() throws {
        let (redis, origin, proxy) = try proxyOnItsOwnRedis()
        defer { proxy.stop() }
        let before = uniqueKey()
        #expect(try proxy.request(post(key: before)).status == 201)

        redis.kill()
        let refused = try proxy.request(post(key: uniqueKey()))
        #expect(refused.status == 503)
        #expect(refused.value("retry-after") != nil)
        #expect(refused.bodyText.contains("store-unavailable"))
        // Unguarded traffic does not depend on the store.
        #expect(try proxy.request("GET /health HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET").status == 201)
        #expect(origin.count == 2)

        try redis.start()
        let restarted = Date()
        var recovered = false
        let key = uniqueKey()
        while Date().timeIntervalSince(restarted) < 2 {
            if try proxy.request(post(key: key)).status == 201 { recovered = true; break }
            usleep(50_000)
        }
        #expect(recovered, "guarded traffic did not recover within 2 s of Redis returning")
        #expect(try proxy.request(post(key: key)).value("idempotent-replayed") == "true")
        // One execution for `before`, one for the GET, one for `key`: nothing ran twice.
        #expect(origin.count == 3)
    }

    @Test func passThroughModeForwardsWhileTheStoreIsDown() throws {
        let redis = try RedisServer()
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: StoreKind.redis.yaml(unavailable: "pass_through", url: redis.url))
        defer { proxy.stop() }
        redis.kill()
        let key = uniqueKey()
        #expect(try proxy.request(post(key: key)).status == 201)
        #expect(origin.count == 1)
        #expect(proxy.server.metrics.passThroughForwards.load(ordering: .relaxed) == 1)
        try redis.start()
        var guardedAgain = false
        let started = Date()
        let fresh = uniqueKey()
        while Date().timeIntervalSince(started) < 2 && !guardedAgain {
            _ = try proxy.request(post(key: fresh))
            guardedAgain = try proxy.request(post(key: fresh)).value("idempotent-replayed") == "true"
        }
        #expect(guardedAgain)
    }

    @Test func readinessFollowsTheRedisConnection() throws {
        let redis = try RedisServer()
        let proxy = try ProxyHarness(yaml: StoreKind.redis.yaml(url: redis.url), workers: 2)
        defer { proxy.stop() }
        func ready() throws -> Int {
            let client = try TestClient(port: try #require(proxy.server.adminPort))
            try client.send("GET /readyz HTTP/1.1\r\nHost: admin\r\n\r\n")
            return try client.readResponse().status
        }
        func eventually(_ status: Int) throws -> Bool {
            for _ in 0..<60 {
                if try ready() == status { return true }
                usleep(50_000)
            }
            return false
        }
        #expect(try eventually(200))
        redis.kill()
        #expect(try eventually(503))
        try redis.start()
        #expect(try eventually(200))
    }
}
