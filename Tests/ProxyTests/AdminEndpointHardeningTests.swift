import Config
import EventLoop
import Foundation
import Glibc
import Idempotency
import Testing
import TestSupport

@testable import Proxy

/// The admin endpoint's HTTP behaviour at its edges: how its connections end, `HEAD`, `405`,
/// and what an operator gets when the store does not answer.
@Suite(.serialized) struct AdminEndpointHardeningTests {
    /// An admin request with a body (a DELETE /records with a JSON body, a POST) is answered
    /// without reading the body. Closing with those bytes unread makes the kernel reset the
    /// connection, which can destroy the answer (SPEC §5): the close lingers, so the answer is
    /// followed by a FIN.
    @Test func anAnswerToARequestWithAnUnreadBodyEndsInAFINNotAReset() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let client = try TestClient(port: try #require(proxy.server.adminPort))
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: 256 * 1024)
        try client.send("DELETE /records?key=abc&scope=Bearer+x HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n")
        try client.send(body)
        usleep(200_000)
        let response = try client.readResponse(requestMethod: "DELETE")
        #expect(response.status == 404)
        var clean = true
        do { _ = try client.fill() } catch { clean = false }
        #expect(clean, "the admin endpoint reset the connection after its answer (unread request body)")
    }

    /// HEAD is GET without the content (RFC 9110 §9.3.2): the same status and fields,
    /// Content-Length included, and not one byte after the head. Probes use it.
    @Test(arguments: ["/healthz", "/metrics", "/records?key=k&scope=Bearer+x"])
    func headIsAnsweredLikeGetWithoutContent(path: String) throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let get = try proxy.admin("GET", path)
        let raw = try Self.exchange(proxy, "HEAD \(path) HTTP/1.1\r\nHost: admin\r\n\r\n")
        let headEnd = try #require(raw.range(of: "\r\n\r\n"))
        #expect(raw.hasPrefix("HTTP/1.1 \(get.status)"), "\(raw)")
        #expect(raw[headEnd.upperBound...].isEmpty, "a HEAD answer carried content: \(raw[headEnd.upperBound...])")
        let length = raw.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
        // /metrics changes between the two requests (the GET itself is counted): only its
        // presence is compared there.
        if path != "/metrics" {
            #expect(length.map(String.init) == "Content-Length: \(get.body.count)", "\(raw)")
        } else {
            #expect(length != nil, "\(raw)")
        }
    }

    /// Methods other than GET and HEAD (and DELETE on /records) get `405` with `Allow` naming
    /// the ones that are taken (RFC 9110 §15.5.6).
    @Test func a405NamesTheMethodsTakenInAllow() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let health = try proxy.admin("POST", "/healthz")
        #expect(health.status == 405)
        #expect(health.value("allow") == "GET, HEAD")
        let records = try proxy.admin("PUT", "/records?key=k")
        #expect(records.status == 405)
        #expect(records.value("allow") == "GET, HEAD, DELETE")
    }

    /// Everything the raw connection delivers until the server closes it.
    static func exchange(_ proxy: ProxyHarness, _ request: String) throws -> String {
        let client = try TestClient(port: try #require(proxy.server.adminPort), timeoutSeconds: 5)
        try client.send(request)
        var raw: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(client.fd, &chunk, chunk.count)
            if n <= 0 { break }
            raw.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: raw, as: UTF8.self)
    }
}

extension AdminEndpointHardeningTests {
    /// A store that has not answered by the connection's deadline (the store's own budget and a
    /// margin) still gets the operator an answer: a `503` saying the outcome is unknown, for a
    /// purge that it may or may not have been applied, never a bare close.
    @Test(arguments: ["GET", "DELETE"])
    func aStoreOperationStillOutstandingAtTheDeadlineIsAnswered503(method: String) throws {
        let admin = try SilentStoreAdmin(commandTimeout: "50ms")
        defer { admin.stop() }
        let budget = admin.endpointBudget(purge: method == "DELETE")
        let client = try TestClient(port: admin.port, timeoutSeconds: Int(budget / 1000) + 5)
        let started = Date()
        try client.send("\(method) /records?key=k&scope=Bearer+x HTTP/1.1\r\nHost: admin\r\n\r\n")
        let response = try client.readResponse(requestMethod: method)
        let waited = Date().timeIntervalSince(started) * 1000
        #expect(response.status == 503)
        #expect(response.bodyText.contains("\"outcome\":\"unknown\""), "\(response.bodyText)")
        if method == "DELETE" {
            #expect(response.bodyText.contains("may or may not have been purged; purge again"), "\(response.bodyText)")
        }
        // Not before the store's own budget has run out.
        #expect(waited >= Double(budget) - 50, "answered after \(waited) ms, budget \(budget) ms")
        #expect(client.isClosedByPeer())
    }

    /// The deadline covers a purge's whole chain (delete, announcement, settle wait),
    /// not one command, and grows with `command_timeout`, which the configuration leaves
    /// unbounded: the deadline saturates instead of wrapping around to "now".
    @Test func theDeadlineCoversTheStoresWholeBudget() throws {
        let admin = try SilentStoreAdmin(commandTimeout: "6s")
        defer { admin.stop() }
        #expect(admin.endpointBudget(purge: false) > 6000)
        // The delete and the announcement, each up to command_timeout, then the 800 ms settle wait.
        #expect(admin.endpointBudget(purge: true) > 3 * 6000 + 800)
        #expect(RecordsBudget.millis(purge: true, commandMillis: .max / 3, acknowledgement: nil) == UInt64.max / 2)
    }

    /// An answer written and read is no in-flight exchange: a client that keeps its admin
    /// socket open (the lingering close waits up to 2 s for it) does not hold the shutdown.
    @Test func aDeliveredAdminAnswerDoesNotHoldTheShutdown() throws {
        let proxy = try ProxyHarness(yaml: "shutdown_grace: 10s\n")
        let client = try TestClient(port: try #require(proxy.server.adminPort))
        try client.send("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        #expect(try client.readResponse().status == 200)
        usleep(100_000)
        let start = TestUpstream.nowMillis()
        proxy.stop()
        let took = TestUpstream.nowMillis() - start
        #expect(took < 1000, "stop() took \(took) ms with only a delivered admin answer open")
        withExtendedLifetime(client) {}
    }
}

/// An admin endpoint on its own loop over a Redis-configured settings (for the budget) and a
/// store that never answers `/records` calls.
final class SilentStoreAdmin: @unchecked Sendable {
    let loop: EventLoop
    let endpoint: AdminEndpoint
    let port: UInt16
    private let thread: LoopThread

    init(commandTimeout: String) throws {
        let yaml = """
            listen: 127.0.0.1:0
            admin: { listen: 127.0.0.1:0 }
            upstream: { url: http://127.0.0.1:9 }
            store: { backend: redis, redis: { url: "redis://127.0.0.1:9/0", command_timeout: \(commandTimeout) } }

            """
        let settings = try ProxySettings(config: try ConfigLoader.parse(yaml: yaml, fileName: "t.yaml", environment: [:]))
        settings.log = Log(minimum: .error, json: true)
        let loop = try EventLoop()
        let fd = try Socket.listen(on: try Socket.Address.resolve(host: "127.0.0.1", port: 0), reusePort: false)
        port = Socket.localPort(fd)
        endpoint = try AdminEndpoint(fd: fd, loop: loop, metrics: ProxyMetrics(), settings: settings, store: SilentStore())
        self.loop = loop
        thread = LoopThread(name: "silent-store-admin") { loop.run() }
    }

    /// The connection's deadline for a `/records` inspection, or with `purge` a DELETE.
    func endpointBudget(purge: Bool) -> UInt64 {
        endpoint.answerBudgetMillis(for: AdminRequest(method: purge ? .delete : .get, path: "/records", query: "", authorization: nil))
    }

    func stop() {
        let endpoint = UncheckedBox(endpoint)
        loop.execute { [loop] in
            endpoint.value.close()
            loop.stop()
        }
        thread.join()
    }
}

private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Takes every call and never completes one: a store stuck past its own timeouts.
private final class SilentStore: IdempotencyStore, @unchecked Sendable {
    func claim(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration, expiredLease: IndeterminatePolicy,
        completion: @escaping (Result<ClaimOutcome, StoreError>) -> Void) {}
    func complete(key: String, owner: [UInt8], response: StoredResponse, ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void) {}
    func release(key: String, owner: [UInt8], completion: @escaping (Result<Bool, StoreError>) -> Void) {}
    func markUnknown(key: String, owner: [UInt8], ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void) {}
    func refreshLease(
        key: String, owner: [UInt8], lease: Duration, ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void) {}
    func get(key: String, completion: @escaping (Result<IdempotencyRecord?, StoreError>) -> Void) {}
    func inspect(key: String, completion: @escaping (Result<RecordInspection?, StoreError>) -> Void) {}
    func purge(key: String, evenInFlight: Bool, completion: @escaping (Result<PurgeResult, StoreError>) -> Void) {}
}
