import Foundation
import Glibc
import Testing
import TestSupport

/// Store faults the Redis server itself produces: running out of memory, and coming back
/// without its records (SPEC §4 "the store is full", SPEC §8 "detected store resets").
@Suite(.serialized) struct RedisFaultTests {
    @Test func redisOutOfMemoryIsStoreFull() throws {
        let (redis, origin, proxy) = try proxyOnItsOwnRedis()
        defer { proxy.stop() }
        let stored = uniqueKey()
        #expect(try proxy.request(post(key: stored)).status == 201)
        usleep(200_000)  // its completion is written after the client has the response
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

    /// An owner whose request is upstream when Redis runs out of memory still stores the
    /// outcome (its writes start with a write Redis does not refuse), so the retry replays.
    @Test func anOutcomeIsStoredEvenWhenRedisRunsOutOfMemoryMeanwhile() throws {
        let redis = try RedisServer()
        let origin = CountingOrigin()
        origin.delay = 1.2
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: StoreKind.redis.yaml(url: redis.url) + "idempotency: { lease: 1s }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key, settle: 200_000)
        #expect(try redis.command("CONFIG SET maxmemory 1").hasPrefix("+OK"))
        // Past the lease: only refreshes under OOM keep the claim.
        let response = try original.readResponse()
        #expect(response.status == 201)
        usleep(200_000)
        let replay = try proxy.request(post(key: key))
        #expect(replay.value("idempotent-replayed") == "true")
        #expect(replay.bodyText == response.bodyText)
        #expect(try proxy.request(post(key: uniqueKey())).status == 503)
        #expect(origin.count == 1)
        #expect(proxy.server.metrics.lostLeases.load(ordering: .relaxed) == 0)
        #expect(try redis.command("CONFIG SET maxmemory 0").hasPrefix("+OK"))
    }

    @Test func aRedisThatComesBackEmptyIsCountedAsAReset() throws {
        let redis = try RedisServer()
        let proxy = try ProxyHarness(yaml: StoreKind.redis.yaml(url: redis.url), workers: 2)
        defer { proxy.stop() }
        let metrics = proxy.server.metrics
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
        // FLUSHALL keeps the run_id and the connections but loses the records; the periodic
        // check (every 5 s) notices.
        #expect(try redis.command("FLUSHALL").hasPrefix("+OK"))
        #expect(eventually(seconds: 7) { metrics.storeResetsRecordsMissing.load(ordering: .relaxed) == 2 })
        #expect(metrics.storeResetsRunID.load(ordering: .relaxed) == 1)
        let exposition = metrics.exposition()
        #expect(exposition.contains("idemproxy_store_resets_total{reason=\"records_missing\"} 2\n"))
    }
}
