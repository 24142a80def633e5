import Config
import Testing

/// `store.redis.sentinel` (SPEC §6): the master name and Sentinel addresses, off when empty.
@Suite struct RedisSentinelConfigTests {
    @Test func sentinelsAndTheMasterNameAreRead() throws {
        let config = try parse(redisStore("    url: redis://:pw@ignored:6379/2\n    sentinel: { master: payments, nodes: [\"10.0.0.7:26379\", \"sentinel-b.internal\", \"[::1]:26380\"] }\n"))
        #expect(config.store.redis.sentinel == RedisSentinelConfig(master: "payments", nodes: [
            SocketAddressSpec(host: "10.0.0.7", port: 26379),
            SocketAddressSpec(host: "sentinel-b.internal", port: 26379),
            SocketAddressSpec(host: "::1", port: 26380),
        ]))
        #expect(config.store.redis.password == "pw")
        #expect(config.store.redis.database == 2)
    }

    @Test func theSpecDefaultsMeanOff() throws {
        #expect(try parse(redisStore("    sentinel: { master: \"\", nodes: [] }\n")).store.redis.sentinel == nil)
        #expect(try parse(redisStore("    url: redis://h:6379/0\n")).store.redis.sentinel == nil)
    }

    @Test func nodesNeedAMasterName() {
        let issue = singleIssue(redisStore("    sentinel: { nodes: [\"10.0.0.7:26379\"] }\n"))
        #expect(issue?.path == "store.redis.sentinel")
        #expect(issue?.message.contains("name") == true)
    }

    @Test func aMasterNameNeedsNodes() {
        let issue = singleIssue(redisStore("    sentinel:\n      master: payments\n      nodes: []\n"))
        #expect(issue?.path == "store.redis.sentinel.nodes")
        #expect(issue?.line == 8)
    }

    @Test func aBadNodeIsNamedByItsIndex() {
        let issue = singleIssue(redisStore("    sentinel: { master: payments, nodes: [\"10.0.0.7:99999\"] }\n"))
        #expect(issue?.path == "store.redis.sentinel.nodes[0]")
    }
}

/// `store.redis.cluster` (SPEC §6): seed nodes; only database 0; not with Sentinel.
@Suite struct RedisClusterConfigTests {
    @Test func seedsAreRead() throws {
        let config = try parse(redisStore("    url: redis://:pw@ignored:6379/0\n    cluster: { nodes: [\"10.0.1.10:7000\", \"cache-b.internal\"] }\n"))
        #expect(config.store.redis.clusterNodes == [SocketAddressSpec(host: "10.0.1.10", port: 7000), SocketAddressSpec(host: "cache-b.internal", port: 6379)])
        #expect(try parse(redisStore("    cluster: { nodes: [] }\n")).store.redis.clusterNodes == nil)
    }

    @Test func aClusterHasOnlyDatabaseZero() {
        let issue = singleIssue(redisStore("    url: redis://h:6379/3\n    cluster: { nodes: [\"10.0.1.10:7000\"] }\n"))
        #expect(issue?.path == "store.redis.url")
        #expect(issue?.message.contains("database 0") == true)
    }

    @Test func sentinelAndClusterExcludeEachOther() {
        let issue = singleIssue(redisStore("    sentinel: { master: m, nodes: [\"10.0.0.7:26379\"] }\n    cluster: { nodes: [\"10.0.1.10:7000\"] }\n"))
        #expect(issue?.path == "store.redis.cluster")
    }
}
