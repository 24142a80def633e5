import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport
@testable import Proxy

/// The keep-alive race with a reset: the upstream resets a connection it has just answered on,
/// and the proxy, which parked it moments ago and so skips the liveness peek, writes the next
/// request into it. The write itself fails (ECONNRESET or EPIPE), with nothing sent: an
/// idempotent request is retried on a fresh connection (RFC 9110 §9.2.2), as it is when the
/// upstream closes after the write.
@Suite(.serialized) struct ResetIdleUpstreamRetryTests {
    @Test func aGETWhoseReusedConnectionWasResetBeforeTheWriteIsRetried() throws {
        let reset = DispatchSemaphore(value: 0)
        let connections = Atomic<Int>(0)
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            let number = connections.add(1, ordering: .relaxed).newValue
            guard TestUpstream.readHead(fd) else { return }
            let body = number == 1 ? "first" : "fresh"
            _ = TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n\(body)".utf8))
            if number == 1 {
                // Reset (SO_LINGER 0), once the proxy's loop is held and the next request sent.
                reset.wait()
                var option = linger(l_onoff: 1, l_linger: 0)
                _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
            } else {
                _ = TestUpstream.readHead(fd)
            }
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().bodyText == "first")
        // Hold the loop for 30 ms: the next request and the reset both arrive meanwhile, so the
        // loop sees them in one batch, the request first, well inside the 50 ms after parking
        // in which the pool reuses a connection without a peek.
        let loop = try #require(proxy.server.loops.first)
        loop.execute { usleep(30_000) }
        usleep(3_000)
        try client.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(3_000)
        reset.signal()
        let second = try client.readResponse()
        #expect(second.status == 200 && second.bodyText == "fresh", "\(second.status) \(second.bodyText)")
        #expect(connections.load(ordering: .relaxed) == 2)
    }
}
