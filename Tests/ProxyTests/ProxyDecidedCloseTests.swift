import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// A close idemproxy decides on (a graceful shutdown, an HTTP/1.0 keep-alive answer that has
/// to end at the close) while a slow reader has not yet acknowledged a whole answer. The client
/// expects the connection to stay, so it may send its next request a moment later; a closed
/// socket would answer that with a reset that discards the unacknowledged rest of the answer.
/// The connection lingers until the answer is acknowledged instead, and the late request is
/// drained (RFC 9112 §9.6).
@Suite(.serialized) struct ProxyDecidedCloseTests {
    static let body = [UInt8](repeating: 0x63, count: 512 << 10)
    static let nextRequest = Array("GET /next HTTP/1.1\r\nHost: a\r\n\r\n".utf8)

    /// Runs the proxy's graceful shutdown on another thread (it returns once every connection
    /// is closed, or at the grace); `done` says when.
    final class Shutdown: Sendable {
        let done = Atomic<Bool>(false)

        init(_ proxy: ProxyHarness) {
            Thread { [self] in
                proxy.server.shutdown()
                done.store(true, ordering: .releasing)
            }.start()
        }

        var isDone: Bool { done.load(ordering: .acquiring) }

        func wait(seconds: Int) {
            let deadline = TestUpstream.nowMillis() + seconds * 1000
            while !isDone && TestUpstream.nowMillis() < deadline { usleep(50_000) }
        }
    }

    /// Reads the rest of the connection: the whole first answer must be there.
    static func expectWholeAnswer(_ client: TestClient, orderlyEnd: Bool = false, _ what: String) {
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let got = TestUpstream.count(0x63, inBodyOf: bytes)
        #expect(got == body.count && (!orderlyEnd || error == 0),
                "\(what): \(got) of \(body.count) body bytes, then \(TestUpstream.endText(error))")
    }

    /// A shutdown while a keep-alive request is in flight: its answer (with Connection: close,
    /// added for the shutdown) goes to the kernel whole, unread; the client sends its next
    /// request after it.
    @Test func aShutdownDuringAnExchangeLeavesItsWholeAnswerToTheClient() throws {
        let upstream = TestUpstream { _ in .delayed(seconds: 0.8, status: 200, body: Self.body) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 20s\n")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(200_000)
        let shutdown = Shutdown(proxy)
        usleep(1_500_000)  // the answer arrived at 0.8 s and is written
        _ = TestUpstream.sendAll(client.fd, Self.nextRequest)
        usleep(300_000)
        Self.expectWholeAnswer(client, "an answer finished during a graceful shutdown")
        Glibc.shutdown(client.fd, Int32(SHUT_RDWR))
        shutdown.wait(seconds: 25)
        #expect(shutdown.isDone, "the shutdown waits for nothing once the answer is read")
        proxy.upstream.stop()
    }

    /// A keep-alive connection whose client read none of its answer (written whole to the
    /// kernel), found idle by a graceful shutdown.
    static func shutdownWithAnUnreadAnswer() throws -> (ProxyHarness, TestClient, Shutdown) {
        let upstream = TestUpstream { _ in .respond(status: 200, headers: [], body: Self.body) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 20s\n")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(600_000)
        return (proxy, client, Shutdown(proxy))
    }

    /// A shutdown finds the connection idle, its last answer written but unacknowledged.
    @Test func aShutdownOfAnIdleConnectionLeavesItsLastAnswerToTheClient() throws {
        let (proxy, client, shutdown) = try Self.shutdownWithAnUnreadAnswer()
        usleep(500_000)
        _ = TestUpstream.sendAll(client.fd, Self.nextRequest)
        usleep(300_000)
        Self.expectWholeAnswer(client, "an answer written before a graceful shutdown")
        Glibc.shutdown(client.fd, Int32(SHUT_RDWR))
        shutdown.wait(seconds: 25)
        #expect(shutdown.isDone)
        proxy.upstream.stop()
    }

    /// No shutdown: an HTTP/1.0 client asks for keep-alive, the upstream answers chunked, so
    /// the body goes close-delimited and the proxy closes after it. A reset there would also
    /// make the client take a whole body for a cut one: it must end in an orderly EOF.
    @Test func aCloseDelimitedAnswerToAKeepAliveClientEndsWholeAndOrderly() throws {
        let upstream = TestUpstream { _ in .chunked(status: 200, pieces: [Self.body]) }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        usleep(800_000)
        _ = TestUpstream.sendAll(client.fd, Array("GET /next HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n".utf8))
        usleep(300_000)
        Self.expectWholeAnswer(client, orderlyEnd: true, "a whole close-delimited answer")
    }

    /// Once the answer is acknowledged the linger ends at once (it does not wait out a quiet
    /// gap): a shutdown with an idle, fully read connection finishes promptly.
    @Test func theLingerEndsOnceTheAnswerIsAcknowledged() throws {
        let (proxy, client, shutdown) = try Self.shutdownWithAnUnreadAnswer()
        usleep(300_000)
        let started = TestUpstream.nowMillis()
        Self.expectWholeAnswer(client, orderlyEnd: true, "the answer, read while the connection lingers")
        shutdown.wait(seconds: 25)
        let took = TestUpstream.nowMillis() - started
        #expect(shutdown.isDone && took < 1_500,
                "the shutdown ended \(took) ms after the client began reading; a linger that waited for quiet would take 2 s more")
        Glibc.close(client.fd)
        proxy.upstream.stop()
    }
}
