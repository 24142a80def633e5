import Foundation
import Glibc
import Idempotency
import Testing
import TestSupport

/// Inspecting and purging records (SPEC §7, §8), through the admin API and the CLI, on both
/// stores: how an operator resolves an `unknown` record.
@Suite(.serialized) struct RecordsTests {
    static let scope = "Bearer caller-1"
    static let encodedScope = "Bearer+caller-1"

    func json(_ response: TestClient.Response) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(response.bodyText.utf8))
        return try #require(object as? [String: Any])
    }

    @Test(arguments: StoreKind.allCases)
    func aCompletedRecordIsShownThenPurgedAndTheKeyRunsAgain(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: store.yaml() + "idempotency: { ttl: 1h }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try proxy.request(post(key: key))
        #expect(first.status == 201)
        let started = Date()

        let shown = try proxy.admin("/records?key=\(key)&scope=\(Self.encodedScope)")
        #expect(shown.status == 200)
        #expect(shown.value("content-type") == "application/json")
        let record = try json(shown)
        #expect(record["state"] as? String == "completed")
        #expect(record["status"] as? Int == 201)
        #expect(record["body_bytes"] as? Int == first.body.count)
        #expect((record["fingerprint"] as? String)?.count == 64)
        let expiresIn = try #require(record["expires_in_ms"] as? Int)
        #expect(expiresIn > 3_540_000 && expiresIn <= 3_600_000)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let createdText = try #require(record["created_at"] as? String)
        let created = try #require(formatter.date(from: createdText))
        #expect(abs(created.timeIntervalSince(started)) < 5)
        #expect(record["key_hash"] as? String == String(StorageKey.digestHex(scope: Array(Self.scope.utf8), key: key).prefix(16)))
        // The key as the client sent it, quotes and all, finds the same record.
        #expect(try proxy.admin("/records?key=%22\(key)%22&scope=\(Self.encodedScope)").status == 200)

        // Another caller's scope, no scope, another key: nothing.
        #expect(try proxy.admin("/records?key=\(key)&scope=Bearer+caller-2").status == 404)
        // Every guarded request is scoped here: a lookup without a scope is a usage error.
        let unscoped = try proxy.admin("/records?key=\(key)")
        #expect(unscoped.status == 400)
        #expect(unscoped.bodyText.contains("Authorization"))
        #expect(try proxy.admin("/records?key=\(uniqueKey())&scope=\(Self.encodedScope)").status == 404)
        #expect(try proxy.admin("/records?scope=\(Self.encodedScope)").status == 400)
        #expect(try proxy.admin("/records?key=a%2").status == 400)
        let refused = try proxy.admin("POST", "/records?key=\(key)")
        #expect(refused.status == 405)
        #expect(refused.value("allow") == "GET, HEAD, DELETE")

        // The retry is a replay until the record is purged; then the key runs again.
        #expect(try proxy.request(post(key: key)).value("idempotent-replayed") == "true")
        #expect(origin.count == 1)
        #expect(try proxy.admin("DELETE", "/records?key=\(key)&scope=\(Self.encodedScope)").status == 204)
        #expect(try proxy.admin("/records?key=\(key)&scope=\(Self.encodedScope)").status == 404)
        #expect(try proxy.admin("DELETE", "/records?key=\(key)&scope=\(Self.encodedScope)").status == 404)
        let again = try proxy.request(post(key: key))
        #expect(again.status == 201)
        #expect(again.value("idempotent-replayed") == nil)
        #expect(origin.count == 2)
    }

    /// The SPEC §9 procedure: the origin resets mid-response, the key is held `unknown`, the
    /// operator looks, checks the upstream, purges; the client's retry then executes.
    @Test(arguments: StoreKind.allCases)
    func anUnknownRecordIsPurgedAndTheRetryExecutes(_ store: StoreKind) throws {
        let calls = CallCounter()
        let upstream = TestUpstream { _ in
            calls.next() == 1 ? .partial(status: 200, declared: 100, sent: 10) : .respond(status: 201, headers: [], body: Array("{\"ok\":true}".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml())
        defer { proxy.stop() }
        let key = uniqueKey()
        _ = try? proxy.request(post(key: key))  // the client sees a truncated response
        let held = try proxy.request(post(key: key))
        #expect(held.status == 409)
        #expect(held.bodyText.contains("outcome-unknown"))

        let shown = try proxy.admin("/records?key=\(key)&scope=\(Self.encodedScope)")
        #expect(shown.status == 200)
        let record = try json(shown)
        #expect(record["state"] as? String == "unknown")
        #expect(record["status"] is NSNull)
        #expect(record["body_bytes"] as? Int == 0)

        #expect(try proxy.admin("DELETE", "/records?key=\(key)&scope=\(Self.encodedScope)").status == 204)
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 201)
        #expect(calls.count == 2)
    }

    @Test func anInFlightRecordShowsItsLease() throws {
        let origin = CountingOrigin()
        origin.delay = 1.5
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: "idempotency: { lease: 10s }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key, settle: 300_000)
        let record = try json(proxy.admin("/records?key=\(key)&scope=\(Self.encodedScope)"))
        #expect(record["state"] as? String == "in_flight")
        #expect(record["status"] is NSNull)
        let lease = try #require(record["lease_expires_in_ms"] as? Int)
        #expect(lease > 5000 && lease <= 10_000)
        #expect(try original.readResponse().status == 201)
    }

    /// A client that resets while its `/records` answer waits on the store: epoll reports the
    /// hang-up on every turn whatever the interest, so the admin connection must close then,
    /// not when the store answers (here, not for seconds).
    @Test func anAdminClientThatResetsWhileItsAnswerWaitsIsClosedAtOnce() throws {
        let relay = try FaultRelay(targetPort: StoreKind.redisPort)
        defer { relay.stop() }
        let proxy = try proxyThrough(relay, commandTimeout: "5s")
        defer { proxy.stop() }
        relay.withholdReplies = true
        defer { relay.withholdReplies = false }
        do {
            let client = try TestClient(port: try #require(proxy.server.adminPort))
            try client.send("GET /records?key=k&scope=\(Self.encodedScope) HTTP/1.1\r\nHost: admin\r\n\r\n")
            usleep(100_000)
            #expect(proxy.server.adminConnections == 1, "the answer should be waiting on the store")
            client.resetOnClose()
        }
        var open = proxy.server.adminConnections
        for _ in 0..<50 where open > 0 {
            usleep(10_000)
            open = proxy.server.adminConnections
        }
        #expect(open == 0, "the reset connection is still open")
        #expect(try proxy.admin("/healthz").status == 200)
    }

    /// With scoping off (`scope.header: ""` for every guarded request) records have no scope:
    /// a lookup that gives one is an error, on `/records` and in the CLI, not a "no record".
    /// A route that turns scoping back on makes scoped lookups meaningful again.
    @Test func aScopeIsRefusedWhenScopingIsOff() throws {
        let off = "idempotency: { scope: { header: \"\" } }\n"
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: off)
        defer { proxy.stop() }
        let key = uniqueKey()
        #expect(try proxy.request(post(key: key)).status == 201)
        let refused = try proxy.admin("/records?key=\(key)&scope=\(Self.encodedScope)")
        #expect(refused.status == 400)
        #expect(refused.bodyText.contains("scoping is off"))
        #expect(try proxy.admin("/records?key=\(key)").status == 200)
        let cli = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope], yaml: off)
        #expect(cli.status == 2)
        #expect(cli.stderr.contains("scoping is off"), "\(cli.stderr)")

        let mixed = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: off + "routes:\n  - match: { path_prefix: /v1/payments }\n    scope: { header: Authorization }\n")
        defer { mixed.stop() }
        #expect(try mixed.request(post(key: key)).status == 201)
        #expect(try mixed.admin("/records?key=\(key)&scope=\(Self.encodedScope)").status == 200)
        #expect(try mixed.admin("/records?key=\(key)").status == 404)
    }

    /// A claim whose owner died (its lease ran out, nothing told the store) is reported as what
    /// the next request then finds, and the next request does find exactly that.
    @Test(arguments: ["hold", "release"])
    func anExpiredLeaseIsReportedAsTheNextRequestFindsIt(_ indeterminate: String) throws {
        let clock = ManualClock()
        let store = MemoryStore(clock: { clock.nowMillis })
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), yaml: "idempotency: { indeterminate: \(indeterminate) }\n", memoryStore: store)
        defer { proxy.stop() }
        let key = uniqueKey()
        let stored = storageKey(prefix: "idem:", scope: Array(Self.scope.utf8), key: key)
        // The proxy's own request leaves a record with the fingerprint a retry will have; it is
        // replaced by a claim of that fingerprint whose owner never comes back.
        #expect(try proxy.request(post(key: key)).status == 201)
        var fingerprint: [UInt8] = []
        store.inspect(key: stored) { fingerprint = (try? $0.get())??.record.fingerprint ?? [] }
        store.purge(key: stored) { _ in }
        store.claim(key: stored, owner: Array(repeating: 7, count: 16), fingerprint: fingerprint, lease: .seconds(30), ttl: .seconds(3600),
                    expiredLease: .hold) { #expect((try? $0.get()) == .claimed) }
        clock.advance(millis: 31_000)

        let record = try json(proxy.admin("/records?key=\(key)&scope=\(Self.encodedScope)"))
        #expect(record["state"] as? String == "in_flight")
        #expect(record["lease_expired"] as? Bool == true)
        #expect(record["effective_state"] as? String == (indeterminate == "hold" ? "unknown" : "absent"))
        let next = try proxy.request(post(key: key))
        if indeterminate == "hold" {
            #expect(next.status == 409)
            #expect(next.bodyText.contains("outcome-unknown"))
            #expect(origin.count == 1)
        } else {
            #expect(next.status == 201)
            #expect(origin.count == 2)
        }
    }

    /// A proxy on `store` with an admin listener, in front of an origin that answers after
    /// `originDelay` seconds, with `lease`; its config (less the admin section) and admin port.
    static func proxyWithAdmin(
        _ store: StoreKind, originDelay: Double, lease: String
    ) throws -> (origin: CountingOrigin, proxy: ProxyHarness, adminPort: UInt16, yaml: String) {
        let origin = CountingOrigin()
        origin.delay = originDelay
        let adminPort = RedisServer.freePort()
        let yaml = store.yaml() + "idempotency: { lease: \(lease) }\n"
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: yaml, admin: "{ listen: 127.0.0.1:\(adminPort) }")
        return (origin, proxy, adminPort, yaml)
    }

    /// Purging a record whose request is still running would let a retry run upstream beside
    /// it: `/records` answers 409 and the CLI exits 2, unless forced (`force=1`, `--force`).
    @Test(arguments: StoreKind.allCases)
    func aRecordStillInFlightIsPurgedOnlyWhenForced(_ store: StoreKind) throws {
        let (origin, proxy, adminPort, yaml) = try Self.proxyWithAdmin(store, originDelay: 3, lease: "10s")
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key, settle: 300_000)
        let path = "/records?key=\(key)&scope=\(Self.encodedScope)"

        let refused = try proxy.admin("DELETE", path)
        #expect(refused.status == 409)
        #expect(refused.bodyText.contains("still in flight"))
        let lease = try #require(try json(refused)["lease_expires_in_ms"] as? Int)
        #expect(lease > 5000 && lease <= 10_000)
        #expect(try proxy.admin("GET", path + "&force=1").status == 400)
        let cliYAML = yaml + "admin: { listen: 127.0.0.1:\(adminPort) }\n"
        let cli = try IdemproxyCLI.run(["records", "purge", "--key", key, "--scope", Self.scope], yaml: cliYAML)
        #expect(cli.status == 2)
        #expect(cli.stderr.contains("still in flight") && cli.stderr.contains("--force"), "\(cli.stderr)")
        #expect(try json(proxy.admin(path))["state"] as? String == "in_flight")
        // The retry still finds the claim.
        #expect(try proxy.request(post(key: key)).status == 409)

        let forced = try IdemproxyCLI.run(["records", "purge", "--key", key, "--scope", Self.scope, "--force"], yaml: cliYAML)
        #expect(forced.status == 0, "\(forced.stdout)\(forced.stderr)")
        #expect(try proxy.admin(path).status == 404)
        #expect(try original.readResponse().status == 201)
        #expect(origin.count == 1)
    }

    /// An owner whose record was purged while its request ran finds it gone when it completes:
    /// its lease is counted lost once, the client still gets the upstream's answer, and nothing
    /// is stored in the purged record's place (so the key runs again). The lease is long, so no
    /// refresh runs first: the completion itself must notice. The origin takes 3 s: a forced
    /// purge on Redis answers only once every worker has dropped the key from its replay cache,
    /// which on a busy machine took most of a second, and the completion must come after it.
    @Test(arguments: StoreKind.allCases)
    func anOwnerWhoseRecordWasPurgedCountsItsLeaseLostAtCompletion(_ store: StoreKind) throws {
        let (origin, proxy, _, _) = try Self.proxyWithAdmin(store, originDelay: 3, lease: "60s")
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key, settle: 200_000)
        let path = "/records?key=\(key)&scope=\(Self.encodedScope)"
        #expect(try proxy.admin("DELETE", path + "&force=1").status == 204)
        #expect(proxy.server.metrics.lostLeases.load(ordering: .relaxed) == 0)
        #expect(try original.readResponse().status == 201)
        #expect(eventually { proxy.server.metrics.lostLeases.load(ordering: .relaxed) == 1 })
        #expect(try proxy.admin(path).status == 404)
        #expect(try proxy.request(post(key: key)).status == 201)
        #expect(origin.count == 2)
    }

    @Test func recordsNeedTheTokenWhenOneIsSet() throws {
        let proxy = try ProxyHarness(admin: "{ listen: 127.0.0.1:0, token: s3cret-token_1 }")
        defer { proxy.stop() }
        let path = "/records?key=k&scope=\(Self.encodedScope)"
        #expect(try proxy.admin(path).status == 403)
        #expect(try proxy.admin(path, authorization: "Bearer wrong-token_1").status == 403)
        #expect(try proxy.admin(path, authorization: "Bearer s3cret-token_").status == 403)
        #expect(try proxy.admin(path, authorization: "Basic s3cret-token_1").status == 403)
        #expect(try proxy.admin("DELETE", path, authorization: "Bearer wrong").status == 403)
        #expect(try proxy.admin(path, authorization: "Bearer s3cret-token_1").status == 404)
        #expect(try proxy.admin(path, authorization: "bearer s3cret-token_1").status == 404)
        // Probes and scrapes need no token.
        #expect(try proxy.admin("/healthz").status == 200)
        #expect(try proxy.admin("/metrics").status == 200)
    }

    @Test func aNonLoopbackListenerWithoutATokenRefusesRecords() throws {
        let proxy = try ProxyHarness(admin: "{ listen: 0.0.0.0:0 }")
        defer { proxy.stop() }
        let refused = try proxy.admin("/records?key=k&scope=\(Self.encodedScope)")
        #expect(refused.status == 403)
        #expect(refused.bodyText.contains("admin.token"))
        #expect(try proxy.admin("DELETE", "/records?key=k").status == 403)
        #expect(try proxy.admin("/healthz").status == 200)
        #expect(try proxy.admin("/readyz").status == 200)
        #expect(try proxy.admin("/metrics").status == 200)
    }

    @Test func checkConfigWarnsAboutANonLoopbackAdminWithoutToken() throws {
        let open = try IdemproxyCLI.run(["check-config"], yaml: "admin: { listen: 0.0.0.0:9090 }\n")
        #expect(open.status == 0)
        #expect(open.stderr.contains("warning"))
        #expect(open.stderr.contains("admin.token"))
        let tokened = try IdemproxyCLI.run(["check-config"], yaml: "admin: { listen: 0.0.0.0:9090, token: abc.DEF-123_4567890 }\n")
        #expect(tokened.status == 0)
        #expect(tokened.stderr.isEmpty)
        let short = try IdemproxyCLI.run(["check-config"], yaml: "admin: { listen: 0.0.0.0:9090, token: change-me }\n")
        #expect(short.status == 0)
        #expect(short.stderr.contains("warning") && short.stderr.contains("shorter than 16 characters"), "\(short.stderr)")
        let loopback = try IdemproxyCLI.run(["check-config"], yaml: "admin: { listen: 127.0.0.1:9090 }\n")
        #expect(loopback.stderr.isEmpty)
        let bad = try IdemproxyCLI.run(["check-config"], yaml: "admin:\n  listen: 0.0.0.0:9090\n  token: \"two words\"\n")
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("admin.token"))
        #expect(bad.stderr.contains(".yaml:3:"))
    }

    /// One command to the shared Redis, in RESP (values may hold any byte); returns the reply.
    func redis(_ arguments: [String]) throws -> String {
        let client = try TestClient(port: StoreKind.redisPort, timeoutSeconds: 2)
        var command = "*\(arguments.count)\r\n"
        for argument in arguments { command += "$\(argument.utf8.count)\r\n\(argument)\r\n" }
        try client.send(command)
        try client.fill()
        return String(decoding: client.buffer, as: UTF8.self)
    }

    /// A record this version cannot read (a newer format met during a rolling upgrade, or a
    /// damaged value) exists: `pass_through` must not forward around it.
    @Test func anUnreadableRecordIsNeverPassedThrough() throws {
        let prefix = StoreKind.uniquePrefix()
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), yaml: StoreKind.redis.yaml(unavailable: "pass_through", prefix: prefix))
        defer { proxy.stop() }
        let key = uniqueKey()
        let stored = storageKey(prefix: prefix, scope: Array(Self.scope.utf8), key: key)
        #expect(try redis(["SET", stored, "\u{03}\u{02}" + String(repeating: "\u{00}", count: 67)]).hasPrefix("+OK"))
        let response = try proxy.request(post(key: key))
        #expect(response.status == 503)
        #expect(response.bodyText.contains("store-unavailable"))
        #expect(origin.count == 0)
        // The store itself still works: another key passes through nothing and runs guarded.
        #expect(try proxy.request(post(key: uniqueKey())).status == 201)
        #expect(origin.count == 1)
    }

    // MARK: the CLI

    /// With Redis the CLI needs no running proxy: the record is read and purged in Redis.
    @Test func theCLIReadsAndPurgesRedisDirectly() throws {
        let prefix = StoreKind.uniquePrefix()
        let storeYAML = StoreKind.redis.yaml(prefix: prefix)
        let key = uniqueKey()
        let origin = CountingOrigin()
        do {
            let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: storeYAML)
            #expect(try proxy.request(post(key: key)).status == 201)
            proxy.stop()
        }
        let shown = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope], yaml: storeYAML)
        #expect(shown.status == 0)
        #expect(shown.stdout.contains("state        completed"))
        #expect(shown.stdout.contains("status       201"))
        #expect(shown.stdout.contains("key hash     " + String(StorageKey.digestHex(scope: Array(Self.scope.utf8), key: key).prefix(16))))
        let asJSON = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope, "--json"], yaml: storeYAML)
        #expect(asJSON.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(asJSON.stdout.utf8)) as? [String: Any]
        #expect(object?["state"] as? String == "completed")
        #expect(object?["status"] as? Int == 201)

        let otherScope = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", "Bearer caller-2"], yaml: storeYAML)
        #expect(otherScope.status == 1)
        #expect(try IdemproxyCLI.run(["records", "purge", "--key", key, "--scope", Self.scope], yaml: storeYAML).status == 0)
        #expect(try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope], yaml: storeYAML).status == 1)
        #expect(try IdemproxyCLI.run(["records", "purge", "--key", key, "--scope", Self.scope], yaml: storeYAML).status == 1)

        let unreachable = try IdemproxyCLI.run(
            ["records", "get", "--key", key, "--scope", Self.scope],
            yaml: StoreKind.redis.yaml(url: "redis://127.0.0.1:\(RedisServer.freePort())/0"))
        #expect(unreachable.status == 2)
        #expect(unreachable.stderr.contains("did not answer"))
        let badKey = try IdemproxyCLI.run(["records", "get", "--key", "two words"], yaml: storeYAML)
        #expect(badKey.status == 2)
    }

    /// `records purge` with `min_replicas_acked` waits for replicas as the proxy does: with none
    /// attached it does not report success (the delete could be lost in a failover).
    @Test func theCLIPurgeWaitsForReplicasWhenConfiguredTo() throws {
        let redis = try RedisServer()
        let prefix = StoreKind.uniquePrefix()
        let plain = "store: { backend: redis, redis: { url: \"\(redis.url)\", key_prefix: \"\(prefix)\" } }\n"
        let acked = "store: { backend: redis, redis: { url: \"\(redis.url)\", key_prefix: \"\(prefix)\", min_replicas_acked: 1, replica_ack_timeout: 50ms } }\n"
        let key = uniqueKey()
        do {
            let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: CountingOrigin().responder), yaml: plain)
            #expect(try proxy.request(post(key: key)).status == 201)
            proxy.stop()
        }
        let purge = try IdemproxyCLI.run(["records", "purge", "--key", key, "--scope", Self.scope], yaml: acked)
        #expect(purge.status == 2)
        #expect(purge.stderr.contains("may or may not have been purged"), "\(purge.stderr)")
        #expect(purge.stderr.contains("failover"), "\(purge.stderr)")
        #expect(try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope], yaml: plain).status == 1)
    }

    /// With the memory store the records live in the running proxy: the CLI asks its admin
    /// endpoint, with the token from the same configuration.
    @Test func theCLIAsksTheRunningProxyForTheMemoryStore() throws {
        let adminPort = RedisServer.freePort()
        let admin = "{ listen: 127.0.0.1:\(adminPort), token: cli-token }"
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), admin: admin)
        let configYAML = "admin: \(admin)\n"
        let key = uniqueKey()
        #expect(try proxy.request(post(key: key)).status == 201)

        let shown = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope], yaml: configYAML)
        #expect(shown.status == 0)
        #expect(shown.stdout.contains("state        completed"))
        #expect(shown.stdout.contains("status       201"))
        #expect(shown.stdout.contains("ago)"))
        let asJSON = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope, "--json"], yaml: configYAML)
        #expect(asJSON.stdout.contains("\"state\":\"completed\""))
        let unscoped = try IdemproxyCLI.run(["records", "get", "--key", key], yaml: configYAML)
        #expect(unscoped.status == 2)
        #expect(unscoped.stderr.contains("--scope"))
        // Usage errors exit 2 too (SPEC §7), not ArgumentParser's 64.
        #expect(try IdemproxyCLI.run(["records", "get", "--scope", Self.scope], yaml: configYAML).status == 2)
        #expect(try IdemproxyCLI.run(["records", "get", "--key", key, "--bogus"], yaml: configYAML).status == 2)
        let wrongToken = try IdemproxyCLI.run(
            ["records", "get", "--key", key, "--scope", Self.scope], yaml: "admin: { listen: 127.0.0.1:\(adminPort), token: other }\n")
        #expect(wrongToken.status == 2)
        #expect(wrongToken.stderr.contains("403"))
        #expect(try IdemproxyCLI.run(["records", "purge", "--key", key, "--scope", Self.scope], yaml: configYAML).status == 0)
        #expect(try proxy.request(post(key: key)).value("idempotent-replayed") == nil)
        #expect(origin.count == 2)

        proxy.stop()
        let stopped = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope], yaml: configYAML)
        #expect(stopped.status == 2)
        #expect(stopped.stderr.contains("is the proxy running?"))
    }
}

extension RecordsTests {
    /// `idemproxy records` without get or purge did nothing: exit 2 like any usage error, not
    /// 0 after printing the help. Asking for the help still succeeds.
    @Test func recordsWithoutAnOperationIsAUsageError() throws {
        let bare = try IdemproxyCLI.run(["records"])
        #expect(bare.status == 2, "\(bare.stdout)\(bare.stderr)")
        #expect(bare.stderr.contains("records get or records purge"), "\(bare.stderr)")
        let help = try IdemproxyCLI.run(["records", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("purge"))
    }

    /// A `/records` answer the CLI cannot trust (here from a stand-in admin endpoint) is an
    /// error, exit 2: a time before 1970 used to trap the conversion to Unix milliseconds, and
    /// a negative or fractional count was silently wrapped or truncated.
    @Test(arguments: [
        "\"created_at\":\"1969-12-31T23:59:59.000Z\",\"expires_in_ms\":1000",
        "\"created_at\":\"yesterday\",\"expires_in_ms\":1000",
        "\"created_at\":null,\"expires_in_ms\":-5",
        "\"created_at\":null,\"expires_in_ms\":1000,\"lease_expires_in_ms\":1.5",
    ])
    func theCLIRefusesAnAdminAnswerItCannotRead(_ fields: String) throws {
        let body = "{\"state\":\"completed\",\"status\":201,\"fingerprint\":\"ab\",\(fields),\"body_bytes\":0}"
        let admin = TestUpstream { _ in .untilClose(status: 200, body: Array(body.utf8)) }
        defer { admin.stop() }
        let run = try IdemproxyCLI.run(
            ["records", "get", "--key", "k", "--scope", Self.scope], yaml: "admin: { listen: 127.0.0.1:\(admin.port) }\n")
        #expect(run.status == 2, "\(run.stdout)\(run.stderr)")
        #expect(run.stderr.contains("unexpected /records answer"), "\(run.stderr)")
    }

    /// The same stand-in with a well-formed answer: the readable report.
    @Test func theCLIReadsAnAdminAnswer() throws {
        let body = "{\"state\":\"completed\",\"status\":201,\"fingerprint\":\"ab\",\"created_at\":\"2026-11-30T19:56:18.611Z\",\"expires_in_ms\":null,\"body_bytes\":3}"
        let admin = TestUpstream { _ in .untilClose(status: 200, body: Array(body.utf8)) }
        defer { admin.stop() }
        let run = try IdemproxyCLI.run(
            ["records", "get", "--key", "k", "--scope", Self.scope], yaml: "admin: { listen: 127.0.0.1:\(admin.port) }\n")
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("created      2026-11-30T19:56:18.611Z"))
        #expect(run.stdout.contains("expires in   never"))
    }
}

/// Numbers the upstream's calls, across its connection threads.
final class CallCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var calls = 0
    var count: Int { lock.lock(); defer { lock.unlock() }; return calls }
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        calls += 1
        return calls
    }
}
