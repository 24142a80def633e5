import Config
import Testing

@Suite struct EnvironmentTests {
    let yaml = """
    listen: ${LISTEN:-0.0.0.0:8080}
    upstream:
      url: ${UPSTREAM_URL}
    store:
      backend: ${STORE_BACKEND:-memory}
      redis:
        url: "redis://:${REDIS_PASSWORD}@${REDIS_HOST:-127.0.0.1}:6379/${REDIS_DB:-0}"
    """

    @Test func setVariablesAreUsed() throws {
        let config = try parse(yaml, environment: [
            "LISTEN": "127.0.0.1:9999",
            "UPSTREAM_URL": "http://app:5000/base",
            "STORE_BACKEND": "redis",
            "REDIS_PASSWORD": "pw",
            "REDIS_HOST": "redis.svc",
            "REDIS_DB": "2",
        ])
        #expect(config.listen.description == "127.0.0.1:9999")
        #expect(config.upstream.url == "http://app:5000/base")
        #expect(config.upstream.host == "app")
        #expect(config.upstream.pathPrefix == "/base")
        #expect(config.store.backend == .redis)
        #expect(config.store.redis.password == "pw")
        #expect(config.store.redis.host == "redis.svc")
        #expect(config.store.redis.database == 2)
    }

    @Test func defaultsApplyWhenUnsetOrEmpty() throws {
        let config = try parse(yaml, environment: ["UPSTREAM_URL": "http://127.0.0.1:3000", "REDIS_PASSWORD": "", "LISTEN": ""])
        #expect(config.listen.description == "0.0.0.0:8080")
        #expect(config.store.backend == .memory)
        #expect(config.store.redis.host == "127.0.0.1")
        #expect(config.store.redis.password == nil)
        #expect(config.store.redis.database == 0)
    }

    @Test func missingVariableNamesVariablePathAndLine() {
        let error = failure(yaml, environment: ["REDIS_PASSWORD": "x"])
        #expect(error.issues.count == 1)
        #expect(error.description == "test.yaml:3:3: upstream.url: environment variable UPSTREAM_URL is not set (write ${UPSTREAM_URL:-default} to give a default)")
    }

    @Test func everyMissingVariableIsReported() {
        let error = failure(yaml, environment: [:])
        #expect(error.issues.map(\.path) == ["upstream.url", "store.redis.url"])
        #expect(error.issues.map(\.line) == [3, 7])
        #expect(error.issues[1].message.contains("REDIS_PASSWORD"))
    }

    @Test func expandedValueIsTypedAfterwards() {
        let issue = singleIssue(withUpstream("idempotency:\n  ttl: ${TTL}\n"), environment: ["TTL": "forever"])
        #expect(issue?.description == "test.yaml:4:3: idempotency.ttl: expected a duration such as 250ms, 2s, 5m or 24h, got \"forever\" (from \"${TTL}\")")
    }

    @Test func expandedNumbersAndBooleans() throws {
        let config = try parse(withUpstream("""
        workers: ${WORKERS:-auto}
        idempotency:
          required: ${REQUIRE_KEY:-false}
          key_max_length: ${KEY_MAX}
          methods: [POST, "${EXTRA_METHOD:-PATCH}"]
        """), environment: ["WORKERS": "8", "REQUIRE_KEY": "true", "KEY_MAX": "64", "EXTRA_METHOD": "PUT"])
        #expect(config.workers == 8)
        #expect(config.idempotency.required)
        #expect(config.idempotency.keyMaxLength == 64)
        #expect(config.idempotency.methods == ["POST", "PUT"])
    }

    @Test func literalDollarsAndEscapes() throws {
        let config = try parse(withUpstream("store:\n  redis:\n    url: \"redis://:pa$$w0rd$@h:6379/0\"\n"))
        #expect(config.store.redis.password == "pa$$w0rd$")
        let escaped = try parse(withUpstream("store:\n  redis:\n    url: \"redis://:a$${NOT_A_VAR}b@h:6379/0\"\n"))
        #expect(escaped.store.redis.password == "a${NOT_A_VAR}b")
    }

    @Test func malformedReferences() {
        let open = singleIssue(withUpstream("store:\n  redis:\n    key_prefix: \"${PREFIX\"\n"))
        #expect(open?.description == "test.yaml:5:5: store.redis.key_prefix: invalid variable reference \"${PREFIX\": missing closing }")
        let operatorIssue = singleIssue(withUpstream("store:\n  redis:\n    key_prefix: \"${PREFIX:=x}\"\n"))
        #expect(operatorIssue?.message == "invalid variable reference \"${PREFIX:=x}\": use ${NAME} or ${NAME:-default}")
        let empty = singleIssue(withUpstream("store:\n  redis:\n    key_prefix: \"${}\"\n"))
        #expect(empty?.message.hasPrefix("invalid variable reference \"${}\"") == true)
    }

    @Test func emptyDefaultIsEmpty() throws {
        let config = try parse(withUpstream("idempotency:\n  scope:\n    header: ${SCOPE_HEADER:-}\n"))
        #expect(config.idempotency.scopeHeader == "")
    }

    @Test func keysAndCommentsAreNotExpanded() {
        let issue = singleIssue(withUpstream("${KEY}: 1  # ${ALSO_NOT}\n"))
        #expect(issue?.path == "${KEY}")
        #expect(issue?.message.hasPrefix("unknown key") == true)
    }
}
