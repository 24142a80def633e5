import Config
import Testing

/// The configuration example of SPEC §6, verbatim except for the Redis topology keys (`tls`,
/// `sentinel`, `cluster`, `min_replicas_acked`, `replica_ack_timeout`), which are not built yet.
let specExample = """
listen: 0.0.0.0:8080
workers: auto                     # event loops; auto = number of cores
upstream:
  url: http://127.0.0.1:3000
  connect_timeout: 2s
  response_timeout: 60s
  max_idle_connections: 64
  idle_timeout: 30s
store:
  backend: memory                 # memory (single instance) | redis
  memory:
    max_bytes: 256MiB             # records (in-flight ones too) + stored bodies + a fixed per-record overhead; when full, new claims get 503 store-full
  redis:
    url: redis://127.0.0.1:6379/0 # redis://[:password@]host:port/db
    key_prefix: "idem:"
    command_timeout: 250ms
  unavailable: reject             # reject | pass_through
idempotency:
  header: Idempotency-Key
  key_syntax: lenient             # lenient | strict
  key_max_length: 255
  methods: [POST, PATCH]
  required: false
  ttl: 24h
  lease: 30s
  concurrent: reject              # reject (409) | wait
  wait_timeout: 10s
  indeterminate: hold             # hold | release
  release_statuses: [429, 503]
  max_request_body: 1MiB
  max_stored_body: 1MiB
  scope: { header: Authorization, missing: reject }   # missing: reject (400) | unscoped (forward unguarded)
  fingerprint: { headers: [Content-Type], body: raw, ignore_fields: [] }
  replay: { keep_headers: [] }
routes:                           # first match wins; each may override any idempotency field
  - match: { path_prefix: /v1/payments, methods: [POST] }
    required: true
    ttl: 48h
  - match: { path_prefix: /internal/ }
    enabled: false
limits:
  max_header_bytes: 16KiB
  max_headers: 100
  header_timeout: 10s
  body_timeout: 30s
  idle_timeout: 60s
  max_connections: 10000
shutdown_grace: 30s
admin:
  listen: 127.0.0.1:9090          # /healthz /readyz /metrics
logging: { level: info, format: json, access_log: true }
"""

@Suite struct SpecExampleTests {
    let config: IdemproxyConfig

    init() throws {
        config = try parse(specExample)
    }

    @Test func topLevel() {
        #expect(config.listen == SocketAddressSpec(host: "0.0.0.0", port: 8080))
        #expect(config.listen.description == "0.0.0.0:8080")
        #expect(config.workers == nil)
        #expect(config.shutdownGrace == .seconds(30))
        #expect(config.admin.listen == SocketAddressSpec(host: "127.0.0.1", port: 9090))
        #expect(config.logging == LoggingConfig(level: .info, format: .json, accessLog: true))
    }

    @Test func upstream() {
        let upstream = config.upstream
        #expect(upstream.url == "http://127.0.0.1:3000")
        #expect(upstream.host == "127.0.0.1")
        #expect(upstream.port == 3000)
        #expect(upstream.pathPrefix == "")
        #expect(upstream.connectTimeout == .seconds(2))
        #expect(upstream.responseTimeout == .seconds(60))
        #expect(upstream.maxIdleConnections == 64)
        #expect(upstream.idleTimeout == .seconds(30))
        #expect(upstream.authority == "127.0.0.1:3000")
    }

    @Test func store() {
        let store = config.store
        #expect(store.backend == .memory)
        #expect(store.unavailable == .reject)
        #expect(store.redis.url == "redis://127.0.0.1:6379/0")
        #expect(store.redis.host == "127.0.0.1")
        #expect(store.redis.port == 6379)
        #expect(store.redis.database == 0)
        #expect(store.redis.password == nil)
        #expect(store.redis.username == nil)
        #expect(store.redis.keyPrefix == "idem:")
        #expect(store.redis.commandTimeout == .milliseconds(250))
    }

    @Test func idempotency() {
        let settings = config.idempotency
        #expect(settings.header == "Idempotency-Key")
        #expect(settings.keySyntax == .lenient)
        #expect(settings.keyMaxLength == 255)
        #expect(settings.methods == ["POST", "PATCH"])
        #expect(settings.required == false)
        #expect(settings.ttl == .seconds(86_400))
        #expect(settings.lease == .seconds(30))
        #expect(settings.concurrent == .reject)
        #expect(settings.waitTimeout == .seconds(10))
        #expect(settings.indeterminate == .hold)
        #expect(settings.releaseStatuses == [429, 503])
        #expect(settings.maxRequestBody == 1_048_576)
        #expect(settings.maxStoredBody == 1_048_576)
        #expect(settings.scopeHeader == "Authorization")
        #expect(settings.fingerprintHeaders == ["Content-Type"])
        #expect(settings.fingerprintBody == .raw)
        #expect(settings.ignoreFields == [])
        #expect(settings.replayKeepHeaders == [])
        #expect(config.defaultIdempotency == settings)
    }

    @Test func routes() {
        #expect(config.routes.count == 2)
        let payments = config.routes[0]
        #expect(payments.pathPrefix == "/v1/payments")
        #expect(payments.methods == ["POST"])
        #expect(payments.enabled)
        #expect(payments.idempotency.required)
        #expect(payments.idempotency.ttl == .seconds(48 * 3600))
        #expect(payments.idempotency.lease == .seconds(30))
        #expect(payments.idempotency.methods == ["POST", "PATCH"])

        let internalRoute = config.routes[1]
        #expect(internalRoute.pathPrefix == "/internal/")
        #expect(internalRoute.methods == nil)
        #expect(internalRoute.enabled == false)
        #expect(internalRoute.idempotency == config.idempotency)
    }

    @Test func limits() {
        #expect(config.limits == LimitsConfig(
            maxHeaderBytes: 16_384, maxHeaders: 100, headerTimeout: .seconds(10),
            bodyTimeout: .seconds(30), idleTimeout: .seconds(60), maxConnections: 10_000))
    }

    @Test func exampleEqualsBuiltInDefaults() throws {
        let minimal = try parse("upstream: { url: http://127.0.0.1:3000 }")
        #expect(minimal.idempotency == config.idempotency)
        #expect(minimal.store == config.store)
        #expect(minimal.limits == config.limits)
        #expect(minimal.listen == config.listen)
        #expect(minimal.admin == config.admin)
        #expect(minimal.logging == config.logging)
        #expect(minimal.upstream == config.upstream)
        #expect(minimal.shutdownGrace == config.shutdownGrace)
        #expect(minimal.workers == nil)
        #expect(minimal.routes.isEmpty)
    }
}
