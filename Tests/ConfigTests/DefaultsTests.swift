import Config
import Testing

@Suite struct DefaultsTests {
    @Test func onlyUpstreamUsesDocumentedDefaults() throws {
        let config = try parse("upstream:\n  url: http://api.internal:8000\n")
        #expect(config.listen.description == "0.0.0.0:8080")
        #expect(config.workers == nil)
        #expect(config.upstream.host == "api.internal")
        #expect(config.upstream.port == 8000)
        #expect(config.upstream.connectTimeout == .seconds(2))
        #expect(config.upstream.responseTimeout == .seconds(60))
        #expect(config.upstream.maxIdleConnections == 64)
        #expect(config.upstream.idleTimeout == .seconds(30))
        #expect(config.store.backend == .memory)
        #expect(config.store.unavailable == .reject)
        #expect(config.store.redis.url == "redis://127.0.0.1:6379/0")
        #expect(config.store.redis.keyPrefix == "idem:")
        #expect(config.store.redis.commandTimeout == .milliseconds(250))
        #expect(config.idempotency == IdempotencyConfig())
        #expect(config.idempotency.methods == ["POST", "PATCH"])
        #expect(config.idempotency.ttl == .seconds(86_400))
        #expect(config.routes.isEmpty)
        #expect(config.limits.maxHeaderBytes == 16 * 1024)
        #expect(config.limits.maxHeaders == 100)
        #expect(config.limits.headerTimeout == .seconds(10))
        #expect(config.limits.bodyTimeout == .seconds(30))
        #expect(config.limits.idleTimeout == .seconds(60))
        #expect(config.limits.maxConnections == 10_000)
        #expect(config.shutdownGrace == .seconds(30))
        #expect(config.admin.listen?.description == "127.0.0.1:9090")
        #expect(config.logging.level == .info)
        #expect(config.logging.format == .json)
        #expect(config.logging.accessLog)
    }

    @Test func partialSectionsKeepOtherDefaults() throws {
        let config = try parse(withUpstream("""
        store:
          redis:
            command_timeout: 1s
        idempotency:
          fingerprint: { body: json }
        limits: { max_headers: 50 }
        logging:
          level: debug
        """))
        #expect(config.store.backend == .memory)
        #expect(config.store.redis.commandTimeout == .seconds(1))
        #expect(config.store.redis.keyPrefix == "idem:")
        #expect(config.idempotency.fingerprintBody == .json)
        #expect(config.idempotency.fingerprintHeaders == ["Content-Type"])
        #expect(config.limits.maxHeaders == 50)
        #expect(config.limits.maxHeaderBytes == 16 * 1024)
        #expect(config.logging.level == .debug)
        #expect(config.logging.format == .json)
    }

    @Test func emptySectionsAreDefaults() throws {
        let config = try parse(withUpstream("store:\nidempotency: {}\nlimits:\nroutes:\nlogging: {}\n"))
        #expect(config.store == StoreConfig())
        #expect(config.idempotency == IdempotencyConfig())
        #expect(config.limits == LimitsConfig())
        #expect(config.routes.isEmpty)
    }

    @Test func missingUpstreamURLIsRequired() {
        let issue = singleIssue("listen: 0.0.0.0:8080\n")
        #expect(issue?.description == "test.yaml:1:1: upstream.url: required key is missing (the URL of the API to protect, such as http://127.0.0.1:3000)")
        let inSection = singleIssue("listen: 0.0.0.0:8080\nupstream:\n  connect_timeout: 1s\n")
        #expect(inSection?.description.hasPrefix("test.yaml:2:1: upstream.url: required key is missing") == true)
    }

    @Test func emptyDocumentNeedsUpstream() {
        let issue = singleIssue("# nothing here\n")
        #expect(issue?.path == "upstream.url")
        #expect(issue?.message.hasPrefix("required key is missing") == true)
    }

    @Test func workers() throws {
        #expect(try parse(withUpstream("workers: auto")).workers == nil)
        #expect(try parse(withUpstream("workers: 4")).workers == 4)
        #expect(try parse(withUpstream("workers: 256")).workers == 256)
        for bad in ["0", "257", "-1", "many", "2.5"] {
            let issue = singleIssue(withUpstream("workers: \(bad)"))
            #expect(issue?.description == "test.yaml:3:1: workers: expected auto or an integer between 1 and 256, got \"\(bad)\"")
        }
    }

    @Test func adminCanBeDisabled() throws {
        #expect(try parse(withUpstream("admin: { listen: \"\" }")).admin.listen == nil)
        #expect(try parse(withUpstream("admin:\n  listen:\n")).admin.listen == nil)
        #expect(try parse(withUpstream("admin:\n  listen: '[::1]:9100'\n")).admin.listen?.description == "[::1]:9100")
    }

    @Test func programmaticDefaultsMatchSchemaDefaults() throws {
        let built = IdemproxyConfig(upstream: UpstreamConfig(host: "127.0.0.1", port: 3000))
        let parsed = try parse("upstream: { url: http://127.0.0.1:3000 }")
        #expect(built == parsed)
    }
}
