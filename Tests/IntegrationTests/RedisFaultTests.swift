import Foundation
import Glibc
import Testing
import TestSupport

/// Store faults the Redis server itself produces: running out of memory, and coming back
/// without its records (SPEC §4 "the store is full", SPEC §8 "detected store resets").
@Suite(.serialized) struct RedisFaultTests {
    @Test func redisOutOfMemoryIsStoreFull() throws {
        let redis = try RedisServer()
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: StoreKind.redis.yaml(url: redis.url))
        defer { proxy.stop() }
        let stored = uniqueKey()
        #expect(try proxy.request(post(key: stored)).status == 201)
        // Any write now exceeds maxmemory; noeviction (the default) refuses it.
        #expect(try redis.command("CONFIG SET maxmemory 1").hasPrefix("+OK"))
        let full = try proxy.request(post(key: uniqueKey()))
        #expect(full.status == 503)
        #expect(full.bodyText.contains("store-full"))
        #expect(full.value("retry-after") != nil)
        #expect(origin.count == 1)
        // Reads still work: the earlier record replays.
        #expect(try proxy.request(post(key: stored)).value("idempotent-replayed") == "true")
        #expect(try redis.command("CONFIG SET maxmemory 0").hasPrefix("+OK"))
        #expect(try proxy.request(post(key: uniqueKey())).status == 201)
        #expect(proxy.server.metrics.value(.storeFull) == 1)
    }

    @Test func aRedisThatComesBackEmptyIsCountedAsAReset() throws {
        let redis = try RedisServer()
        let proxy = try ProxyHarness(yaml: StoreKind.redis.yaml(url: redis.url), workers: 2)
        defer { proxy.stop() }
        let metrics = proxy.server.metrics
        func eventually(_ condition: () -> Bool) -> Bool {
            for _ in 0..<100 {
                if condition() { return true }
                usleep(50_000)
            }
            return false
        }
        #expect(eventually { metrics.redisConnectionsReady.load(ordering: .relaxed) == 2 })
        usleep(200_000)
        #expect(metrics.storeResetsRunID.load(ordering: .relaxed) == 0)
        #expect(metrics.storeResetsRecordsMissing.load(ordering: .relaxed) == 0)
        // Restarted without persistence: new run_id, marker gone. Counted once, not per loop.
        redis.kill()
        try redis.start()
        #expect(eventually { metrics.storeResetsRunID.load(ordering: .relaxed) == 1 && metrics.storeResetsRecordsMissing.load(ordering: .relaxed) == 1 })
        usleep(300_000)
        #expect(metrics.storeResetsRunID.load(ordering: .relaxed) == 1)
        #expect(metrics.storeResetsRecordsMissing.load(ordering: .relaxed) == 1)
        // FLUSHALL keeps the run_id but loses the records; seen at the next reconnect.
        #expect(try redis.command("FLUSHALL").hasPrefix("+OK"))
        #expect(try redis.command("CLIENT KILL TYPE normal").hasPrefix(":"))
        #expect(eventually { metrics.storeResetsRecordsMissing.load(ordering: .relaxed) == 2 })
        #expect(metrics.storeResetsRunID.load(ordering: .relaxed) == 1)
        let exposition = metrics.exposition()
        #expect(exposition.contains("idemproxy_store_resets_total{reason=\"records_missing\"} 2\n"))
    }
}
