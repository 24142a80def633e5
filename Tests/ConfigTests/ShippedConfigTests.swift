import Config
import Testing

/// The configuration files shipped in `config/` load as documented.
@Suite struct ShippedConfigTests {
    @Test func defaultConfigLoadsWithDefaults() throws {
        let config = try ConfigLoader.load(path: repositoryRoot + "/config/idemproxy.yaml", environment: [:])
        #expect(config.listen.description == "0.0.0.0:8080")
        #expect(config.workers == nil)
        #expect(config.upstream.url == "http://127.0.0.1:3000")
        #expect(config.store.backend == .memory)
        #expect(config.store.redis.url == "redis://127.0.0.1:6379/0")
        #expect(config.admin.listen?.description == "127.0.0.1:9090")
        #expect(config.idempotency == IdempotencyConfig())
        #expect(config.limits == LimitsConfig())
        #expect(config.shutdownGrace == .seconds(30))
        #expect(config.logging == LoggingConfig())
        #expect(config.routes.isEmpty)
    }

    @Test func defaultConfigHonoursEnvironment() throws {
        let config = try ConfigLoader.load(path: repositoryRoot + "/config/idemproxy.yaml", environment: [
            "LISTEN": "127.0.0.1:18080",
            "UPSTREAM_URL": "http://10.1.2.3:8000/api",
            "STORE_BACKEND": "redis",
            "REDIS_URL": "redis://:pw@redis:6379/1",
        ])
        #expect(config.listen == SocketAddressSpec(host: "127.0.0.1", port: 18080))
        #expect(config.upstream.host == "10.1.2.3")
        #expect(config.upstream.pathPrefix == "/api")
        #expect(config.store.backend == .redis)
        #expect(config.store.redis.password == "pw")
        #expect(config.store.redis.database == 1)
    }

    @Test func redisExampleLoads() throws {
        let config = try ConfigLoader.load(path: repositoryRoot + "/config/examples/redis.yaml", environment: [:])
        #expect(config.store.backend == .redis)
        #expect(config.idempotency.concurrent == .wait)
        let payments = try #require(config.route(forPath: "/v1/payments", method: "POST"))
        #expect(payments.idempotency.required)
        #expect(payments.idempotency.ttl == .seconds(48 * 3600))
        #expect(payments.idempotency.fingerprintBody == .json)
        #expect(config.idempotency(forPath: "/v1/refunds/9", method: "PUT")?.required == true)
        #expect(config.idempotency(forPath: "/internal/x", method: "POST") == nil)
    }
}
