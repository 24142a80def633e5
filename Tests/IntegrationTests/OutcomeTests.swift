import Foundation
import Glibc
import Testing
import TestSupport

/// Each row of SPEC §4, through a real proxy to a real origin, on both stores.
@Suite(.serialized) struct OutcomeTests {
    func harness(_ store: StoreKind, origin: CountingOrigin, idempotency: String = "", upstream: [String] = [], extra: String = "") throws -> ProxyHarness {
        try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), upstreamYAML: upstream,
            yaml: store.yaml() + "idempotency: { \(idempotency) }\n" + extra)
    }

    @Test(arguments: StoreKind.allCases)
    func noRecordForwardsThenCompletedReplays(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try harness(store, origin: origin)
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try proxy.request(post(key: key))
        #expect(first.status == 201)
        #expect(first.value("idempotent-replayed") == nil)
        let replay = try proxy.request(post(key: key))
        #expect(replay.status == 201)
        #expect(replay.bodyText == first.bodyText)
        #expect(replay.value("idempotent-replayed") == "true")
        #expect(replay.value("x-request-seen") == "yes")
        // Set-Cookie is not replayed unless replay.keep_headers lists it.
        #expect(first.value("set-cookie") == "session=1")
        #expect(replay.value("set-cookie") == nil)
        #expect(origin.count == 1)
        // The key itself reaches the upstream, so it can deduplicate too (SPEC §9).
        #expect(proxy.upstream.requests.first?.values("idempotency-key") == ["\"\(key)\""])
    }

    @Test(arguments: StoreKind.allCases)
    func inFlightDuplicateGets409WithRetryAfter(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 0.8
        let proxy = try harness(store, origin: origin)
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key, settle: 200_000)
        let duplicate = try proxy.request(post(key: key))
        #expect(duplicate.status == 409)
        #expect(duplicate.value("retry-after") != nil)
        #expect(duplicate.bodyText.contains("in-flight"))
        #expect(try original.readResponse().status == 201)
        #expect(origin.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func inFlightDuplicateWaitsAndGetsTheReplay(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 0.5
        let proxy = try harness(store, origin: origin, idempotency: "concurrent: wait, wait_timeout: 5s")
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key)
        let started = Date()
        let waited = try proxy.request(post(key: key))
        let first = try original.readResponse()
        #expect(waited.status == 201)
        #expect(waited.bodyText == first.bodyText)
        #expect(waited.value("idempotent-replayed") == "true")
        // Woken when the original completed, not after a long poll.
        #expect(Date().timeIntervalSince(started) < 1.5)
        #expect(origin.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func waitingDuplicateGives409AfterWaitTimeout(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 2
        let proxy = try harness(store, origin: origin, idempotency: "concurrent: wait, wait_timeout: 300ms")
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key)
        let started = Date()
        let waited = try proxy.request(post(key: key))
        #expect(waited.status == 409)
        #expect(waited.bodyText.contains("in-flight"))
        #expect(Date().timeIntervalSince(started) < 1.5)
        #expect(try original.readResponse().status == 201)
    }

    @Test(arguments: StoreKind.allCases)
    func otherFingerprintGets422AndNeverReachesTheUpstream(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try harness(store, origin: origin)
        defer { proxy.stop() }
        let key = uniqueKey()
        #expect(try proxy.request(post(key: key, body: "{\"amount\":100}")).status == 201)
        let other = try proxy.request(post(key: key, body: "{\"amount\":999}"))
        #expect(other.status == 422)
        #expect(other.value("content-type") == "application/problem+json")
        #expect(other.bodyText.contains("key-reused"))
        // A different path with the same key is another request too.
        #expect(try proxy.request(post("/v1/refunds", key: key)).status == 422)
        #expect(origin.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func unreachableUpstreamGives502AndReleasesTheKey(_ store: StoreKind) throws {
        let probe = TestUpstream()
        let port = probe.port
        probe.stop()
        let proxy = try ProxyHarness(upstreamPort: port, yaml: store.yaml())
        defer { proxy.stop() }
        let key = uniqueKey()
        let refused = try proxy.request(post(key: key))
        #expect(refused.status == 502)
        #expect(refused.bodyText.contains("upstream-unreachable"))
        // The upstream never saw it, so the key is free: the retry executes.
        let origin = CountingOrigin()
        let revived = TestUpstream(port: port, behaviour: origin.responder)
        defer { revived.stop() }
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 201)
        #expect(origin.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func releaseStatusFreesTheKey(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.status = 503
        let proxy = try harness(store, origin: origin)
        defer { proxy.stop() }
        let key = uniqueKey()
        #expect(try proxy.request(post(key: key)).status == 503)
        origin.status = 201
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 201)
        #expect(retry.value("idempotent-replayed") == nil)
        #expect(origin.count == 2)
    }

    @Test(arguments: StoreKind.allCases)
    func errorStatusesAreStoredAndReplayedLikeAnyOther(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.status = 400
        let proxy = try harness(store, origin: origin)
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try proxy.request(post(key: key))
        let second = try proxy.request(post(key: key))
        #expect(first.status == 400)
        #expect(second.status == 400)
        #expect(second.bodyText == first.bodyText)
        #expect(second.value("idempotent-replayed") == "true")
        #expect(origin.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func timeoutAfterSendingHoldsTheOutcomeAsUnknown(_ store: StoreKind) throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .silent }, upstreamYAML: ["response_timeout: 300ms"], yaml: store.yaml())
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try proxy.request(post(key: key))
        #expect(first.status == 504)
        #expect(first.bodyText.contains("outcome-unknown"))
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 409)
        #expect(retry.bodyText.contains("outcome-unknown"))
        #expect(proxy.upstream.count(method: "POST") == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func timeoutAfterSendingUnderReleaseAllowsARetry(_ store: StoreKind) throws {
        let upstream = TestUpstream { _ in .silent }
        let proxy = try ProxyHarness(upstream: upstream, upstreamYAML: ["response_timeout: 300ms"], yaml: store.yaml() + "idempotency: { indeterminate: release }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        #expect(try proxy.request(post(key: key)).status == 504)
        upstream.setBehaviour { _ in .respond(status: 201, headers: [], body: Array("second".utf8)) }
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 201)
        #expect(upstream.count(method: "POST") == 2)
    }

    @Test(arguments: StoreKind.allCases)
    func resetMidResponseHoldsTheOutcomeAsUnknown(_ store: StoreKind) throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .partial(status: 200, declared: 100, sent: 10) }, yaml: store.yaml())
        defer { proxy.stop() }
        let key = uniqueKey()
        let client = try proxy.client()
        try client.send(post(key: key))
        // The head was already forwarded: the client sees a truncated response.
        #expect(throws: (any Error).self) { _ = try client.readResponse() }
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 409)
        #expect(retry.bodyText.contains("outcome-unknown"))
        #expect(proxy.upstream.count(method: "POST") == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func oversizedResponseIsDeliveredButNotReplayable(_ store: StoreKind) throws {
        let big = String(repeating: "x", count: 4096)
        let proxy = try ProxyHarness(
            upstream: TestUpstream { _ in .respond(status: 201, headers: [], body: Array(big.utf8)) },
            yaml: store.yaml() + "idempotency: { max_stored_body: 1KiB }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try proxy.request(post(key: key))
        #expect(first.status == 201)
        #expect(first.bodyText == big)
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 409)
        #expect(retry.bodyText.contains("replay-unavailable"))
        #expect(retry.bodyText.contains("201"))
        #expect(proxy.upstream.count(method: "POST") == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func clientDisconnectDoesNotCancelTheGuardedRequest(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 0.4
        let proxy = try harness(store, origin: origin)
        defer { proxy.stop() }
        let key = uniqueKey()
        do {
            let leaving = try proxy.client()
            try leaving.send(post(key: key))
            usleep(100_000)
        }  // closed here, while the upstream is still working
        usleep(700_000)
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 201)
        #expect(retry.value("idempotent-replayed") == "true")
        #expect(origin.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func slowUpstreamKeepsItsClaimPastThreeLeases(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 3.3
        let proxy = try harness(store, origin: origin, idempotency: "lease: 1s", upstream: ["response_timeout: 10s"])
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try proxy.client()
        try original.send(post(key: key))
        usleep(2_600_000)
        // Still in flight: the lease was refreshed, so this is neither unknown nor a re-run.
        let duplicate = try proxy.request(post(key: key))
        #expect(duplicate.status == 409)
        #expect(duplicate.bodyText.contains("in-flight"))
        #expect(try original.readResponse().status == 201)
        #expect(try proxy.request(post(key: key)).value("idempotent-replayed") == "true")
        #expect(origin.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func sameKeyUnderTwoCallersExecutesTwiceWithoutCrossReplay(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try harness(store, origin: origin)
        defer { proxy.stop() }
        let key = uniqueKey()
        let alice = try proxy.request(post(key: key, authorization: "Bearer alice"))
        let bob = try proxy.request(post(key: key, authorization: "Bearer bob"))
        #expect(alice.bodyText != bob.bodyText)
        #expect(bob.value("idempotent-replayed") == nil)
        #expect(origin.count == 2)
        #expect(try proxy.request(post(key: key, authorization: "Bearer alice")).bodyText == alice.bodyText)
    }

    @Test(arguments: StoreKind.allCases)
    func canonicalJSONFingerprintIgnoresKeyOrderAndWhitespace(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let json = try harness(store, origin: origin, idempotency: "fingerprint: { body: json }")
        defer { json.stop() }
        let key = uniqueKey()
        #expect(try json.request(post(key: key, body: "{\"a\":1,\"b\":2}")).status == 201)
        let reordered = try json.request(post(key: key, body: "{ \"b\":2, \"a\":1 }"))
        #expect(reordered.value("idempotent-replayed") == "true")
        #expect(origin.count == 1)

        let rawOrigin = CountingOrigin()
        let raw = try harness(store, origin: rawOrigin)
        defer { raw.stop() }
        let rawKey = uniqueKey()
        #expect(try raw.request(post(key: rawKey, body: "{\"a\":1,\"b\":2}")).status == 201)
        #expect(try raw.request(post(key: rawKey, body: "{ \"b\":2, \"a\":1 }")).status == 422)
    }

    @Test(arguments: StoreKind.allCases)
    func keyIntakeRules(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try harness(
            store, origin: origin,
            extra: "routes:\n  - match: { path_prefix: /v1/payments }\n    required: true\n")
        defer { proxy.stop() }
        let missing = try proxy.request(post(key: nil))
        #expect(missing.status == 400)
        #expect(missing.bodyText.contains("missing-key"))
        let invalid = try proxy.request("POST /v1/payments HTTP/1.1\r\nHost: a\r\nIdempotency-Key: \"a\", \"b\"\r\nContent-Length: 0\r\n\r\n")
        #expect(invalid.status == 400)
        #expect(invalid.bodyText.contains("invalid-key"))
        let twice = try proxy.request("POST /v1/payments HTTP/1.1\r\nHost: a\r\nIdempotency-Key: a\r\nIdempotency-Key: a\r\nContent-Length: 0\r\n\r\n")
        #expect(twice.status == 400)
        #expect(origin.count == 0)
        // Outside the required route a missing key is forwarded and counted.
        let before = proxy.server.metrics.value(.noKey)
        #expect(try proxy.request(post("/v1/other", key: nil)).status == 201)
        #expect(proxy.server.metrics.value(.noKey) == before + 1)
        #expect(origin.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func bodyLargerThanMaxRequestBodyGets413(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try harness(store, origin: origin, idempotency: "max_request_body: 16")
        defer { proxy.stop() }
        let declared = try proxy.request(post(key: uniqueKey(), body: String(repeating: "a", count: 17)))
        #expect(declared.status == 413)
        #expect(declared.bodyText.contains("body-too-large"))
        let chunked = try proxy.request("POST /v1/payments HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n")
        #expect(chunked.status == 413)
        #expect(origin.count == 0)
    }

    /// The client leaves while a large guarded response streams to it (back-pressure had
    /// paused the upstream): the exchange still completes and the retry is a full replay.
    @Test(arguments: StoreKind.allCases)
    func clientLeavingMidResponseStillStoresIt(_ store: StoreKind) throws {
        let size = 4 * 1024 * 1024
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .download(total: size) }, yaml: store.yaml() + "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        do {
            let leaving = try proxy.client()
            try leaving.send(post(key: key))
            try leaving.fill()  // the head and some body arrived; then the client goes
        }
        var replay: TestClient.Response?
        for _ in 0..<40 {
            let response = try proxy.request(post(key: key))
            if response.status != 409 { replay = response; break }
            usleep(100_000)
        }
        #expect(replay?.status == 200)
        #expect(replay?.value("idempotent-replayed") == "true")
        #expect(replay?.body.count == size)
        #expect(proxy.upstream.count(method: "POST") == 1)
    }
}
