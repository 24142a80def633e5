import Foundation
import Glibc
import Idempotency
import Testing
import TestSupport

/// The key is parsed into a buffer the connection keeps: it must name the same record the
/// `String` path names (the admin API, the CLI, records written by earlier versions), and
/// nothing of one request's key may reach the next request on the same connection. And a
/// memory-store completion, answered without a pending write, must still wake the requests
/// waiting on its key.
@Suite(.serialized) struct KeyBytesAndWakeupTests {
    func send(_ client: TestClient, key field: String, body: String = "{\"amount\":100}") throws -> TestClient.Response {
        let text = "POST /v1/payments HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Idempotency-Key: \(field)\r\nAuthorization: Bearer caller-1\r\n\r\n" + body
        try client.send(Array(text.utf8))
        return try client.readResponse()
    }

    @Test(arguments: StoreKind.allCases)
    func escapedKeyNamesTheRecordTheStringPathNames(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: store.yaml() + "idempotency: { key_syntax: lenient }\n")
        defer { proxy.stop() }
        let tag = UInt64.random(in: 0...UInt64.max)
        let client = try proxy.client()
        // `"k<tag>\"q\\z"` unescapes to k<tag>"q\z
        let quoted = "\"k\(tag)\\\"q\\\\z\""
        let first = try send(client, key: quoted)
        #expect(first.status == 201)
        // The admin API derives the storage key through the String parse + StorageKey(String).
        let encoded = "%22k\(tag)%5C%22q%5C%5Cz%22"
        #expect(try proxy.admin("/records?key=\(encoded)&scope=Bearer+caller-1").status == 200)
        // And the String-path storage key is the one computed from the unescaped String.
        let expectedHash = StorageKey.digestHex(scope: Array("Bearer caller-1".utf8), key: "k\(tag)\"q\\z")
        let shown = try proxy.admin("/records?key=\(encoded)&scope=Bearer+caller-1")
        #expect(shown.bodyText.contains(String(expectedHash.prefix(16))))

        // Same connection: a longer key, a refused key, a shorter prefix key, a bare token of the
        // same bytes as an escaped string: stale bytes must never leak between requests.
        #expect(try send(client, key: "\"k\(tag)-long-key-abcdefgh\"").status == 201)   // exec 2
        #expect(try send(client, key: "\"bad\\x\"", body: "").status == 400)                       // invalid escape
        let short = try send(client, key: "\"k\(tag)\"")                                   // exec 3
        #expect(short.status == 201 && short.value("idempotent-replayed") == nil)
        #expect(try send(client, key: "\"\"", body: "").status == 400)                              // empty
        let again = try send(client, key: quoted)
        #expect(again.value("idempotent-replayed") == "true")
        #expect(again.bodyText == first.bodyText)
        // x\y as a bare lenient token and as the escaped string "x\\y" are the same key bytes.
        let bare = try send(client, key: "x\(tag)\\y")                                      // exec 4
        #expect(bare.status == 201)
        let viaString = try send(client, key: "\"x\(tag)\\\\y\"")
        #expect(viaString.value("idempotent-replayed") == "true")
        #expect(origin.count == 4)
    }

    /// A waiter under `concurrent: wait` is woken by the owner's completion, not by its poll
    /// timer: it polls 20, 60, 140, 300, 620 and 1,120 ms after parking, so a completion landing
    /// about 650 ms after it parked would otherwise be seen about 470 ms late.
    @Test(arguments: [1, 2])
    func aWaiterIsWokenWhenTheCompletionLands(_ workers: Int) throws {
        let origin = CountingOrigin()
        origin.delay = 0.75
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: StoreKind.memory.yaml() + "idempotency: { concurrent: wait, wait_timeout: 10s }\n", workers: workers)
        defer { proxy.stop() }
        let key = uniqueKey()
        let original = try startOriginal(proxy, key: key, settle: 100_000)
        let waiter = try proxy.client()
        try waiter.send(post(key: key))
        _ = try original.readResponse()
        let done = Date()
        let replay = try waiter.readResponse()
        let lag = Date().timeIntervalSince(done)
        #expect(replay.value("idempotent-replayed") == "true")
        #expect(lag < 0.35, "waiter answered \(lag)s after the original")
        #expect(origin.count == 1)
    }
}
