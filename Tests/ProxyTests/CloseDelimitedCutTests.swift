import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// How a connection ends when its response cannot be whole, or when a shutdown finds it
/// lingering, and what that does to what was already written: a close-delimited body (an
/// HTTP/1.0 client's) is cut by a reset on every path, and no reset (a cut's or one caused by
/// unread input after a close) may discard bytes the client has not yet acknowledged.
@Suite(.serialized) struct CloseDelimitedCutTests {

    // MARK: a shutdown finds a connection lingering

    /// A `Connection: close` answer (512 KiB) is written whole to the kernel for a slow reader
    /// that pipelined another request behind it: the connection lingers (the write side shut,
    /// input drained), so the client reads the answer instead of a reset. A graceful shutdown
    /// meanwhile must not close it while bytes are unacknowledged: the next byte the client
    /// sends would hit a closed socket and the kernel's reset would drop the rest of a complete
    /// answer (SPEC §5).
    @Test func aShutdownDuringALingerDoesNotResetAWholeAnswerAway() throws {
        let body = [UInt8](repeating: 0x63, count: 512 << 10)
        let upstream = TestUpstream { _ in .respond(status: 200, headers: [], body: body) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 20s\n")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        // The answer is written to the kernel (it fits), and the connection lingers.
        usleep(500_000)
        let shutdown = proxy.shutdownInBackground()
        usleep(300_000)
        // A pipelining client goes on sending (the reason the close lingers).
        _ = TestUpstream.sendAll(client.fd, Array("GET /third HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        usleep(300_000)
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let got = TestUpstream.count(0x63, inBodyOf: bytes)
        #expect(got == body.count && error == 0,
                "a whole Connection: close answer lost to a reset at shutdown: \(got) of \(body.count) body bytes, then \(TestUpstream.endText(error))")
        Glibc.shutdown(client.fd, Int32(SHUT_RDWR))
        shutdown.wait(seconds: 25)
        proxy.upstream.stop()
    }

    // MARK: a close-delimited body is cut by a reset, after what came before is acknowledged

    static let wholeBody = [UInt8](repeating: 0x62, count: 512 << 10)

    /// A slow reader (4 KiB receive buffer) pipelines `requests`: "/big" is answered whole
    /// (512 KiB of `wholeBody`), "/brk" chunked and then reset mid-body. Returns 1.2 s in.
    static func cutBehindAWholeAnswer(_ requests: String) throws -> (ProxyHarness, TestClient) {
        let upstream = TestUpstream { request in
            request.target == "/brk"
                ? .sequence([Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".utf8), Array("5\r\nwor".utf8)],
                            gapSeconds: 0.3, ending: .reset)
                : .respond(status: 200, headers: [], body: wholeBody)
        }
        let proxy = try ProxyHarness(upstream: upstream)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send(requests)
        usleep(1_200_000)
        return (proxy, client)
    }


    /// An HTTP/1.0 keep-alive client with a slow reader pipelines two requests. The first
    /// answer (Content-Length, 512 KiB) is written whole to the kernel, so the second is taken
    /// up; the upstream answers it chunked (close-delimited towards this client) and resets
    /// mid-body. The reset that cuts it must wait until the first, complete answer is
    /// acknowledged: a reset discards everything unacknowledged in the send queue.
    @Test func aResetForACloseDelimitedCutDoesNotDestroyTheWholeAnswerAhead() throws {
        let (proxy, client) = try Self.cutBehindAWholeAnswer("GET /big HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET /brk HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        defer { proxy.stop() }
        let body = Self.wholeBody
        #expect(proxy.upstream.requests.count == 2, "the second request was not taken up (\(proxy.upstream.requests.count))")
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let got = TestUpstream.count(0x62, inBodyOf: bytes)
        #expect(got == body.count,
                "the first, complete answer lost to the reset that cut the second: \(got) of \(body.count) body bytes, then \(TestUpstream.endText(error))")
        // The cut one must still be told apart from a whole one.
        if got == body.count { #expect(error != 0, "the cut close-delimited answer ended in an orderly EOF") }
    }

    /// An HTTP/1.0 upload the upstream answers early, chunked (close-delimited towards the
    /// client); the client half-closes before its body is complete. An orderly FIN after
    /// "HTTP/1.1 200 ... early" would be a whole close-delimited response to the client, though
    /// the upstream never finished it: the cut must be a reset.
    @Test func aCloseDelimitedAnswerCutByTheClientsEOFIsNotWellFramed() throws {
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            guard TestUpstream.readHead(fd) else { return }
            guard TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nearly\r\n".utf8)) else { return }
            // The body goes on later; read the upload meanwhile.
            TestUpstream.discardInput(fd, forMillis: 3_000)
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5)
        try client.send("PUT /early HTTP/1.0\r\nHost: a\r\nContent-Length: 1000\r\n\r\n0123456789")
        usleep(500_000)
        shutdown(client.fd, Int32(SHUT_WR))
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200"), "\(text.debugDescription)")
        #expect(error != 0, "the cut close-delimited answer ended in an orderly EOF, indistinguishable from a whole one: \(text.debugDescription)")
    }

    /// send_timeout cuts a close-delimited (HTTP/1.0) answer to a reader that stalled: after
    /// an orderly close the kernel would deliver what it holds and then a FIN, so the client,
    /// reading on, would get a short body that looks whole.
    @Test func aCloseDelimitedAnswerCutBySendTimeoutIsNotWellFramed() throws {
        let total = 8 << 20
        let upstream = TestUpstream { _ in .untilClose(status: 200, body: [UInt8](repeating: 0x64, count: total)) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "limits: { send_timeout: 1s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /slow HTTP/1.0\r\nHost: a\r\n\r\n")
        usleep(2_500_000)
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let got = TestUpstream.count(0x64, inBodyOf: bytes)
        #expect(got == total || error != 0,
                "a close-delimited answer cut by send_timeout ended in an orderly EOF after \(got) of \(total) body bytes: it looks whole")
    }

    // MARK: the same without the shutdown, and with a framed cut

    /// The linger of the first test, without a shutdown: the whole answer.
    @Test func controlTheLingerAloneDeliversTheWholeAnswer() throws {
        let body = [UInt8](repeating: 0x63, count: 512 << 10)
        let upstream = TestUpstream { _ in .respond(status: 200, headers: [], body: body) }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(800_000)
        _ = TestUpstream.sendAll(client.fd, Array("GET /third HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        usleep(300_000)
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let got = TestUpstream.count(0x63, inBodyOf: bytes)
        #expect(got == body.count && error == 0, "\(got) of \(body.count), then \(TestUpstream.endText(error))")
    }

    /// The pipeline of the second test from an HTTP/1.1 client (the cut answer is chunked,
    /// framed): the cut lingers on unacknowledged bytes and the first answer arrives whole.
    @Test func controlAFramedCutKeepsTheWholeAnswerAhead() throws {
        let (proxy, client) = try Self.cutBehindAWholeAnswer("GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /brk HTTP/1.1\r\nHost: a\r\n\r\n")
        defer { proxy.stop() }
        let body = Self.wholeBody
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let got = TestUpstream.count(0x62, inBodyOf: bytes)
        #expect(got == body.count, "\(got) of \(body.count), then \(TestUpstream.endText(error))")
    }

    /// The cut's linger waits for the answer ahead to be acknowledged; the client half-closes
    /// (the proxy reads EOF and waits on), then resets. A read after the FIN reports 0, not
    /// the reset, and the level-triggered hang-up wakes the loop on every pass: the proxy must
    /// close, not spin until the linger's 10 s deadline.
    @Test func aResetAfterAHalfCloseDuringACutLingerDoesNotSpin() throws {
        let (proxy, client) = try Self.cutBehindAWholeAnswer(
            "GET /big HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET /brk HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        defer { proxy.stop() }
        #expect(proxy.upstream.requests.count == 2)
        Glibc.shutdown(client.fd, Int32(SHUT_WR))
        usleep(300_000)
        #expect(proxy.server.metrics.activeConnections.load(ordering: .relaxed) == 1, "the linger waits on after the half-close")
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        // Reset: the socket's last reference goes; the number stays valid for TestClient's deinit.
        let devNull = open("/dev/null", O_RDONLY)
        _ = dup2(devNull, client.fd)
        Glibc.close(devNull)
        // The spin lasts as long as the connection stays open, so its prompt close is what
        // shows the loop is free. (This process's CPU time would count every test running
        // alongside.)
        let resetAt = Date()
        while proxy.server.metrics.activeConnections.load(ordering: .relaxed) > 0 && Date().timeIntervalSince(resetAt) < 5 {
            usleep(20_000)
        }
        let waited = Date().timeIntervalSince(resetAt)
        #expect(waited < 1.5, "the connection stayed open \(waited) s after the client reset it during the linger")
    }
}
