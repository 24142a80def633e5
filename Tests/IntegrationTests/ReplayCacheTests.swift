import Foundation
import Idempotency
import Proxy
import RedisStore
import Testing
import TestSupport

/// The Redis store's replay cache against a real redis-server: two stores on two loops stand
/// for two replicas. A replay is served from memory after the first, a purge on one replica
/// reaches the other's cache within a second, and a cache that cannot read the purge log stops
/// serving.
@Suite(.serialized) struct ReplayCacheTests {
    let fingerprint = [UInt8](repeating: 9, count: 32)
    let response = StoredResponse(status: 201, headers: [HeaderPair(name: Array("Content-Type".utf8), value: Array("application/json".utf8))], body: Array("{\"id\":1}".utf8))

    /// Runs both replicas' loops (each store reads its purge log on its own loop).
    func runBoth(_ a: RedisStoreTests.Fixture, _ b: RedisStoreTests.Fixture, seconds: Double, until done: () -> Bool = { false }) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if done() { return true }
            a.loop.runOnce(maxWaitMillis: 5)
            b.loop.runOnce(maxWaitMillis: 5)
        }
        return done()
    }

    func claim(_ f: RedisStoreTests.Fixture, _ key: String) -> Result<ClaimOutcome, StoreError>? {
        f.await { f.store.claim(key: key, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: $0) }
    }

    /// Replica A stores a response; replica B replays it, from Redis once and then from memory.
    func completedOnA(_ a: RedisStoreTests.Fixture, _ b: RedisStoreTests.Fixture) throws -> String {
        let key = a.key()
        let owner = OwnerToken.random()
        #expect(a.await { a.store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: $0) } == .success(.claimed))
        #expect(a.await { a.store.complete(key: key, owner: owner, response: response, ttl: .seconds(60), completion: $0) } == .success(true))
        // B's cache is served once its first read of the purge log has come back.
        _ = runBoth(a, b, seconds: 0.5)
        guard case .success(.existing(let first))? = claim(b, key) else { Issue.record("no replay from Redis"); return key }
        #expect(first.response == response)
        // The record is cached once its key's remaining life (PTTL) is known.
        #expect(runBoth(a, b, seconds: 1) { b.store.replayCache?.count == 1 })
        for round in 0..<2 {
            guard case .success(.existing(let record))? = claim(b, key) else { Issue.record("round \(round)"); break }
            #expect(record.response == response)
        }
        #expect(b.store.replayCacheHits == 2, "the first replay reads Redis, the next two come from memory")
        return key
    }

    /// Through the whole proxy, on the default configuration: once the first replay has read
    /// the record from Redis, later replays send Redis nothing and are counted on /metrics.
    @Test func theProxyServesRepeatedReplaysFromMemory() throws {
        let (redis, origin, proxy) = try proxyOnItsOwnRedis()
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try proxy.request(post(key: key))
        #expect(first.status == 201)
        // Its completion is written after the client has the response, and a record read before
        // the purge log's first read came back is not cached: replay until one is served from
        // memory.
        let metrics = proxy.server.metrics
        #expect(eventually {
            (try? proxy.request(post(key: key)).value("idempotent-replayed")) == "true" && metrics.replayCacheHits.load(ordering: .relaxed) > 0
        })
        // Five replays with nothing sent to Redis for them. A window is retried (up to five
        // times) when the machine is too busy: a purge-log read answered late makes the cache
        // step aside (it serves only while the log is fresh), and the proxy's reset check may
        // write its marker (a SET after an INFO) in the window.
        func calls(_ command: String, in stats: String) -> Int {
            guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):calls=") }) else { return 0 }
            return Int(line.dropFirst("cmdstat_\(command):calls=".count).prefix { $0.isNumber }) ?? -1
        }
        var clean = false
        var last = ""
        for _ in 0..<5 where !clean {
            #expect(try redis.command("CONFIG RESETSTAT").hasPrefix("+OK"))
            let before = metrics.replayCacheHits.load(ordering: .relaxed)
            for _ in 0..<5 {
                let replay = try proxy.request(post(key: key))
                #expect(replay.value("idempotent-replayed") == "true")
                #expect(replay.bodyText == first.bodyText)
            }
            let hits = metrics.replayCacheHits.load(ordering: .relaxed)
            last = try redis.command("INFO commandstats")
            clean = hits == before + 5 && calls("evalsha", in: last) == 0 && calls("set", in: last) <= calls("info", in: last)
            #expect(metrics.exposition().contains("idemproxy_store_replay_cache_hits_total \(hits)\n"))
        }
        #expect(clean, "no window of five replays served from memory alone; last commandstats: \(last)")
        #expect(origin.count == 1)
    }

    @Test func aPurgeOnOneReplicaReachesTheOthersCacheWithinASecond() throws {
        let a = try RedisStoreTests.Fixture(replayCacheBytes: 1 << 20)
        let b = try RedisStoreTests.Fixture(replayCacheBytes: 1 << 20)
        let key = try completedOnA(a, b)
        #expect(a.await { a.store.purge(key: key, completion: $0) } == .success(true))
        let purged = Date()
        // B keeps answering from its cache until the purge arrives, then asks Redis, which has
        // no record any more: the claim is new.
        var outcome: Result<ClaimOutcome, StoreError>?
        let reached = runBoth(a, b, seconds: 3) {
            outcome = claim(b, key)
            return outcome == .success(.claimed)
        }
        #expect(reached, "last outcome \(String(describing: outcome))")
        #expect(Date().timeIntervalSince(purged) < 1.0)
    }

    @Test func aCacheThatCannotReadThePurgeLogStopsServing() throws {
        let relay = try FaultRelay(targetPort: StoreKind.redisPort)
        defer { relay.stop() }
        let a = try RedisStoreTests.Fixture(replayCacheBytes: 1 << 20)
        let b = try RedisStoreTests.Fixture(url: relay.url, commandTimeoutMillis: 200, replayCacheBytes: 1 << 20)
        let key = try completedOnA(a, b)
        relay.withholdReplies = true
        let hits = b.store.replayCacheHits
        _ = runBoth(a, b, seconds: 0.8)
        // No read of the purge log has succeeded for 800 ms: the claim goes to Redis, which
        // does not answer in time, rather than to a cache that could be stale.
        if case .success? = claim(b, key) { Issue.record("served while the purge log was unreadable") }
        #expect(b.store.replayCacheHits == hits)
    }

    @Test func aCachedReplayCarriesTheStoredFingerprint() throws {
        let a = try RedisStoreTests.Fixture(replayCacheBytes: 1 << 20)
        let b = try RedisStoreTests.Fixture(replayCacheBytes: 1 << 20)
        let key = try completedOnA(a, b)
        // The decision about a different request with the key is the proxy's; the cache must
        // hand it the original fingerprint to decide on.
        guard case .success(.existing(let record))? = claim(b, key) else { Issue.record("no replay"); return }
        #expect(record.fingerprint == fingerprint)
        #expect(b.store.replayCacheHits == 3)
    }

    /// Waits (both loops running) until B's claim of `key` is no longer a replay; returns how
    /// long that took, or nil if it never happened within 3 s.
    func secondsUntilBForgets(_ a: RedisStoreTests.Fixture, _ b: RedisStoreTests.Fixture, _ key: String) -> Double? {
        let start = Date()
        var outcome: Result<ClaimOutcome, StoreError>?
        let forgot = runBoth(a, b, seconds: 3) {
            outcome = claim(b, key)
            guard case .success(.existing(let record))? = outcome else { return true }
            return record.state != .completed
        }
        return forgot ? Date().timeIntervalSince(start) : nil
    }

    /// A record deleted behind idemproxy's back is still in the caches; purging it through
    /// idemproxy then (the store says there was nothing to delete) still reaches them.
    @Test func purgingARecordAlreadyGoneStillReachesTheCaches() throws {
        let a = try RedisStoreTests.Fixture(replayCacheBytes: 1 << 20)
        let b = try RedisStoreTests.Fixture(replayCacheBytes: 1 << 20)
        let key = try completedOnA(a, b)
        #expect(a.await { done in a.connection.send([Array("DEL".utf8), Array(key.utf8)], completion: done) } == .success(.integer(1)))
        guard case .success(.existing)? = claim(b, key) else { Issue.record("the cache should still answer"); return }
        var outcome: RecordPurge.Outcome?
        RecordPurge.run(store: a.store, key: key, force: false) { outcome = $0 }
        _ = a.run(until: { outcome != nil })
        #expect(outcome == .absent)
        let took = try #require(secondsUntilBForgets(a, b, key))
        #expect(took < 1.0)
    }

    /// Out of memory, a purge still deletes and still announces (a script flagged allow-oom),
    /// so no replica keeps replaying what was purged.
    @Test func aPurgeReachesTheCachesWhenRedisIsOutOfMemory() throws {
        let redis = try RedisServer()
        let a = try RedisStoreTests.Fixture(url: redis.url, replayCacheBytes: 1 << 20)
        let b = try RedisStoreTests.Fixture(url: redis.url, replayCacheBytes: 1 << 20)
        let key = try completedOnA(a, b)
        _ = try redis.command("CONFIG SET maxmemory-policy noeviction")
        _ = try redis.command("CONFIG SET maxmemory 1")
        #expect(try redis.command("SET probe 1").hasPrefix("-OOM"))
        #expect(a.await { a.store.purge(key: key, completion: $0) } == .success(true))
        let took = try #require(secondsUntilBForgets(a, b, key))
        #expect(took < 1.0)
    }
}
