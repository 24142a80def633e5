import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// A client that reads slowly or not at all must not hold a connection forever (SPEC §5: a
/// send timeout on every phase) nor make the proxy queue output without bound.
@Suite(.serialized) struct SlowReaderBoundsTests {
    static func nowMillis() -> Int { TestUpstream.nowMillis() }

    /// True once the peer closed or reset `fd` (without reading it).
    static func peerGone(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN) | 0x2000 /* POLLRDHUP */, revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        return p.revents & (Int16(POLLHUP) | Int16(POLLERR) | 0x2000) != 0
    }

    /// Sends `piece` on `fd` from another thread, pausing `pauseMicros` after each send, for
    /// `seconds` or until the connection breaks; returns the count of bytes sent so far.
    static func keepUploading(_ fd: Int32, pieceBytes: Int, pauseMicros: UInt32, seconds: Int) -> SeenCount {
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let sentBytes = SeenCount()
        sentBytes.value.store(0, ordering: .relaxed)
        Thread {
            let piece = [UInt8](repeating: 0x62, count: pieceBytes)
            let deadline = nowMillis() + seconds * 1000
            while nowMillis() < deadline {
                let n = piece.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 { sentBytes.value.add(n, ordering: .relaxed) } else if errno != EAGAIN && errno != EWOULDBLOCK { return }
                if pauseMicros > 0 { usleep(pauseMicros) }
            }
        }.start()
        return sentBytes
    }

    /// Waits up to `seconds` for both the client's connection to be cut and the upstream to
    /// see its own close; returns whether the client's was.
    static func waitForBothEnds(_ client: TestClient, upstreamSawClose: borrowing Atomic<Int>, seconds: Int) -> Bool {
        var clientCut = false
        let deadline = nowMillis() + seconds * 1000
        while nowMillis() < deadline {
            if peerGone(client.fd) { clientCut = true }
            if clientCut && upstreamSawClose.load(ordering: .acquiring) >= 0 { break }
            usleep(50_000)
        }
        return clientCut
    }

    // MARK: an upload held back, its early answer unread

    /// An upload the upstream answers early (a large body) and never reads; the client never
    /// reads the answer either. The proxy pauses the upstream for the client (its answer waits
    /// unread) and holds the upload back for the upstream (the body timer pauses). The
    /// upstream's timer re-arms for a paused socket with bytes waiting only while send_timeout
    /// runs, so response_timeout still ends the exchange. SPEC §5: slow readers never hold a
    /// connection forever.
    @Test func anEarlyAnswerNobodyReadsWithTheUploadHeldBackStillEnds() throws {
        let start = Self.nowMillis()
        let upstreamSawClose = Atomic<Int>(-1)
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            guard TestUpstream.readHead(fd) else { return }
            var small: Int32 = 4096
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            let head = Array("HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n".utf8)
            guard head.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == head.count else { return }
            let chunk = [UInt8](repeating: 0x61, count: 65536)
            // Answers as fast as the proxy takes it, never reads the upload.
            let deadline = Self.nowMillis() + 18_000
            while Self.nowMillis() < deadline {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                    upstreamSawClose.store(Self.nowMillis() - start, ordering: .releasing)
                    return
                }
                if n < 0 {
                    if Self.peerGone(fd) {
                        upstreamSawClose.store(Self.nowMillis() - start, ordering: .releasing)
                        return
                    }
                    usleep(20_000)
                }
            }
        }
        let proxy = try ProxyHarness(
            upstream: upstream, upstreamYAML: ["response_timeout: 1s"],
            yaml: "limits: { send_timeout: 1s, body_timeout: 1s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 2, receiveBuffer: 4096)
        try client.send("PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1073741824\r\n\r\n")
        // The upload, sent from another thread until the connection breaks or 15 s pass.
        let sentBytes = Self.keepUploading(client.fd, pieceBytes: 65536, pauseMicros: 0, seconds: 15)
        // send_timeout (1 s), body_timeout (1 s) and response_timeout (1 s) are all short:
        // whichever applies, the upstream is dropped within a few seconds. The client's
        // connection then lingers (the response is cut; what was written before it must still
        // be deliverable), bounded at 10 s in all while the client keeps sending.
        let clientCut = Self.waitForBothEnds(client, upstreamSawClose: upstreamSawClose, seconds: 14)
        let elapsed = Self.nowMillis() - start
        #expect(clientCut, "the client connection is still open after \(elapsed) ms (client sent \(sentBytes.value.load(ordering: .relaxed)) upload bytes)")
        let upstreamClosedAfter = upstreamSawClose.load(ordering: .acquiring)
        #expect(upstreamClosedAfter >= 0 && upstreamClosedAfter < 5_000, "the upstream connection closed after \(upstreamClosedAfter) ms (-1: never)")
        shutdown(client.fd, Int32(SHUT_RDWR))
        usleep(300_000)
    }

    // MARK: an upload that flows while its early answer waits unread

    /// The upstream reads the upload as it comes and answers early with a large body; the
    /// client keeps uploading but never reads the answer. Body bytes keep arriving (so
    /// body_timeout never fires) and the upstream keeps reading and answering (so neither does
    /// response_timeout): only send_timeout can end it, though the connection's timer measures
    /// the body meanwhile. SPEC §5: a send timeout on every phase.
    @Test func anUploadThatFlowsDoesNotKeepAnUnreadAnswerAlive() throws {
        let start = Self.nowMillis()
        let upstreamSawClose = Atomic<Int>(-1)
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            guard TestUpstream.readHead(fd) else { return }
            let head = Array("HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n".utf8)
            guard head.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == head.count else { return }
            let chunk = [UInt8](repeating: 0x61, count: 65536)
            var sink = [UInt8](repeating: 0, count: 65536)
            let deadline = Self.nowMillis() + 15_000
            while Self.nowMillis() < deadline {
                var received = 0
                repeat { received = recv(fd, &sink, sink.count, Int32(MSG_DONTWAIT)) } while received > 0
                let sent = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if received == 0 || (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || (sent < 0 && Self.peerGone(fd)) {
                    upstreamSawClose.store(Self.nowMillis() - start, ordering: .releasing)
                    return
                }
                if sent < 0 { usleep(5_000) }
            }
        }
        let proxy = try ProxyHarness(
            upstream: upstream, upstreamYAML: ["response_timeout: 5s"],
            yaml: "limits: { send_timeout: 1s, body_timeout: 5s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 2, receiveBuffer: 4096)
        try client.send("PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1073741824\r\n\r\n")
        // 16 KiB every 5 ms (about 3 MB/s), for 12 s or until the connection breaks.
        let sentBytes = Self.keepUploading(client.fd, pieceBytes: 16384, pauseMicros: 5_000, seconds: 12)
        let clientCut = Self.waitForBothEnds(client, upstreamSawClose: upstreamSawClose, seconds: 8)
        let elapsed = Self.nowMillis() - start
        #expect(clientCut, "the client connection is still open after \(elapsed) ms (it sent \(sentBytes.value.load(ordering: .relaxed)) upload bytes)")
        let upstreamClosedAfter = upstreamSawClose.load(ordering: .acquiring)
        #expect(upstreamClosedAfter >= 0 && upstreamClosedAfter < 6_000, "the upstream connection closed after \(upstreamClosedAfter) ms (-1: not yet)")
        shutdown(client.fd, Int32(SHUT_RDWR))
        usleep(300_000)
    }

    // MARK: a pipeline of replays for a client that reads nothing

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// One stored 2 MiB answer, then 200 retries of it pipelined in one write by a client that
    /// reads nothing. Each replay is written synchronously into the connection's output and
    /// reads are never paused in awaitingHead, so ~30 KB of requests make ~400 MB of queued
    /// output in one connection (bounded only in time, by send_timeout).
    @Test func aPipelineOfReplaysForANonReadingClientDoesNotQueueWithoutBound() throws {
        let stored = [UInt8](repeating: 0x63, count: 2 << 20)
        let upstream = TestUpstream { _ in .respond(status: 201, headers: [], body: stored) }
        let proxy = try ProxyHarness(
            upstream: upstream, yaml: "idempotency: { max_stored_body: 8MiB }\nlimits: { send_timeout: 3s }\n")
        defer { proxy.stop() }
        let post = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: amplify-\(UInt32.random(in: 0...UInt32.max))\r\nContent-Length: 2\r\n\r\n{}"
        let first = try proxy.client()
        try first.send(post)
        var count = 0
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count).status == 201)
        let before = Self.residentBytes()
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(String(repeating: post, count: 200))
        usleep(1_000_000)
        let grown = Self.residentBytes() - before
        #expect(grown < 64 << 20, "\(String(post.utf8.count * 200)) request bytes grew the proxy's resident memory by \(grown >> 20) MiB")
        client.resetOnClose()
    }

    // MARK: a half-close with garbage pipelined behind a replay

    /// A replay queued for a slow reader, a GET forwarded behind it, then garbage and the EOF:
    /// the answers go out in order, then the 400, then the close.
    @Test func garbageAfterAHalfCloseIsAnsweredAfterTheEarlierAnswersInOrder() throws {
        let stored = [UInt8](repeating: 0x64, count: 1 << 20)
        let upstream = TestUpstream { request in
            request.target == "/pay" ? .respond(status: 201, headers: [], body: stored) : .delayed(seconds: 0.3, status: 200, body: Array("second".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let post = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: garbage-\(UInt32.random(in: 0...UInt32.max))\r\nContent-Length: 2\r\n\r\n{}"
        let first = try proxy.client()
        try first.send(post)
        var count = 0
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(post + "GET /second HTTP/1.1\r\nHost: a\r\n\r\n" + "G\u{1}T / HTTP/1.1\r\n\r\n")
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(800_000)
        let replay = try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
        #expect(replay.status == 201 && count == stored.count)
        let second = try client.readResponse()
        #expect(second.status == 200 && second.bodyText == "second")
        let bad = try client.readResponse()
        #expect(bad.status == 400)
        #expect(client.isClosedByPeer())
        #expect(upstream.count(method: "GET") == 1)
    }
}
