import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// An answer the proxy has written may still sit in its kernel send queue, unread by a slow
/// client, when a later exchange on the connection is cut or the connection closes. A plain
/// close with client bytes still unread in the kernel (an upload still arriving, pipelined
/// requests beyond the read-ahead bound) makes Linux send a reset that discards that queue
/// (RFC 9112 §9.6), truncating an answer that was whole. The proxy shuts its write side and
/// drains the input instead (lingering). The tests after those probe how requests held behind
/// a queued answer are taken up, timed and ended.
@Suite(.serialized) struct CloseWithoutResetTests {
    typealias P = PipelinedBehindSlowReaderTests

    static func nowMillis() -> Int { TestUpstream.nowMillis() }

    /// Sends `bytes` from another thread (bounded by a 5 s send timeout), so a proxy that
    /// stops reading cannot block the test.
    static func sendInBackground(_ fd: Int32, _ bytes: [UInt8]) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let sender = Thread { _ = TestUpstream.sendAll(fd, bytes) }
        sender.start()
    }

    /// Reads the replay ahead whole; returns how many body bytes arrived and the error, if any.
    static func readReplay(_ client: TestClient) -> (count: Int, error: (any Error)?) {
        var count = 0
        do {
            let replay = try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
            #expect(replay.status == 201)
            return (count, nil)
        } catch {
            return (count, error)
        }
    }

    /// What the client receives until the end of the connection, or until `limit` bytes: the
    /// byte count (what `readUntilForwarded` already buffered included) and the errno that
    /// ended it (0 for an orderly EOF or the limit, ECONNRESET for a RST).
    static func drain(_ client: TestClient, limit: Int = P.big.count + (1 << 20)) -> (bytes: Int, errno: Int32) {
        var total = client.buffer.count
        var chunk = [UInt8](repeating: 0, count: 65536)
        while total < limit {
            let n = read(client.fd, &chunk, chunk.count)
            if n == 0 { return (total, 0) }
            if n < 0 { return (total, errno) }
            total += n
        }
        return (total, 0)
    }

    /// The replay ahead (8 MiB of body) must arrive whole, before the connection ends.
    static func expectReplayDelivered(_ client: TestClient) {
        let (bytes, error) = drain(client)
        #expect(bytes > P.big.count && error == 0,
                "received \(bytes) bytes in all (the replay's body alone is \(P.big.count)), then \(error == 0 ? "EOF" : String(cString: strerror(error)))")
    }

    // MARK: a cut behind the replay with client bytes unread in the kernel

    /// A malformed chunk behind the replay, with the broken upload going on after its malformed
    /// line (as a streaming client's would): most of those bytes are unread when the response
    /// is cut.
    @Test func aMalformedChunkWithMoreUploadBehindItLeavesTheReplayAheadWhole() throws {
        let upload = "PUT /early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
        let (proxy, client) = try P.replayAhead(of: { _ in upload })
        defer { proxy.stop() }
        usleep(300_000)  // the early answer's head is out
        Self.sendInBackground(client.fd, Array("zz\r\n".utf8) + [UInt8](repeating: 0x7A, count: 256 << 10))
        usleep(500_000)
        Self.expectReplayDelivered(client)
    }

    /// An upstream reset behind the replay with a long pipeline behind the broken GET (more
    /// than the 64 KiB the proxy reads ahead, so the rest waits unread in the kernel).
    @Test func anUpstreamResetBehindTheReplayWithALongPipelineLeavesItWhole() throws {
        let proxy = try ProxyHarness(
            upstream: P.upstream(stored: P.big, chunkedEarly: false, broken: P.resetMidBody),
            yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let post = P.guardedPost("/pay", key: "rst-\(UInt32.random(in: 0...UInt32.max))")
        var stored = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &stored).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        let filler = String(repeating: "GET /later HTTP/1.1\r\nHost: a\r\n\r\n", count: 8000)  // ~260 KB
        Self.sendInBackground(client.fd, Array((post + "GET /broken HTTP/1.1\r\nHost: a\r\n\r\n" + filler).utf8))
        try P.readUntilForwarded(client, proxy.upstream, requests: 2)
        usleep(800_000)  // the broken answer's head, then the upstream's reset
        Self.expectReplayDelivered(client)
    }

    /// An upload behind the replay whose early answer the upstream breaks off (reset) while the
    /// client is still sending the body (held back by back-pressure, unread in the kernel).
    @Test func anUploadCutByTheUpstreamWhileStillSendingLeavesTheReplayAheadWhole() throws {
        let uploadSeen = Atomic<Bool>(false)
        let big = P.big
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            var buffer: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                var headEnd = TestUpstream.find([13, 10, 13, 10], in: buffer)
                while headEnd == nil {
                    let n = read(fd, &chunk, chunk.count)
                    if n <= 0 { return }
                    buffer += chunk[0..<n]
                    headEnd = TestUpstream.find([13, 10, 13, 10], in: buffer)
                }
                let isPay = buffer.starts(with: Array("POST /pay".utf8))
                buffer.removeFirst(headEnd! + 4)
                if isPay {
                    while buffer.count < 2 {
                        let n = read(fd, &chunk, chunk.count)
                        if n <= 0 { return }
                        buffer += chunk[0..<n]
                    }
                    buffer.removeFirst(2)
                    guard TestUpstream.sendAll(fd, Array("HTTP/1.1 201 Created\r\nContent-Length: \(big.count)\r\n\r\n".utf8) + big) else { return }
                    continue
                }
                uploadSeen.store(true, ordering: .releasing)
                guard TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nearly".utf8)) else { return }
                // Takes no more of the body (the proxy's queue for it fills, so it stops
                // reading the client), then resets.
                usleep(500_000)
                var option = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
                return
            }
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let post = P.guardedPost("/pay", key: "upload-\(UInt32.random(in: 0...UInt32.max))")
        var stored = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &stored).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        let head = Array((post + "PUT /early HTTP/1.1\r\nHost: a\r\nContent-Length: 104857600\r\n\r\n").utf8)
        Self.sendInBackground(client.fd, head + [UInt8](repeating: 0x75, count: 32 << 20))
        while !uploadSeen.load(ordering: .acquiring) {
            guard try client.fill() else { throw TestClient.ClientError.closed }
            usleep(100)
        }
        usleep(1_000_000)
        Self.expectReplayDelivered(client)
    }

    /// A replay answered with `Connection: close`, with more than the 64 KiB read-ahead bound
    /// pipelined behind it (never to be answered): the close after the replay must not be a
    /// reset that discards its tail.
    @Test func aCloseAfterAQueuedAnswerWithAPipelineUnreadLeavesTheAnswerWhole() throws {
        let proxy = try ProxyHarness(
            upstream: P.upstream(stored: P.big, chunkedEarly: false, broken: .silent), yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let key = "close-\(UInt32.random(in: 0...UInt32.max))"
        let post = P.guardedPost("/pay", key: key)
        var stored = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &stored).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        let closing = post.replacingOccurrences(of: "Host: a\r\n", with: "Host: a\r\nConnection: close\r\n")
        let filler = String(repeating: "GET /later HTTP/1.1\r\nHost: a\r\n\r\n", count: 8000)  // ~260 KB
        Self.sendInBackground(client.fd, Array((closing + filler).utf8))
        usleep(800_000)
        let (bytes, error) = Self.drain(client)
        #expect(bytes > P.big.count && error == 0,
                "received \(bytes) bytes (the replay's body alone is \(P.big.count)), then \(error == 0 ? "EOF" : String(cString: strerror(error)))")
        #expect(proxy.upstream.count(method: "GET") == 0)
    }

    // MARK: held requests are taken up, timed and ended

    /// Three replays pipelined (the first finishes inside `process` with output queued, the
    /// others are taken up by `flushOut`, each writing its own replay from inside it), then the
    /// half-close: all three whole, then the close.
    @Test func pipelinedReplaysAndAHalfCloseAreAllAnsweredThenClosed() throws {
        let proxy = try ProxyHarness(
            upstream: P.upstream(stored: P.big, chunkedEarly: false, broken: .silent), yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let post = P.guardedPost("/pay", key: "three-\(UInt32.random(in: 0...UInt32.max))")
        var stored = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &stored).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(String(repeating: post, count: 3))
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(300_000)
        for index in 0..<3 {
            let (count, error) = Self.readReplay(client)
            #expect(error == nil && count == P.big.count, "replay \(index): \(count) bytes, \(String(describing: error))")
        }
        #expect(client.isClosedByPeer())
        #expect(proxy.upstream.count(method: "POST") == 1)
    }

    /// A complete request held behind a replay the client leaves unread for longer than
    /// header_timeout (send_timeout is long): it is not a 408.
    @Test func aCompleteHeldRequestIsNotA408AtHeaderTimeout() throws {
        let (proxy, client) = try P.replayAhead(
            of: { _ in "GET /next HTTP/1.1\r\nHost: a\r\n\r\n" }, untilForwarded: false,
            yaml: "limits: { header_timeout: 1s, send_timeout: 20s }\n")
        defer { proxy.stop() }
        usleep(2_500_000)
        let (count, error) = Self.readReplay(client)
        #expect(error == nil && count == P.big.count, "\(count) bytes, \(String(describing: error))")
        var nextCount = 0
        let next = try client.readResponse(discardBody: true, bodyCount: &nextCount)
        #expect(next.status == 201 && nextCount == P.big.count, "the held request got \(next.status)")
    }

    /// A client that reads nothing, with a request held behind the replay: send_timeout (1 s)
    /// still ends the connection (the replay is cut, the held request never forwarded).
    @Test func aHeldRequestDoesNotKeepANonReadingClientPastSendTimeout() throws {
        let (proxy, client) = try P.replayAhead(
            of: { _ in "GET /next HTTP/1.1\r\nHost: a\r\n\r\n" }, untilForwarded: false, yaml: "limits: { send_timeout: 1s }\n")
        defer { proxy.stop() }
        usleep(3_000_000)
        let (count, error) = Self.readReplay(client)
        #expect(error != nil, "the whole replay (\(count) bytes) still came after 3 s unread with send_timeout 1s")
        #expect(proxy.upstream.count(method: "GET") == 0)
    }

    /// A partial head held behind the replay, then the half-close: the replay whole, then the
    /// close (no 408, no connection left open until header_timeout).
    @Test func aPartialHeadHeldBehindTheReplayThenEOFClosesAfterTheReplay() throws {
        let (proxy, client) = try P.replayAhead(of: { _ in "GET /next HTTP/1.1\r\nHo" }, untilForwarded: false)
        defer { proxy.stop() }
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(300_000)
        let (count, error) = Self.readReplay(client)
        #expect(error == nil && count == P.big.count, "\(count) bytes, \(String(describing: error))")
        let start = Self.nowMillis()
        #expect(client.isClosedByPeer(), "not closed after the replay")
        #expect(Self.nowMillis() - start < 2_000)
        #expect(proxy.upstream.count(method: "GET") == 0)
    }

    /// More than the 64 KiB read-ahead bound pipelined behind a replay (reads stop while held),
    /// then the half-close: every request answered in order once the replay is out, then the
    /// close (reads resume after the bound; the EOF is noticed).
    @Test func aPipelineBeyondTheReadAheadBoundIsAnsweredThenClosed() throws {
        let stored = [UInt8](repeating: 0x62, count: 4 << 20)
        let upstream = TestUpstream { request in
            request.target == "/pay" ? .respond(status: 201, headers: [], body: stored) : .respond(status: 200, headers: [], body: Array("s".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let post = P.guardedPost("/pay", key: "bound-\(UInt32.random(in: 0...UInt32.max))")
        var count = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        let gets = 3000  // ~100 KB
        let bytes = Array((post + String(repeating: "GET /s HTTP/1.1\r\nHost: a\r\n\r\n", count: gets)).utf8)
        let fd = client.fd
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let sender = Thread {
            if TestUpstream.sendAll(fd, bytes) { shutdown(fd, Int32(SHUT_WR)) }
        }
        sender.start()
        usleep(500_000)
        let replay = try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
        #expect(replay.status == 201 && count == stored.count)
        var answered = 0
        while answered < gets {
            guard let answer = try? client.readResponse(), answer.status == 200 else { break }
            answered += 1
        }
        #expect(answered == gets)
        #expect(client.isClosedByPeer())
    }
}
