import Foundation
import Glibc
import Testing
import TestSupport

/// SPEC §3 and §4 rules that keep records apart and exact: the scope header, the exact bytes
/// of fingerprinted and replayed fields, a record outliving ttl while its lease is refreshed,
/// and the memory store's bound.
@Suite(.serialized) struct ScopeAndBytesTests {
    @Test(arguments: StoreKind.allCases)
    func missingScopeIsRejectedByDefault(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: store.yaml())
        defer { proxy.stop() }
        let key = uniqueKey()
        let refused = try proxy.request(post(key: key, authorization: nil))
        #expect(refused.status == 400)
        #expect(refused.bodyText.contains("missing-scope"))
        #expect(origin.count == 0)
        // An empty scope value identifies nobody either.
        let empty = try proxy.request(post(key: key, authorization: ""))
        #expect(empty.status == 400)
        #expect(empty.bodyText.contains("missing-scope"))
        // A request with neither key nor scope is a key question (SPEC §3).
        let noKey = try proxy.request(post(key: nil, authorization: nil))
        #expect(noKey.status == 201)
        #expect(proxy.server.metrics.value(.missingScope) == 2)
    }

    @Test(arguments: StoreKind.allCases)
    func unscopedForwardsWithoutAClaim(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), yaml: store.yaml() + "idempotency: { scope: { missing: unscoped } }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        // Two cookie-authenticated callers with the same key and body: both execute, neither
        // sees the other's response.
        let first = try proxy.request(post(key: key, authorization: nil))
        let second = try proxy.request(post(key: key, authorization: nil))
        #expect(first.status == 201 && second.status == 201)
        #expect(second.value("idempotent-replayed") == nil)
        #expect(first.bodyText != second.bodyText)
        #expect(origin.count == 2)
        #expect(proxy.server.metrics.value(.unscoped) == 2)
        // Scoped requests stay guarded.
        #expect(try proxy.request(post(key: key)).status == 201)
        #expect(try proxy.request(post(key: key)).value("idempotent-replayed") == "true")
        #expect(origin.count == 3)
    }

    @Test(arguments: StoreKind.allCases)
    func obsTextBytesAreFingerprintedAndReplayedExactly(_ store: StoreKind) throws {
        var response = Array("HTTP/1.1 201 Created\r\nContent-Length: 2\r\nContent-Disposition: attachment; filename=".utf8)
        let obsText: [UInt8] = [0xE9, 0xFF, 0x80]
        response += obsText + Array("\r\n\r\nok".utf8)
        let answer = response
        let upstream = TestUpstream(behaviour: { _ in .raw(answer) })
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml() + "idempotency: { fingerprint: { headers: [Content-Type, X-Name] } }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        func request(_ nameByte: UInt8) throws -> (TestClient.Response, [UInt8]) {
            let client = try proxy.client()
            let head = Array("POST /v1/p HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\nX-Name: n".utf8)
            try client.send(head + [nameByte] + Array("\r\n\r\n{}".utf8))
            let parsed = try client.readResponse()
            return (parsed, parsed.headBytes)
        }
        let (first, firstBytes) = try request(0xE9)
        #expect(first.status == 201)
        let (replay, replayBytes) = try request(0xE9)
        #expect(replay.value("idempotent-replayed") == "true")
        // The stored field line comes back byte for byte.
        let line = Array("Content-Disposition: attachment; filename=".utf8) + obsText + [13, 10]
        #expect(TestUpstream.find(line, in: firstBytes) != nil)
        #expect(TestUpstream.find(line, in: replayBytes) != nil)
        // 0xE8 decodes to the same U+FFFD as 0xE9, but it is another request: 422.
        let (other, _) = try request(0xE8)
        #expect(other.status == 422)
        #expect(upstream.requests.count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func aTTLShorterThanTheUpstreamCallNeverLetsARetryExecute(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 3.2
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), yaml: store.yaml() + "idempotency: { ttl: 1s, lease: 1s }\n")
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key)
        usleep(2_300_000)  // past ttl and past two leases: only the refreshes keep the key
        let retry = try proxy.request(post(key: key))
        #expect(retry.status == 409)
        #expect(retry.bodyText.contains("in-flight"))
        #expect(try original.readResponse().status == 201)
        #expect(try proxy.request(post(key: key)).value("idempotent-replayed") == "true")
        #expect(origin.count == 1)
        #expect(proxy.server.metrics.lostLeases.load(ordering: .relaxed) == 0)
    }

    @Test func memoryStoreAtItsBoundAnswersStoreFullAndKeepsEveryRecord() throws {
        let origin = CountingOrigin()
        origin.extraHeaders = []
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), yaml: "store: { backend: memory, memory: { max_bytes: 64KiB } }\n")
        defer { proxy.stop() }
        var stored: [String] = []
        var refused: TestClient.Response?
        let body = String(repeating: "x", count: 2000)
        for _ in 0..<200 {
            let key = uniqueKey()
            let response = try proxy.request(post(key: key, body: body))
            if response.status == 503 { refused = response; break }
            #expect(response.status == 201)
            stored.append(key)
        }
        let full = try #require(refused)
        #expect(full.bodyText.contains("store-full"))
        #expect(full.value("retry-after") != nil)
        #expect(stored.count > 10)
        let executions = origin.count
        for key in stored { #expect(try proxy.request(post(key: key, body: body)).value("idempotent-replayed") == "true") }
        #expect(origin.count == executions)
        #expect(proxy.server.metrics.value(.storeFull) >= 1)
    }
}
