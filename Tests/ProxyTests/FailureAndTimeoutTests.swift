import Config
import EventLoop
import Foundation
import Proxy
import Glibc
import Testing
import TestSupport

/// Upstream failures, client timeouts and retries, each over real sockets.
@Suite(.serialized) struct FailureAndTimeoutTests {
    @Test func refusedUpstreamGives502Problem() throws {
        // Bind and close a socket to get a port nobody listens on.
        let probe = TestUpstream()
        let deadPort = probe.port
        probe.stop()
        let proxy = try ProxyHarness(upstreamPort: deadPort)
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 502)
        #expect(response.value("content-type") == "application/problem+json")
        #expect(response.bodyText.contains("upstream-unreachable"))
    }

    @Test func silentUpstreamGives504AfterResponseTimeout() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .silent }, upstreamYAML: ["response_timeout: 500ms"])
        defer { proxy.stop() }
        let client = try proxy.client()
        let start = Date()
        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = try client.readResponse()
        let elapsed = Date().timeIntervalSince(start)
        #expect(response.status == 504)
        #expect(response.bodyText.contains("upstream-timeout"))
        #expect(elapsed >= 0.45 && elapsed < 5)
    }

    /// A head that starts in the same read as a request answered at once (a 400 for a
    /// missing key, written inside the read's processing) is under header_timeout, not the
    /// idle timeout: it gets its 408.
    @Test func aPartialHeadBehindAnAnswerGivenAtOnceGetsA408AtHeaderTimeout() throws {
        let proxy = try ProxyHarness(
            upstream: TestUpstream(),
            yaml: "routes:\n  - match: { path_prefix: /v1/payments }\n    required: true\nlimits: { header_timeout: 1s, idle_timeout: 5s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8)
        let started = TestUpstream.nowMillis()
        try client.send("POST /v1/payments HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n")
        #expect(try client.readResponse(requestMethod: "POST").status == 400)
        let second = try? client.readResponse()
        let took = TestUpstream.nowMillis() - started
        #expect(second?.status == 408 && took < 3_000,
                "the unfinished head got \(second.map { "status \($0.status)" } ?? "no answer (EOF)") after \(took) ms; header_timeout is 1 s")
    }

    @Test func slowlorisIsCutAtHeaderTimeoutWhileOthersAreServed() throws {
        let proxy = try ProxyHarness(yaml: "limits: { header_timeout: 2s }\n")
        defer { proxy.stop() }
        let slow = try proxy.client(timeoutSeconds: 10)
        let start = Date()
        let request = Array("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1234567890\r\n\r\n".utf8)
        var cut = false
        var servedMeanwhile = 0
        for byte in request {
            do { try slow.send([byte]) } catch { cut = true; break }
            // Another client is served while the slow one dribbles.
            let other = try proxy.client()
            try other.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            if try other.readResponse().status == 200 { servedMeanwhile += 1 }
            if Date().timeIntervalSince(start) > 4 { break }
            usleep(500_000)
            // Poll for the proxy's answer without blocking the loop for long.
            var pollFD = pollfd(fd: slow.fd, events: Int16(POLLIN), revents: 0)
            if poll(&pollFD, 1, 0) > 0 { cut = true; break }
        }
        let elapsed = Date().timeIntervalSince(start)
        if !cut { cut = slow.isClosedByPeer() || (try? slow.readResponse().status) == 408 }
        #expect(cut, "the slow client was never cut")
        #expect(elapsed < 3.5, "cut after \(elapsed)s, expected about 2s")
        #expect(servedMeanwhile >= 3)
        #expect(proxy.upstream.requests.allSatisfy { !$0.head.contains("X-Slow") })
    }

    @Test func idempotentRequestIsRetriedOnceWhenAReusedConnectionDies() throws {
        // The origin answers the first request on each connection and drops the connection on
        // the second without a byte: the keep-alive race a proxy must absorb for GET.
        let upstream = TestUpstream()
        let counter = RequestCounter()
        upstream.setBehaviour { _ in
            counter.next() == 2 ? .closeImmediately : .respond(status: 200, headers: [], body: Array("fine".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().status == 200)
        try client.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        let retried = try client.readResponse()
        #expect(retried.status == 200)
        #expect(upstream.requests.count == 3)
        #expect(upstream.connectionCount == 2)
    }

    @Test func postIsNeverResentAfterAReusedConnectionDies() throws {
        let upstream = TestUpstream()
        let counter = RequestCounter()
        upstream.setBehaviour { _ in
            counter.next() == 2 ? .closeImmediately : .respond(status: 200, headers: [], body: Array("fine".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().status == 200)
        try client.send("POST /charge HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
        #expect(try client.readResponse().status == 502)
        #expect(upstream.requests.filter { $0.method == "POST" }.count == 1)
    }

    @Test func gracefulShutdownFinishesTheInFlightRequest() throws {
        let upstream = TestUpstream { _ in .delayed(seconds: 1, status: 200, body: Array("finished".utf8)) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 5s\n")
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(200_000)
        let idle = try proxy.client()
        let stopper = Thread { proxy.server.shutdown() }
        stopper.start()
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.bodyText == "finished")
        // The response says the connection ends, and it does.
        #expect(response.value("connection")?.lowercased() == "close")
        #expect(idle.isClosedByPeer())
        while !stopper.isFinished { usleep(10_000) }
        #expect((try? TestClient(port: proxy.port, timeoutSeconds: 1)) == nil)
        upstream.stop()
    }
}

final class RequestCounter: @unchecked Sendable {
    private var count = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        return count
    }
}

/// A second proxy on a port another one serves is a startup error, not a silent split of
/// traffic (SO_REUSEPORT would otherwise allow it).
@Suite struct StartupTests {
    @Test func portInUseIsAStartupError() throws {
        let first = try ProxyHarness()
        defer { first.stop() }
        let config = try Config.ConfigLoader.parse(
            yaml: "listen: 127.0.0.1:\(first.port)\nupstream: { url: http://127.0.0.1:1 }\nadmin: { listen: \"\" }\n",
            fileName: "second.yaml", environment: [:])
        #expect(throws: IOError.self) { _ = try Proxy.ProxyServer(settings: try Proxy.ProxySettings(config: config)) }
    }
}
