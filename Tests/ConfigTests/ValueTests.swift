import Config
import Testing

/// Parses `value` as `upstream.connect_timeout`.
private func connectTimeout(_ value: String) throws(ConfigError) -> Duration {
    try parse("upstream:\n  url: http://127.0.0.1:3000\n  connect_timeout: \(value)\n").upstream.connectTimeout
}

/// Parses `value` as `idempotency.max_request_body`.
private func maxRequestBody(_ value: String) throws(ConfigError) -> Int {
    try parse(withUpstream("idempotency:\n  max_request_body: \(value)\n")).idempotency.maxRequestBody
}

@Suite struct DurationTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)),
        ("1ms", .milliseconds(1)),
        ("30s", .seconds(30)),
        ("5m", .seconds(300)),
        ("24h", .seconds(86_400)),
        ("1h30m", .seconds(5400)),
        ("1s500ms", .milliseconds(1500)),
        ("\"2s\"", .seconds(2)),
        ("'90s'", .seconds(90)),
    ])
    func valid(text: String, expected: Duration) throws {
        #expect(try connectTimeout(text) == expected)
    }

    @Test(arguments: ["abc", "1.5s", "10 s", "s", "-5s", "5d", "10sec", "1m-", "ms", "\"\""])
    func invalid(text: String) {
        let issue = singleIssue("upstream:\n  url: http://127.0.0.1:3000\n  connect_timeout: \(text)\n")
        #expect(issue?.path == "upstream.connect_timeout")
        #expect(issue?.line == 3)
        #expect(issue?.column == 3)
        #expect(issue?.message.hasPrefix("expected a duration such as 250ms, 2s, 5m or 24h, got") == true, "\(String(describing: issue))")
    }

    @Test func exampleMessage() {
        let issue = singleIssue("upstream:\n  url: http://127.0.0.1:3000\n  connect_timeout: abc\n")
        #expect(issue?.description == "test.yaml:3:3: upstream.connect_timeout: expected a duration such as 250ms, 2s, 5m or 24h, got \"abc\"")
    }

    @Test func plainIntegerNeedsUnit() {
        let issue = singleIssue("upstream:\n  url: http://127.0.0.1:3000\n  connect_timeout: 30\n")
        #expect(issue?.message == "expected a duration such as 250ms, 2s, 5m or 24h, got \"30\" (a unit is required)")
    }

    @Test func unknownUnitIsNamed() {
        let issue = singleIssue("upstream:\n  url: http://127.0.0.1:3000\n  connect_timeout: 3d\n")
        #expect(issue?.message.contains("unknown unit \"d\"") == true)
    }

    @Test func overflowIsAnError() {
        let issue = singleIssue(withUpstream("idempotency: { ttl: 99999999999999h }"))
        #expect(issue?.path == "idempotency.ttl")
        #expect(issue?.message.contains("too large") == true)
    }

    @Test func zeroRules() throws {
        #expect(try parse(withUpstream("idempotency: { wait_timeout: 0s }")).idempotency.waitTimeout == .zero)
        #expect(try parse(withUpstream("shutdown_grace: 0")).shutdownGrace == .zero)
        let issue = singleIssue("upstream:\n  url: http://127.0.0.1:3000\n  connect_timeout: 0s\n")
        #expect(issue?.description == "test.yaml:3:3: upstream.connect_timeout: must be greater than 0s, got 0s")
    }

    @Test func leaseAtLeastOneSecond() throws {
        #expect(try parse(withUpstream("idempotency: { lease: 1s }")).idempotency.lease == .seconds(1))
        let issue = singleIssue(withUpstream("idempotency:\n  lease: 500ms\n"))
        #expect(issue?.description == "test.yaml:4:3: idempotency.lease: must be at least 1s, got 500ms")
    }

    @Test func ttlNotShorterThanLease() {
        let issue = singleIssue(withUpstream("idempotency:\n  lease: 1m\n  ttl: 30s\n"))
        #expect(issue?.description == "test.yaml:5:3: idempotency.ttl: must be at least lease (1m), got 30s")
        let leaseOnly = singleIssue(withUpstream("idempotency:\n  lease: 25h\n"))
        #expect(leaseOnly?.description == "test.yaml:4:3: idempotency.lease: must not exceed ttl (24h), got 25h")
    }
}

@Suite struct SizeTests {
    @Test(arguments: [
        ("512", 512),
        ("1", 1),
        ("16KiB", 16_384),
        ("1MiB", 1_048_576),
        ("1GiB", 1_073_741_824),
        ("100B", 100),
        ("64 KiB", 65_536),
        ("\"2MiB\"", 2_097_152),
    ])
    func valid(text: String, expected: Int) throws {
        #expect(try maxRequestBody(text) == expected)
    }

    @Test(arguments: ["abc", "1.5MiB", "MiB", "-1", "1TiB", "12 bytes", "0x10"])
    func invalid(text: String) {
        let issue = singleIssue(withUpstream("idempotency:\n  max_request_body: \(text)\n"))
        #expect(issue?.line == 4)
        #expect(issue?.path == "idempotency.max_request_body")
        #expect(issue?.message.hasPrefix("expected a size such as 512, 16KiB, 1MiB or 1GiB, got") == true, "\(String(describing: issue))")
    }

    @Test(arguments: ["16KB", "1MB", "1M", "1G"])
    func decimalUnitsPointToBinaryOnes(text: String) {
        let issue = singleIssue(withUpstream("idempotency:\n  max_request_body: \(text)\n"))
        #expect(issue?.message.hasSuffix("(use the 1024-based units KiB, MiB or GiB)") == true)
    }

    @Test func bodyLimitsRange() {
        let zero = singleIssue(withUpstream("idempotency:\n  max_stored_body: 0\n"))
        #expect(zero?.description == "test.yaml:4:3: idempotency.max_stored_body: must be greater than 0 and at most 1GiB, got 0")
        let big = singleIssue(withUpstream("idempotency:\n  max_request_body: 2GiB\n"))
        #expect(big?.description == "test.yaml:4:3: idempotency.max_request_body: must be greater than 0 and at most 1GiB, got 2GiB")
    }
}

@Suite struct ScalarTests {
    @Test func booleans() throws {
        for text in ["true", "True", "yes", "on"] {
            #expect(try parse(withUpstream("idempotency: { required: \(text) }")).idempotency.required)
        }
        for text in ["false", "no", "off"] {
            #expect(try parse(withUpstream("idempotency: { required: \(text) }")).idempotency.required == false)
        }
        let issue = singleIssue(withUpstream("idempotency:\n  required: maybe\n"))
        #expect(issue?.description == "test.yaml:4:3: idempotency.required: expected true or false, got \"maybe\"")
    }

    @Test func enums() throws {
        let config = try parse(withUpstream("""
        store: { backend: redis, unavailable: pass_through }
        idempotency: { key_syntax: strict, concurrent: wait, indeterminate: release, fingerprint: { body: json } }
        logging: { level: warn, format: text, access_log: false }
        """))
        #expect(config.store.backend == .redis)
        #expect(config.store.unavailable == .passThrough)
        #expect(config.idempotency.keySyntax == .strict)
        #expect(config.idempotency.concurrent == .wait)
        #expect(config.idempotency.indeterminate == .release)
        #expect(config.idempotency.fingerprintBody == .json)
        #expect(config.logging.level == .warn)
        #expect(config.logging.format == .text)
        #expect(config.logging.accessLog == false)
    }

    @Test func badEnumListsChoices() {
        let issue = singleIssue(withUpstream("store:\n  backend: postgres\n"))
        #expect(issue?.description == "test.yaml:4:3: store.backend: expected memory or redis, got \"postgres\"")
        let level = singleIssue(withUpstream("logging:\n  level: verbose\n"))
        #expect(level?.message == "expected debug, info, warn or error, got \"verbose\"")
        let hint = singleIssue(withUpstream("store:\n  unavailable: pass-through\n"))
        #expect(hint?.message == "expected reject or pass_through, got \"pass-through\" (did you mean pass_through?)")
    }

    @Test func integerRanges() throws {
        #expect(try parse(withUpstream("idempotency: { key_max_length: 1024 }")).idempotency.keyMaxLength == 1024)
        let long = singleIssue(withUpstream("idempotency:\n  key_max_length: 1025\n"))
        #expect(long?.description == "test.yaml:4:3: idempotency.key_max_length: must be between 1 and 1024, got 1025")
        let zero = singleIssue(withUpstream("limits:\n  max_connections: 0\n"))
        #expect(zero?.description == "test.yaml:4:3: limits.max_connections: must be between 1 and 1000000, got 0")
        let text = singleIssue(withUpstream("limits:\n  max_headers: lots\n"))
        #expect(text?.description == "test.yaml:4:3: limits.max_headers: expected an integer, got \"lots\"")
        #expect(try parse(withUpstream("limits: { max_connections: 1_000_000 }")).limits.maxConnections == 1_000_000)
    }

    @Test func releaseStatuses() throws {
        #expect(try parse(withUpstream("idempotency: { release_statuses: [] }")).idempotency.releaseStatuses == [])
        #expect(try parse(withUpstream("idempotency: { release_statuses: [100, 599] }")).idempotency.releaseStatuses == [100, 599])
        let issue = singleIssue(withUpstream("idempotency:\n  release_statuses:\n    - 429\n    - 600\n"))
        #expect(issue?.description == "test.yaml:6:7: idempotency.release_statuses[1]: must be between 100 and 599, got 600")
        let twice = singleIssue(withUpstream("idempotency:\n  release_statuses: [503, 503]\n"))
        #expect(twice?.path == "idempotency.release_statuses[1]")
        #expect(twice?.message == "503 is listed twice")
    }

    @Test func methods() throws {
        #expect(try parse(withUpstream("idempotency: { methods: [POST, PUT, DELETE, PATCH] }")).idempotency.methods == ["POST", "PUT", "DELETE", "PATCH"])
        let safe = singleIssue(withUpstream("idempotency:\n  methods: [POST, GET]\n"))
        #expect(safe?.path == "idempotency.methods[1]")
        #expect(safe?.line == 4)
        #expect(safe?.message.hasPrefix("GET is a safe method and needs no idempotency key") == true)
        let lower = singleIssue(withUpstream("idempotency:\n  methods: [post]\n"))
        #expect(lower?.message == "method names are case-sensitive; use POST, got \"post\"")
        let custom = singleIssue(withUpstream("idempotency:\n  methods: [PURGE]\n"))
        #expect(custom?.message.hasPrefix("PURGE cannot be guarded") == true)
        let notList = singleIssue(withUpstream("idempotency:\n  methods: POST\n"))
        #expect(notList?.description == "test.yaml:4:3: idempotency.methods: expected a list such as [POST, PATCH], got \"POST\"")
    }

    @Test func headerNames() throws {
        let config = try parse(withUpstream("""
        idempotency:
          header: X-Request-Key
          scope: { header: X-Api-Key }
          fingerprint: { headers: [Content-Type, X-Tenant] }
          replay: { keep_headers: [Set-Cookie] }
        """))
        #expect(config.idempotency.header == "X-Request-Key")
        #expect(config.idempotency.scopeHeader == "X-Api-Key")
        #expect(config.idempotency.fingerprintHeaders == ["Content-Type", "X-Tenant"])
        #expect(config.idempotency.replayKeepHeaders == ["Set-Cookie"])
        let bad = singleIssue(withUpstream("idempotency:\n  header: \"Idempotency Key\"\n"))
        #expect(bad?.description.hasPrefix("test.yaml:4:3: idempotency.header: expected a header name") == true)
        let badItem = singleIssue(withUpstream("idempotency:\n  fingerprint:\n    headers: [Content-Type, \"X:Y\"]\n"))
        #expect(badItem?.path == "idempotency.fingerprint.headers[1]")
        #expect(badItem?.line == 5)
        let dup = singleIssue(withUpstream("idempotency:\n  fingerprint: { headers: [Content-Type, content-type] }\n"))
        #expect(dup?.message == "content-type is listed twice")
        let hop = singleIssue(withUpstream("idempotency:\n  replay: { keep_headers: [Set-Cookie, Transfer-Encoding] }\n"))
        #expect(hop?.path == "idempotency.replay.keep_headers[1]")
        #expect(hop?.message == "Transfer-Encoding is a hop-by-hop header and is never replayed")
    }

    @Test func scopeHeaderMayBeEmpty() throws {
        #expect(try parse(withUpstream("idempotency: { scope: { header: \"\" } }")).idempotency.scopeHeader == "")
        #expect(try parse(withUpstream("idempotency:\n  scope:\n    header:\n")).idempotency.scopeHeader == "")
        let missing = singleIssue(withUpstream("idempotency: { header: \"\" }"))
        #expect(missing?.path == "idempotency.header")
    }

    @Test func jsonPointers() throws {
        let config = try parse(withUpstream("""
        idempotency:
          fingerprint:
            body: json
            ignore_fields: ["", /meta/request_id, /a~1b/c~0d, /items/0]
        """))
        #expect(config.idempotency.ignoreFields == ["", "/meta/request_id", "/a~1b/c~0d", "/items/0"])
        #expect(config.idempotency.ignoreFieldTokens == [[], ["meta", "request_id"], ["a/b", "c~d"], ["items", "0"]])

        let noSlash = singleIssue(withUpstream("idempotency:\n  fingerprint:\n    body: json\n    ignore_fields: [meta]\n"))
        #expect(noSlash?.path == "idempotency.fingerprint.ignore_fields[0]")
        #expect(noSlash?.line == 6)
        #expect(noSlash?.message.hasPrefix("expected a JSON Pointer") == true)
        let badEscape = singleIssue(withUpstream("idempotency:\n  fingerprint: { body: json, ignore_fields: [/a~2] }\n"))
        #expect(badEscape?.message.contains("~ must be followed by 0 or 1") == true)
    }

    @Test func ignoreFieldsNeedJSONBody() {
        let issue = singleIssue(withUpstream("idempotency:\n  fingerprint:\n    ignore_fields: [/ts]\n"))
        #expect(issue?.description == "test.yaml:5:5: idempotency.fingerprint.ignore_fields: ignore_fields needs fingerprint.body: json (body is raw)")
    }
}

@Suite struct AddressTests {
    @Test(arguments: [
        ("0.0.0.0:8080", "0.0.0.0", 8080),
        ("127.0.0.1:1", "127.0.0.1", 1),
        ("localhost:8080", "127.0.0.1", 8080),
        ("'[::]:8080'", "::", 8080),
        ("'[::1]:65535'", "::1", 65535),
        ("\":9000\"", "0.0.0.0", 9000),
        ("127.0.0.1:0", "127.0.0.1", 0),
    ])
    func validListen(text: String, host: String, port: Int) throws {
        let listen = try parse(withUpstream("listen: \(text)")).listen
        #expect(listen.host == host)
        #expect(Int(listen.port) == port)
    }

    @Test(arguments: ["0.0.0.0", "0.0.0.0:65536", "0.0.0.0:http", "example.com:80", "::1:8080", "'[::1'", "256.0.0.1:80", "'[fe80::zz]:80'", "1.2.3:80"])
    func invalidListen(text: String) {
        let issue = singleIssue(withUpstream("listen: \(text)"))
        #expect(issue?.path == "listen")
        #expect(issue?.line == 3)
    }

    @Test func listenDescriptionBracketsIPv6() {
        #expect(SocketAddressSpec(host: "::1", port: 80).description == "[::1]:80")
        #expect(SocketAddressSpec(host: "10.0.0.1", port: 80).description == "10.0.0.1:80")
    }

    @Test(arguments: [
        ("http://127.0.0.1:3000", "127.0.0.1", 3000, ""),
        ("http://api", "api", 80, ""),
        ("HTTP://legacy-api.internal:8081/", "legacy-api.internal", 8081, ""),
        ("http://[::1]:3000/api/v2/", "::1", 3000, "/api/v2"),
        ("http://backend_1:9000/prefix", "backend_1", 9000, "/prefix"),
    ])
    func upstreamURLs(url: String, host: String, port: Int, pathPrefix: String) throws {
        let upstream = try parse("upstream: { url: \"\(url)\" }").upstream
        #expect(upstream.url == url)
        #expect(upstream.host == host)
        #expect(Int(upstream.port) == port)
        #expect(upstream.pathPrefix == pathPrefix)
    }

    @Test func httpsUpstreamIsRejected() {
        let issue = singleIssue("upstream:\n  url: https://api.example.com\n")
        #expect(issue?.description == "test.yaml:2:3: upstream.url: https upstreams are not supported; terminate TLS in front (got \"https://api.example.com\")")
    }

    @Test(arguments: ["ftp://x", "127.0.0.1:3000", "http://", "http://:80", "http://h:0", "http://h:99999", "http://u:p@h", "http://h/a?b=c", "http://h/a#f", "http://bad host/", "http://-h-/"])
    func invalidUpstreamURLs(url: String) {
        let issue = singleIssue("upstream:\n  url: \"\(url)\"\n")
        #expect(issue?.path == "upstream.url")
        #expect(issue?.line == 2)
    }

    @Test func redisURLs() throws {
        func redis(_ url: String) throws -> RedisConfig {
            try parse(withUpstream("store:\n  redis:\n    url: \"\(url)\"\n")).store.redis
        }
        let plain = try redis("redis://cache:6380/3")
        #expect(plain.host == "cache")
        #expect(plain.port == 6380)
        #expect(plain.database == 3)
        #expect(plain.password == nil)
        #expect(plain.username == nil)
        let password = try redis("redis://:s3cr%40t@10.0.0.5:6379/0")
        #expect(password.password == "s3cr@t")
        #expect(password.username == nil)
        #expect(password.host == "10.0.0.5")
        let acl = try redis("redis://app:pw@redis/")
        #expect(acl.username == "app")
        #expect(acl.password == "pw")
        #expect(acl.port == 6379)
        #expect(acl.database == 0)
        let bare = try redis("redis://secret@localhost")
        #expect(bare.password == "secret")
        #expect(bare.username == nil)
        let v6 = try redis("redis://[::1]:7000/15")
        #expect(v6.host == "::1")
        #expect(v6.port == 7000)
        #expect(v6.database == 15)
        #expect(try redis("redis://h:6379/42").database == 42)
    }

    @Test(arguments: ["http://h:6379", "rediss://h:6379/x", "redis://h:6379/x", "redis://h:6379/-1", "redis://:6379/0", "redis://h:notaport/0", "redis://h:6379/0?timeout=1"])
    func invalidRedisURLs(url: String) {
        let issue = singleIssue(withUpstream("store:\n  redis:\n    url: \"\(url)\"\n"))
        #expect(issue?.path == "store.redis.url")
        #expect(issue?.line == 5)
        #expect(issue?.column == 5)
    }

    @Test func redisPasswordIsNotEchoed() {
        let issue = singleIssue(withUpstream("store:\n  redis:\n    url: \"rediss://:hunter2@h:6379/x\"\n"))
        #expect(issue?.message.contains("hunter2") == false)
        #expect(issue?.message.contains("rediss://:***@h:6379/x") == true)
    }

    @Test func keyPrefixCannotBreakHashTag() throws {
        #expect(try parse(withUpstream("store: { redis: { key_prefix: \"\" } }")).store.redis.keyPrefix == "")
        let issue = singleIssue(withUpstream("store:\n  redis:\n    key_prefix: \"idem:{x}\"\n"))
        #expect(issue?.path == "store.redis.key_prefix")
        #expect(issue?.line == 5)
    }
}
