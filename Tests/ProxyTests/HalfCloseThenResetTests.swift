import Foundation
import Glibc
import Testing
import TestSupport
@testable import Proxy

extension ProxyHarness {
    /// CPU time (user + system) the proxy's loop threads have used, in seconds: each loop
    /// reads its own thread's usage. Unlike the test process's, it leaves out every test
    /// running alongside.
    func loopThreadsCPUSeconds() -> Double {
        let loops = server.loops
        let total = LockedDouble()
        let done = DispatchSemaphore(value: 0)
        for loop in loops {
            loop.execute {
                var usage = rusage()
                // RUSAGE_THREAD (1), which the Glibc module does not import.
                getrusage(__rusage_who_t(1), &usage)
                total.add(Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                    + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6)
                done.signal()
            }
        }
        for _ in loops { done.wait() }
        return total.value
    }
}

final class LockedDouble: @unchecked Sendable {
    private let lock = NSLock()
    private var sum = 0.0
    func add(_ x: Double) { lock.withLock { sum += x } }
    var value: Double { lock.withLock { sum } }
}

/// A client half-closes (FIN) while its request is with the upstream, then resets (RST). Reads
/// are off since the FIN, so only the reset's level-triggered hang-up and error wake the
/// connection, and a read after the FIN reports 0, not ECONNRESET: the proxy must take that
/// second EOF as the client gone, not spin the loop until the upstream answers.
@Suite(.serialized) struct HalfCloseThenResetTests {
    /// Half-closes, waits, then resets `client`'s socket (SO_LINGER 0; the descriptor number
    /// stays valid for TestClient's deinit).
    static func halfCloseThenReset(_ client: TestClient) {
        Glibc.shutdown(client.fd, Int32(SHUT_WR))
        usleep(300_000)
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        let devNull = open("/dev/null", O_RDONLY)
        _ = dup2(devNull, client.fd)
        Glibc.close(devNull)
    }

    /// Half-closes then resets `client`, and returns the CPU time the proxy's loops use in
    /// the second after.
    static func loopCPUInTheSecondAfterAReset(_ proxy: ProxyHarness, _ client: TestClient) -> Double {
        halfCloseThenReset(client)
        let before = proxy.loopThreadsCPUSeconds()
        usleep(1_000_000)
        return proxy.loopThreadsCPUSeconds() - before
    }

    static func waitForTheUpstream(_ proxy: ProxyHarness) throws {
        let deadline = Date().addingTimeInterval(3)
        while proxy.upstream.requests.isEmpty && Date() < deadline { usleep(20_000) }
        try #require(proxy.upstream.requests.count == 1)
    }

    /// A GET whose upstream answers after 3 s: the connection closes at the reset, and the loop
    /// stays idle meanwhile.
    @Test func aResetAfterAHalfCloseWhileTheUpstreamWorksClosesAtOnce() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .delayed(seconds: 3, status: 200, body: Array("ok".utf8)) })
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 8)
        try client.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        try Self.waitForTheUpstream(proxy)
        let used = Self.loopCPUInTheSecondAfterAReset(proxy, client)
        #expect(used < 0.2, "the loop used \(used) s of CPU in the second after the client's reset")
        #expect(proxy.server.metrics.activeConnections.load(ordering: .relaxed) == 0, "the reset connection is still open")
    }

    /// The same while a guarded POST is upstream: the loop stays idle, and the request, whose
    /// client is gone, still completes and is stored (the retry is a replay).
    @Test func aResetAfterAHalfCloseWhileAGuardedRequestIsUpstreamKeepsItsRecord() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .delayed(seconds: 2, status: 201, body: Array("made".utf8)) })
        defer { proxy.stop() }
        let post = "POST /orders HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: reset-\(UInt32.random(in: 0...UInt32.max))\r\nContent-Length: 2\r\n\r\n{}"
        let client = try proxy.client(timeoutSeconds: 8)
        try client.send(post)
        try Self.waitForTheUpstream(proxy)
        let used = Self.loopCPUInTheSecondAfterAReset(proxy, client)
        #expect(used < 0.2, "the loop used \(used) s of CPU in the second after the client's reset")
        usleep(1_500_000)
        let retry = try proxy.request(post)
        #expect(retry.status == 201 && retry.bodyText == "made")
        #expect(retry.value("idempotent-replayed") == "true")
        #expect(proxy.upstream.requests.count == 1)
    }
}
