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

    /// Reads the rest of the connection: the whole first answer must be there.
    static func expectWholeAnswer(_ client: TestClient, orderlyEnd: Bool = false, _ what: String) {
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let got = TestUpstream.count(0x63, inBodyOf: bytes)
        #expect(got == body.count && (!orderlyEnd || error == 0),
                "\(what): \(got) of \(body.count) body bytes, then \(TestUpstream.endText(error))")
    }

    /// The end of a shutdown test: the client's late next request, then the whole first
    /// answer must be readable; once the client is done the shutdown finishes.
    static func sendLateRequestDuringShutdown(_ client: TestClient, _ proxy: ProxyHarness, _ shutdown: ProxyHarness.BackgroundShutdown, _ what: String) {
        _ = TestUpstream.sendAll(client.fd, nextRequest)
        usleep(300_000)
        expectWholeAnswer(client, what)
        Glibc.shutdown(client.fd, Int32(SHUT_RDWR))
        shutdown.wait(seconds: 25)
        #expect(shutdown.isDone, "the shutdown waits for nothing once the answer is read")
        proxy.upstream.stop()
    }

    /// A keep-alive exchange whose upstream answers (512 KiB) after 0.8 s, with a graceful
    /// shutdown started 0.2 s into it.
    static func shutdownDuringAnExchange(_ requests: String) throws -> (ProxyHarness, TestClient, ProxyHarness.BackgroundShutdown) {
        let upstream = TestUpstream { _ in .delayed(seconds: 0.8, status: 200, body: Self.body) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 20s\n")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send(requests)
        usleep(200_000)
        return (proxy, client, proxy.shutdownInBackground())
    }

    /// A shutdown while a keep-alive request is in flight: its answer (with Connection: close,
    /// added for the shutdown) goes to the kernel whole, unread; the client sends its next
    /// request after it.
    @Test func aShutdownDuringAnExchangeLeavesItsWholeAnswerToTheClient() throws {
        let (proxy, client, shutdown) = try Self.shutdownDuringAnExchange("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(1_500_000)  // the answer arrived at 0.8 s and is written
        Self.sendLateRequestDuringShutdown(client, proxy, shutdown, "an answer finished during a graceful shutdown")
    }

    /// A keep-alive connection whose client read none of its answer (written whole to the
    /// kernel), found idle by a graceful shutdown.
    static func shutdownWithAnUnreadAnswer() throws -> (ProxyHarness, TestClient, ProxyHarness.BackgroundShutdown) {
        let upstream = TestUpstream { _ in .respond(status: 200, headers: [], body: Self.body) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 20s\n")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(600_000)
        return (proxy, client, proxy.shutdownInBackground())
    }

    /// A shutdown finds the connection idle, its last answer written but unacknowledged.
    @Test func aShutdownOfAnIdleConnectionLeavesItsLastAnswerToTheClient() throws {
        let (proxy, client, shutdown) = try Self.shutdownWithAnUnreadAnswer()
        usleep(500_000)
        Self.sendLateRequestDuringShutdown(client, proxy, shutdown, "an answer written before a graceful shutdown")
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

    /// "/big": 512 KiB (Content-Length); anything else: "ok".
    static func upstream() -> TestUpstream {
        TestUpstream { request in
            request.target == "/big" ? .respond(status: 200, headers: [], body: Self.body)
                                     : .respond(status: 200, headers: [], body: Array("ok".utf8))
        }
    }

    // MARK: a close the client asked for, and a client that keeps sending

    /// A client that asked for the close itself (`Connection: close`, or HTTP/1.0 without
    /// keep-alive) sends no next request: nothing can be reset away, so its connection does
    /// not linger for the acknowledgement of an answer it reads slowly, and does not hold a
    /// max_connections slot meanwhile.
    @Test(arguments: [
        "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "GET /big HTTP/1.0\r\nHost: a\r\n\r\n",
    ])
    func aCloseTheClientAskedForDoesNotHoldItsSlot(request: String) throws {
        let proxy = try ProxyHarness(upstream: Self.upstream(), yaml: "limits: { max_connections: 1 }\n")
        defer { proxy.stop() }
        let slow = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try slow.send(request)
        usleep(800_000)  // the answer is written whole to the kernel; the client reads none of it yet
        let next = try TestClient(port: proxy.port, timeoutSeconds: 3)
        let started = TestUpstream.nowMillis()
        try next.send("GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
        let answered = (try? next.readResponse())?.status
        let took = TestUpstream.nowMillis() - started
        #expect(answered == 200, "the next connection was not served within 3 s (\(took) ms): the finished Connection: close connection still holds the only slot")
        // The slow client still gets its whole answer.
        let (bytes, error) = TestUpstream.readToEnd(slow.fd)
        #expect(TestUpstream.count(0x63, inBodyOf: bytes) == Self.body.count && error == 0)
    }

    /// The same connection, finished, delays a graceful shutdown by the whole linger.
    @Test func aCloseTheClientAskedForDoesNotDelayAShutdown() throws {
        let proxy = try ProxyHarness(upstream: Self.upstream(), yaml: "shutdown_grace: 20s\n")
        let slow = try TestClient(port: proxy.port, timeoutSeconds: 12, receiveBuffer: 4096)
        try slow.send("GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        usleep(800_000)
        let took = withExtendedLifetime(slow) {
            let started = TestUpstream.nowMillis()
            proxy.server.shutdown()
            return TestUpstream.nowMillis() - started
        }
        #expect(took < 2_000, "shutdown took \(took) ms with only a finished Connection: close exchange left")
        proxy.upstream.stop()
    }

    /// A linger that waits for acknowledgement ends once the answer is acknowledged, also
    /// while the client keeps sending (the body of its next request, streamed): drained input
    /// must not postpone the check to the 10 s bound.
    @Test func theAcknowledgementLingerEndsWhileTheClientKeepsSending() throws {
        let upstream = TestUpstream { _ in .chunked(status: 200, pieces: [Self.body]) }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 12, receiveBuffer: 4096)
        // HTTP/1.0 keep-alive, chunked upstream: a close-delimited answer the proxy closes after.
        try client.send("GET /big HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        usleep(800_000)  // written whole, unacknowledged: the connection lingers for the acknowledgement
        // The client streams its next request's body while it reads the answer.
        let failedAt = Atomic<Int>(0)
        let fd = client.fd
        try client.send("POST /next HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 100000000\r\n\r\n")
        let sender = Thread {
            let chunk = [UInt8](repeating: 0x41, count: 1024)
            let end = TestUpstream.nowMillis() + 14_000
            while TestUpstream.nowMillis() < end {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 { failedAt.store(TestUpstream.nowMillis(), ordering: .releasing); return }
                usleep(10_000)
            }
        }
        sender.start()
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let acknowledgedAt = TestUpstream.nowMillis()
        #expect(TestUpstream.count(0x63, inBodyOf: bytes) == Self.body.count && error == 0,
                "\(TestUpstream.count(0x63, inBodyOf: bytes)) of \(Self.body.count), then \(TestUpstream.endText(error))")
        while failedAt.load(ordering: .acquiring) == 0 && TestUpstream.nowMillis() < acknowledgedAt + 13_000 { usleep(20_000) }
        let closedAt = failedAt.load(ordering: .acquiring)
        let after = closedAt == 0 ? -1 : closedAt - acknowledgedAt
        #expect(closedAt != 0 && after < 1_500,
                "the proxy closed \(after) ms after the client had read (and acknowledged) the whole answer")
    }

    // MARK: the shutdown's and idle_timeout's other ways in

    /// The shutdown arrives while the keep-alive request head is still arriving: the client
    /// asked for nothing, so the close after its answer lingers as for a shutdown after the head.
    @Test func aShutdownDuringAPartialHeadLeavesItsWholeAnswerToTheClient() throws {
        let upstream = TestUpstream { _ in .respond(status: 200, headers: [], body: Self.body) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 20s\n")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n")
        usleep(200_000)
        let shutdown = proxy.shutdownInBackground()
        usleep(300_000)  // the shutdown reached the connection: it waits for the head
        try client.send("\r\n")
        usleep(800_000)  // the answer is written whole to the kernel, unread
        Self.sendLateRequestDuringShutdown(client, proxy, shutdown, "an answer to a request completed during a graceful shutdown")
    }

    /// A shutdown during an exchange with the next request already pipelined (input to drain):
    /// the linger's quiet gap does not end it while the answer is unacknowledged, so a request
    /// sent after more than 2 s of quiet is still drained, not reset.
    @Test func aShutdownWithAPipelinedRequestLeavesItsWholeAnswerToTheClient() throws {
        let (proxy, client, shutdown) = try Self.shutdownDuringAnExchange("GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(3_800_000)  // answered at 0.8 s, written whole; more than 2 s of quiet since
        Self.sendLateRequestDuringShutdown(client, proxy, shutdown, "an answer finished during a graceful shutdown, a request pipelined behind it")
    }

    /// idle_timeout starts when the last answer reaches the kernel, not when the client has
    /// it: its close lingers while that answer is unacknowledged.
    @Test func anIdleTimeoutCloseLeavesTheLastAnswerToTheClient() throws {
        let upstream = TestUpstream { _ in .respond(status: 200, headers: [], body: Self.body) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "limits: { idle_timeout: 1s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(1_600_000)  // the answer was written at once; idle_timeout passed
        _ = TestUpstream.sendAll(client.fd, Self.nextRequest)
        usleep(300_000)
        Self.expectWholeAnswer(client, "a keep-alive answer followed by an idle_timeout close")
    }
}
