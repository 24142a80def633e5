import Config
import Testing

@Suite struct RouteTests {
    let yaml = withUpstream("""
    idempotency:
      lease: 10s
      fingerprint: { headers: [Content-Type], body: json, ignore_fields: [/ts] }
    routes:
      - match: { path_prefix: /v1/payments, methods: [POST] }
        required: true
        ttl: 48h
        concurrent: wait
        wait_timeout: 5s
        scope: { header: X-Api-Key }
      - match: { path_prefix: /v1/orders }
        methods: [POST, PUT, DELETE]
        fingerprint: { headers: [] }
        replay: { keep_headers: [Set-Cookie] }
      - match: { path_prefix: /v1/ }
        release_statuses: [409, 429, 503]
        max_request_body: 64KiB
      - match: { path_prefix: /internal/ }
        enabled: false
    """)

    @Test func overridesMergeFieldByField() throws {
        let config = try parse(yaml)
        #expect(config.routes.count == 4)
        let global = config.idempotency
        #expect(global.lease == .seconds(10))

        let payments = config.routes[0].idempotency
        #expect(payments.required)
        #expect(payments.ttl == .seconds(48 * 3600))
        #expect(payments.concurrent == .wait)
        #expect(payments.waitTimeout == .seconds(5))
        #expect(payments.scopeHeader == "X-Api-Key")
        #expect(payments.lease == .seconds(10))
        #expect(payments.fingerprintBody == .json)
        #expect(payments.ignoreFields == ["/ts"])
        #expect(payments.fingerprintHeaders == ["Content-Type"])

        let orders = config.routes[1]
        #expect(orders.methods == nil)
        #expect(orders.idempotency.methods == ["POST", "PUT", "DELETE"])
        #expect(orders.idempotency.fingerprintHeaders == [])
        #expect(orders.idempotency.fingerprintBody == .json)
        #expect(orders.idempotency.replayKeepHeaders == ["Set-Cookie"])
        #expect(orders.idempotency.required == false)

        let v1 = config.routes[2].idempotency
        #expect(v1.releaseStatuses == [409, 429, 503])
        #expect(v1.maxRequestBody == 64 * 1024)
        #expect(v1.maxStoredBody == global.maxStoredBody)

        var expected = global
        expected.releaseStatuses = [409, 429, 503]
        expected.maxRequestBody = 64 * 1024
        #expect(v1 == expected)
        #expect(config.routes[3].enabled == false)
        #expect(config.routes[3].idempotency == global)
    }

    @Test func firstMatchWins() throws {
        let config = try parse(yaml)
        #expect(config.route(forPath: "/v1/payments", method: "POST")?.pathPrefix == "/v1/payments")
        #expect(config.route(forPath: "/v1/payments/123/capture?x=1", method: "POST")?.pathPrefix == "/v1/payments")
        // The payments route only matches POST; PATCH falls through to /v1/.
        #expect(config.route(forPath: "/v1/payments", method: "PATCH")?.pathPrefix == "/v1/")
        #expect(config.route(forPath: "/v1/orders/7", method: "PUT")?.pathPrefix == "/v1/orders")
        #expect(config.route(forPath: "/v1/users", method: "POST")?.pathPrefix == "/v1/")
        #expect(config.route(forPath: "/internal/jobs", method: "POST")?.enabled == false)
        #expect(config.route(forPath: "/v2/anything", method: "POST") == nil)
        #expect(config.route(forPath: "/", method: "POST") == nil)
        #expect(config.route(forPath: "/v1/payments", method: "post")?.pathPrefix == "/v1/")
        #expect(config.routeIndex(forPath: Array("/v1/orders".utf8), method: Array("DELETE".utf8)) == 1)
        #expect(config.route(forPath: Array("/v1/payments".utf8), method: "POST")?.idempotency.required == true)
        #expect(config.route(forPath: "/v1/payments"[...], method: "POST"[...])?.pathPrefix == "/v1/payments")
    }

    @Test func queryDoesNotMatchAndEncodedUnreservedDoes() throws {
        let config = try parse(withUpstream("routes:\n  - match: { path_prefix: /pay }\n"))
        #expect(config.route(forPath: "/p?pay", method: "POST") == nil)
        #expect(config.route(forPath: "/%70ay/1", method: "POST")?.pathPrefix == "/pay")
        #expect(config.route(forPath: "/%2Fpay", method: "POST") == nil)
    }

    @Test func effectiveSettingsPerRequest() throws {
        let config = try parse(yaml)
        #expect(config.idempotency(forPath: "/v1/payments", method: "POST")?.required == true)
        #expect(config.idempotency(forPath: "/v1/orders/1", method: "DELETE")?.methods == ["POST", "PUT", "DELETE"])
        #expect(config.idempotency(forPath: "/v1/orders/1", method: "PATCH") == nil)
        #expect(config.idempotency(forPath: "/internal/x", method: "POST") == nil)
        #expect(config.idempotency(forPath: "/elsewhere", method: "PATCH") == config.defaultIdempotency)
        #expect(config.idempotency(forPath: "/elsewhere", method: "GET") == nil)
    }

    @Test func routeErrorsUseIndexedPaths() {
        let yaml = withUpstream("""
        routes:
          - match: { path_prefix: /a }
          - match: { path_prefix: /b, methods: [post] }
            ttl: 10ms
          - match: { methods: [POST] }
          - required: true
        """)
        let error = failure(yaml)
        #expect(error.description.split(separator: "\n") == [
            "test.yaml:5:41: routes[1].match.methods[0]: method names are case-sensitive; use POST, got \"post\"",
            "test.yaml:6:5: routes[1].ttl: must be at least 1s, got 10ms",
            "test.yaml:7:5: routes[2].match.path_prefix: required key is missing (such as path_prefix: /v1/payments)",
            "test.yaml:8:5: routes[3].match: required key is missing (such as match: { path_prefix: /v1/payments })",
        ])
    }

    @Test func routeOverridesAreValidatedAgainstMergedSettings() {
        let yaml = withUpstream("""
        idempotency:
          lease: 1m
        routes:
          - match: { path_prefix: /fast }
            ttl: 30s
          - match: { path_prefix: /raw }
            fingerprint: { body: raw, ignore_fields: [/x] }
        """)
        let error = failure(yaml)
        #expect(error.description.split(separator: "\n") == [
            "test.yaml:7:5: routes[0].ttl: must be at least lease (1m), got 30s",
            "test.yaml:9:31: routes[1].fingerprint.ignore_fields: ignore_fields needs fingerprint.body: json (body is raw)",
        ])
    }

    @Test func inheritedIgnoreFieldsConflictBlamesRouteBody() {
        let issue = singleIssue(withUpstream("""
        idempotency:
          fingerprint: { body: json, ignore_fields: [/ts] }
        routes:
          - match: { path_prefix: /raw }
            fingerprint: { body: raw }
        """))
        #expect(issue?.path == "routes[0].fingerprint.body")
        #expect(issue?.line == 7)
    }

    @Test func routesCannotNest() {
        let issue = singleIssue(withUpstream("routes:\n  - match: { path_prefix: /a }\n    routes: []\n"))
        #expect(issue?.description == "test.yaml:5:5: routes[0].routes: unknown key; routes cannot be nested inside a route")
        let nested = singleIssue(withUpstream("routes:\n  - match: { path_prefix: /a }\n    idempotency: { required: true }\n"))
        #expect(nested?.message == "unknown key; set idempotency fields directly on the route, such as required: true")
        let misplaced = failure(withUpstream("routes:\n  - path_prefix: /a\n"))
        #expect(misplaced.description.split(separator: "\n") == [
            "test.yaml:4:5: routes[0].path_prefix: unknown key (did you mean match.path_prefix?)",
            "test.yaml:4:5: routes[0].match: required key is missing (such as match: { path_prefix: /v1/payments })",
        ])
    }

    @Test func matchedButUnguardedMethodIsAnError() {
        let issue = singleIssue(withUpstream("routes:\n  - match: { path_prefix: /a, methods: [PUT] }\n    required: true\n"))
        #expect(issue?.path == "routes[0].match.methods[0]")
        #expect(issue?.line == 4)
        #expect(issue?.message == "PUT is not guarded on this route (guarded: POST, PATCH); add it to the route's methods or remove it here")
    }

    @Test func matchMayListSafeMethodsAndDisabledRoutesAnything() throws {
        let config = try parse(withUpstream("""
        routes:
          - match: { path_prefix: /a, methods: [GET, POST] }
          - match: { path_prefix: /b, methods: [PUT] }
            enabled: false
        """))
        #expect(config.routes[0].methods == ["GET", "POST"])
        #expect(config.routes[1].methods == ["PUT"])
    }

    @Test func shadowedRouteIsAnError() {
        let issue = singleIssue(withUpstream("""
        routes:
          - match: { path_prefix: /v1/ }
          - match: { path_prefix: /v1/payments, methods: [POST] }
        """))
        #expect(issue?.description == "test.yaml:5:14: routes[1].match.path_prefix: this route never matches: routes[0] (path_prefix /v1/) comes first and matches all its requests; put the more specific route first")
        let byMethod = singleIssue(withUpstream("""
        routes:
          - match: { path_prefix: /v1/, methods: [POST, PATCH] }
          - match: { path_prefix: /v1/x, methods: [PATCH] }
        """))
        #expect(byMethod?.path == "routes[1].match.path_prefix")
        #expect(throws: Never.self) {
            try parse(withUpstream("""
            routes:
              - match: { path_prefix: /v1/, methods: [POST] }
              - match: { path_prefix: /v1/x }
            """))
        }
    }

    @Test func routesMustBeAListOfMappings() {
        let issue = singleIssue(withUpstream("routes:\n  path_prefix: /a\n"))
        #expect(issue?.description.hasPrefix("test.yaml:3:1: routes: expected a list such as") == true)
        let item = singleIssue(withUpstream("routes:\n  - /a\n"))
        #expect(item?.description == "test.yaml:4:5: routes[0]: expected a mapping of keys, got \"/a\"")
        let empty = singleIssue(withUpstream("routes:\n  - {}\n"))
        #expect(empty?.path == "routes[0]")
        let badPrefix = singleIssue(withUpstream("routes:\n  - match: { path_prefix: \"/a b\" }\n"))
        #expect(badPrefix?.path == "routes[0].match.path_prefix")
        let emptyMethods = singleIssue(withUpstream("routes:\n  - match: { path_prefix: /a, methods: [] }\n"))
        #expect(emptyMethods?.message == "must not be empty (leave methods out to match every method)")
    }

    @Test func programmaticRoutesWork() {
        var config = IdemproxyConfig(upstream: UpstreamConfig(host: "127.0.0.1", port: 3000))
        config.routes = [RouteConfig(pathPrefix: "/x", methods: ["PUT"], idempotency: IdempotencyConfig(methods: ["PUT"], required: true))]
        #expect(config.idempotency(forPath: "/x/1", method: "PUT")?.required == true)
        #expect(config.idempotency(forPath: "/x/1", method: "POST")?.required == false)
    }
}
