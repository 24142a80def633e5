import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// A response the proxy must end before it is whole (its upstream reset or sent a body that
/// cannot be framed, its upload was cut): withdrawn and answered 502 while none of it has been
/// written; otherwise cut so the client can tell (a reset for a close-delimited body, else an
/// end short of its framing), without a reset destroying what the client has not yet
/// acknowledged, and without holding the connection, its slot or a shutdown longer than that.
@Suite(.serialized) struct CutResponseTests {
    typealias P = PipelinedBehindSlowReaderTests
    typealias C = CloseWithoutResetTests

    static func nowMillis() -> Int { TestUpstream.nowMillis() }

    /// Whatever the access-log pipe holds now (non-blocking).
    static func availableLines(_ fd: Int32) -> [String] {
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 0) == 1 else { break }
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return text.split(separator: "\n").map(String.init)
    }

    // MARK: a response none of which was written is withdrawn (SPEC §4)

    /// The upstream's head and a malformed first chunk arrive in one read: the head is queued
    /// but not yet written when the body fails. SPEC §4: request sent, no complete response,
    /// no response byte sent to the client → 502 `outcome-unknown`.
    @Test func aGuardedHeadWithAMalformedBodyInOneReadIsA502NotSilence() throws {
        let upstream = TestUpstream { _ in .raw(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8)) }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let key = "malformed-\(UInt32.random(in: 0...UInt32.max))"
        let client = try proxy.client(timeoutSeconds: 5)
        try client.send(P.guardedPost("/pay", key: key))
        do {
            let response = try client.readResponse(requestMethod: "POST")
            #expect(response.status == 502 && response.bodyText.contains("outcome-unknown"),
                    "got \(response.status) \(response.bodyText.prefix(200))")
        } catch {
            Issue.record("no response at all (\(error)), \(client.buffer.count) bytes: SPEC §4 wants 502 outcome-unknown when no response byte went out")
        }
        #expect(upstream.count(method: "POST") == 1)
    }

    /// The same for an unguarded request: an invalid response nothing of which went out is
    /// answered 502, as an invalid head is.
    @Test func anUnguardedHeadWithAMalformedBodyInOneReadIsA502NotSilence() throws {
        let upstream = TestUpstream { _ in .raw(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8)) }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 5)
        try client.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        do {
            let response = try client.readResponse()
            #expect(response.status == 502, "got \(response.status)")
        } catch {
            Issue.record("no response at all (\(error)), \(client.buffer.count) bytes")
        }
    }

    // MARK: closing with input unanswered

    /// Graceful shutdown while a keep-alive replay (written before the shutdown) is still
    /// queued for a slow pipelining client, its next request already read and held. Once the
    /// replay is written the connection closes unanswered requests behind it; the client keeps
    /// sending, and a plain close would answer that with a reset that discards the replay's
    /// tail still in the kernel. The held request counts as unread input: the close lingers.
    @Test func aShutdownCloseWithPipelinedInputBufferedDoesNotResetTheReplayAhead() throws {
        let proxy = try ProxyHarness(
            upstream: P.upstream(stored: P.big, chunkedEarly: false, broken: .silent),
            yaml: "idempotency: { max_stored_body: 8MiB }\nshutdown_grace: 20s\n")
        let post = P.guardedPost("/pay", key: "shut-\(UInt32.random(in: 0...UInt32.max))")
        var stored = 0
        do {
            let first = try proxy.client()
            try first.send(post)
            #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &stored).status == 201)
        }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(post + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        // The replay is under way (keep-alive: written before the shutdown).
        while client.buffer.count < 64 << 10 { guard try client.fill() else { throw TestClient.ClientError.closed } }
        #expect(!String(decoding: client.buffer.prefix(300), as: UTF8.self).lowercased().contains("connection: close"))
        let shutdown = proxy.shutdownInBackground()
        usleep(200_000)
        // Read on until what is left of the replay is surely with the proxy's kernel (its
        // `out` drained), then give the proxy time to act on the drain.
        var total = client.buffer.count
        var chunk = [UInt8](repeating: 0, count: 65536)
        let target = P.big.count - (384 << 10)
        while total < target {
            let n = read(client.fd, &chunk, min(chunk.count, target - total))
            if n <= 0 { break }
            total += n
        }
        usleep(400_000)
        // The next pipelined request.
        _ = TestUpstream.sendAll(client.fd, Array("GET /third HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        usleep(200_000)
        var error: Int32 = 0
        while true {
            let n = read(client.fd, &chunk, chunk.count)
            if n == 0 { break }
            if n < 0 { error = errno; break }
            total += n
        }
        #expect(total > P.big.count && error == 0,
                "received \(total) bytes (the replay's body alone is \(P.big.count)), then \(error == 0 ? "EOF" : String(cString: strerror(error)))")
        shutdown.wait(seconds: 25)
        proxy.upstream.stop()
    }

    // MARK: a close-delimited answer is cut by a reset

    /// An HTTP/1.0 client gets a chunked upstream answer as a close-delimited body (the
    /// connection's end is the body's end). The upstream resets mid-body: an orderly EOF would
    /// make the short body a complete, well-framed response. SPEC §4: "the client sees a
    /// truncated message ..., never a well-framed one". Only a reset can say so here.
    @Test func aCutCloseDelimitedAnswerToAnHTTP10ClientIsNotAWellFramedOne() throws {
        let upstream = TestUpstream { _ in
            .sequence([Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".utf8), Array("5\r\nwor".utf8)],
                      gapSeconds: 0.3, ending: .reset)
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 5)
        try client.send("GET /t HTTP/1.0\r\nHost: a\r\n\r\n")
        usleep(800_000)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var error: Int32 = 0
        while true {
            let n = read(client.fd, &chunk, chunk.count)
            if n == 0 { break }
            if n < 0 { error = errno; break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200"))
        #expect(!text.lowercased().contains("content-length") && !text.lowercased().contains("transfer-encoding"))
        #expect(error != 0, "the cut body ended in an orderly EOF, indistinguishable from a whole close-delimited response: \(text.debugDescription)")
    }

    // MARK: accounting and resources

    /// A cut while the client stays connected: one access-log line, written at the cut with a
    /// latency that does not include any linger, counted once; the connection ends.
    @Test func aCutIsLoggedOnceAtTheCutAndTheLingerEnds() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let upstream = TestUpstream { _ in
            .sequence([Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".utf8), Array("de".utf8)], gapSeconds: 0.2, ending: .reset)
        }
        let proxy = try ProxyHarness(upstream: upstream, accessLogFD: fds[1])
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 6)
        try client.send("GET /cut HTTP/1.1\r\nHost: a\r\n\r\n")
        let start = Self.nowMillis()
        do {
            _ = try client.readResponse()
            Issue.record("a whole answer")
        } catch {}
        let eof = Self.nowMillis() - start
        #expect(eof < 1_500, "the client saw the end only after \(eof) ms")
        usleep(500_000)
        let early = Self.availableLines(fds[0])
        #expect(early.count == 1, "\(early)")
        if let line = early.first,
           let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
           let duration = object["duration_ms"] as? Double {
            #expect(duration < 1_000, "latency \(duration) ms")
            #expect(object["status"] as? Int == 200)
        }
        // The client sends nothing: any linger ends at its quiet gap (2 s).
        usleep(2_500_000)
        #expect(Self.availableLines(fds[0]).isEmpty)
        let text = try proxy.admin("/metrics").bodyText
        #expect(text.contains("idemproxy_requests_total{outcome=\"unguarded\"} 1\n"))
        #expect(text.contains("idemproxy_request_duration_seconds_count{outcome=\"unguarded\"} 1\n"))
        #expect(text.contains("idemproxy_connections_active 0\n"), "the cut connection did not end")
    }

    /// A guarded request cut midway (the upstream resets after its head and part of the body)
    /// while the client stays connected: the record is `unknown` at once; a retry gets 409
    /// outcome-unknown.
    @Test func aGuardedCutSettlesAtOnce() throws {
        let upstream = TestUpstream { _ in
            .sequence([Array("HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\nabc".utf8), Array("de".utf8)], gapSeconds: 0.2, ending: .reset)
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let key = "gcut-\(UInt32.random(in: 0...UInt32.max))"
        let client = try proxy.client(timeoutSeconds: 6)
        try client.send(P.guardedPost("/pay", key: key))
        do {
            _ = try client.readResponse(requestMethod: "POST")
            Issue.record("a whole answer")
        } catch {}
        let record = try proxy.admin("/records?key=\(key)&scope=Bearer%20t")
        #expect(record.status == 200 && record.bodyText.contains("\"unknown\""), "\(record.status) \(record.bodyText)")
        let retry = try proxy.request(P.guardedPost("/pay", key: key))
        #expect(retry.status == 409 && retry.bodyText.contains("outcome-unknown"))
        #expect(upstream.count(method: "POST") == 1)
    }
    /// Graceful shutdown with a connection whose only exchange was cut and whose client keeps
    /// sending (a byte every 0.5 s, so a linger's 2 s quiet gap would never end it): the
    /// shutdown does not wait for it.
    @Test func aShutdownDoesNotWaitForACutConnection() throws {
        let upstream = TestUpstream { _ in
            .sequence([Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".utf8), Array("de".utf8)], gapSeconds: 0.2, ending: .reset)
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 20s\n")
        let client = try proxy.client(timeoutSeconds: 6)
        try client.send("GET /cut HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(500_000)  // cut
        let stop = Atomic<Bool>(false)
        let fd = client.fd
        let trickler = Thread {
            while !stop.load(ordering: .acquiring) {
                var byte: UInt8 = 0x78
                if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) < 0 { break }
                usleep(500_000)
            }
        }
        trickler.start()
        usleep(300_000)
        let start = Self.nowMillis()
        proxy.server.shutdown()
        let took = Self.nowMillis() - start
        stop.store(true, ordering: .releasing)
        proxy.upstream.stop()
        #expect(took < 3_000, "graceful shutdown waited \(took) ms for a connection whose only exchange was already cut")
    }
    /// The upload variant: an HTTP/1.0 upload (100 MB announced) the upstream answers early
    /// with a chunked body (so the client gets it close-delimited) and then resets while the
    /// client is still sending. The cut must reach the client as a reset, not an orderly EOF
    /// that makes the short body look whole.
    @Test func aCutCloseDelimitedAnswerToAnHTTP10UploadIsNotAWellFramedOne() throws {
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            guard TestUpstream.readHead(fd) else { return }
            guard TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nearly\r\n".utf8)) else { return }
            usleep(500_000)
            var option = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5)
        let head = Array("PUT /early HTTP/1.0\r\nHost: a\r\nContent-Length: 104857600\r\n\r\n".utf8)
        // The sender records its error: a reset is reported once, to whichever call sees it
        // first (SO_ERROR is cleared), so the read below may only see the EOF after it.
        let senderErrno = Atomic<Int32>(0)
        let fd = client.fd
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let payload = head + [UInt8](repeating: 0x75, count: 32 << 20)
        let sender = Thread {
            var offset = 0
            while offset < payload.count {
                let n = payload[offset...].withUnsafeBytes { send(fd, $0.baseAddress, min($0.count, 65536), Int32(MSG_NOSIGNAL)) }
                if n <= 0 { senderErrno.store(errno, ordering: .releasing); return }
                offset += n
            }
        }
        sender.start()
        usleep(1_200_000)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var error: Int32 = 0
        while true {
            let n = read(client.fd, &chunk, chunk.count)
            if n == 0 { break }
            if n < 0 { error = errno; break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let sendError = senderErrno.load(ordering: .acquiring)
        #expect(error != 0 || sendError == ECONNRESET,
                "the cut body ended in an orderly EOF (sender errno \(sendError)), indistinguishable from a whole close-delimited response: \(text.debugDescription)")
    }
    /// max_connections: 1. A cut whose client has acknowledged everything written frees its
    /// slot at once: nothing is left for a linger to protect.
    @Test func aCutWithEverythingAcknowledgedFreesItsSlotAtOnce() throws {
        let upstream = TestUpstream { request in
            request.target == "/cut"
                ? .sequence([Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".utf8), Array("de".utf8)], gapSeconds: 0.2, ending: .reset)
                : .respond(status: 200, headers: [], body: Array("ok".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "limits: { max_connections: 1 }\n")
        defer { proxy.stop() }
        let first = try proxy.client(timeoutSeconds: 6)
        try first.send("GET /cut HTTP/1.1\r\nHost: a\r\n\r\n")
        do { _ = try first.readResponse(); Issue.record("a whole answer") } catch {}
        let start = Self.nowMillis()
        let second = try proxy.client(timeoutSeconds: 6)
        try second.send("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
        let answer = try second.readResponse()
        let took = Self.nowMillis() - start
        #expect(answer.status == 200)
        #expect(took < 1_000, "the next client waited \(took) ms for the slot of a connection whose exchange was cut")
    }
}
