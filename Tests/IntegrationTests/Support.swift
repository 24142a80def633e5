import Foundation
import Glibc
import Idempotency
import Testing
import TestSupport

/// The two store backends every SPEC §4 row is tested on.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case memory, redis
    var description: String { rawValue }

    /// The shared throwaway Redis started by scripts/test.
    static var redisURL: String {
        guard let url = ProcessInfo.processInfo.environment["REDIS_URL"], !url.isEmpty else {
            Issue.record("REDIS_URL is not set: run the tests through scripts/test, which starts redis-server")
            return "redis://127.0.0.1:1/0"
        }
        return url
    }

    /// The shared Redis's port (for a `FaultRelay` in front of it, or raw commands).
    static var redisPort: UInt16 {
        let hostPort = redisURL.replacingOccurrences(of: "redis://", with: "").split(separator: "/")[0]
        return UInt16(hostPort.split(separator: ":").last ?? "") ?? 1
    }

    /// A fresh key prefix, so tests never share records.
    static func uniquePrefix() -> String { "t\(UInt32.random(in: 0...UInt32.max)):" }

    /// A `store:` section; each call gets its own key prefix unless one is given (instances
    /// that must share records pass the same prefix).
    func yaml(unavailable: String = "reject", url: String? = nil, prefix: String = StoreKind.uniquePrefix()) -> String {
        switch self {
        case .memory:
            return "store: { backend: memory }\n"
        case .redis:
            return "store: { backend: redis, unavailable: \(unavailable), redis: { url: \"\(url ?? Self.redisURL)\", key_prefix: \"\(prefix)\", command_timeout: 500ms } }\n"
        }
    }
}

/// A guarded POST with an sf-string key.
func post(_ path: String = "/v1/payments", key: String?, body: String = "{\"amount\":100}", authorization: String? = "Bearer caller-1", contentType: String = "application/json") -> String {
    var text = "POST \(path) HTTP/1.1\r\nHost: api\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n"
    if let key { text += "Idempotency-Key: \"\(key)\"\r\n" }
    if let authorization { text += "Authorization: \(authorization)\r\n" }
    return text + "\r\n" + body
}

func uniqueKey() -> String { "key-\(UInt64.random(in: 0...UInt64.max))" }

/// A proxy on a Redis of its own (which the test may fill, stop or restart) in front of a
/// counting origin. The caller stops the proxy.
func proxyOnItsOwnRedis() throws -> (redis: RedisServer, origin: CountingOrigin, proxy: ProxyHarness) {
    let redis = try RedisServer()
    let origin = CountingOrigin()
    let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: StoreKind.redis.yaml(url: redis.url))
    return (redis, origin, proxy)
}

/// Counts upstream executions and answers with a body naming the execution number, so a
/// replay is recognisable (same number) and a second execution is too (new number).
final class CountingOrigin: @unchecked Sendable {
    private let lock = NSLock()
    private var executions = 0
    var delay: Double = 0
    var status = 201
    var extraHeaders: [(String, String)] = [("Set-Cookie", "session=1"), ("X-Request-Seen", "yes")]

    var count: Int { lock.lock(); defer { lock.unlock() }; return executions }

    var responder: TestUpstream.Responder {
        { [self] request in
            lock.lock()
            executions += 1
            let number = executions
            lock.unlock()
            let body = Array("{\"execution\":\(number),\"body\":\(String(decoding: request.body, as: UTF8.self).isEmpty ? "null" : "\"\(request.body.count)\"")}".utf8)
            if delay > 0 { return .delayed(seconds: delay, status: status, body: body) }
            return .respond(status: status, headers: extraHeaders, body: body)
        }
    }
}

/// Runs `body` on `count` threads at once and returns their results in index order.
final class ConcurrentResults<T>: @unchecked Sendable {
    var values: [T?]
    let lock = NSLock()
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
}

func concurrently<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let results = ConcurrentResults<T>(count)
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        Thread {
            let value = body(index)
            results.lock.lock()
            results.values[index] = value
            results.lock.unlock()
            group.leave()
        }.start()
    }
    group.wait()
    return results.values.map { $0! }
}

/// Sends a guarded request on its own connection and gives the upstream a moment to start on
/// it, so that a duplicate sent next finds it in flight. Read its response from the client.
func startOriginal(_ proxy: ProxyHarness, key: String, settle microseconds: UInt32 = 100_000) throws -> TestClient {
    let original = try proxy.client()
    try original.send(post(key: key))
    usleep(microseconds)
    return original
}

extension ProxyHarness {
    /// Waits (up to 2 s) until every loop's Redis connection is up, so a test's first request
    /// does not meet a connection still being made.
    func waitForRedis() {
        for _ in 0..<100 where server.metrics.redisConnectionsReady.load(ordering: .relaxed) < 1 { usleep(20_000) }
    }
}

/// A proxy whose Redis is reached through `relay` (faults injected on the socket), once its
/// connection is up.
func proxyThrough(
    _ relay: FaultRelay, prefix: String = StoreKind.uniquePrefix(), commandTimeout: String, upstream: TestUpstream = TestUpstream()
) throws -> ProxyHarness {
    let proxy = try ProxyHarness(
        upstream: upstream,
        yaml: "store: { backend: redis, redis: { url: \"\(relay.url)\", key_prefix: \"\(prefix)\", command_timeout: \(commandTimeout) } }\n")
    proxy.waitForRedis()
    return proxy
}
