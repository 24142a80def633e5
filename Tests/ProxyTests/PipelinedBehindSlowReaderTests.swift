import Foundation
import Glibc
import Testing
import TestSupport

/// Requests pipelined behind an answer still queued for a slow reader (a replay is written
/// whole at once). The proxy takes the next request up only once the answers ahead are
/// written to the socket, as nginx does: a few KB of pipelined retries cannot queue gigabytes,
/// and when that request's own exchange is then cut (its body cut, stalled or malformed, its
/// upstream reset or stalled), the close cannot discard the earlier answers: they are whole
/// with the kernel, and only the cut answer is truncated (RFC 9112 §8).
@Suite(.serialized) struct PipelinedBehindSlowReaderTests {
    /// Larger than what the kernel's socket buffers take in on loopback (a few MiB), so most of
    /// a replay of it waits in the proxy for the slow reader.
    static let big = [UInt8](repeating: 0x62, count: 8 << 20)

    /// A head and 5 of 1000 body bytes.
    static let brokenHead = Array("HTTP/1.1 201 Created\r\nContent-Length: 1000\r\n\r\nearly".utf8)

    /// Answers `/pay` (and anything else) with `stored`; `/early` uploads as soon as their head
    /// arrives (5 of 1000 body bytes, or one chunk of a chunked answer); `/broken` as told.
    static func upstream(stored: [UInt8], chunkedEarly: Bool, broken: TestUpstream.Behaviour) -> TestUpstream {
        let upstream = TestUpstream { request in
            request.target == "/broken" ? broken : .respond(status: 201, headers: [], body: stored)
        }
        upstream.setEarlyAnswer { request in
            guard request.target == "/early" else { return nil }
            return Array((chunkedEarly
                ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nearly\r\n"
                : "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nearly").utf8)
        }
        return upstream
    }

    static func guardedPost(_ target: String, key: String) -> String {
        "POST \(target) HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}"
    }

    /// Stores `/pay`'s answer, then opens a client that reads slowly (a 4 KiB receive buffer)
    /// and sends the same POST, whose replay is queued, followed by `next(key)`. With
    /// `untilForwarded` it returns once `next` has reached the upstream (`readUntilForwarded`).
    static func replayAhead(
        of next: (_ key: String) -> String, untilForwarded: Bool = true, chunkedEarly: Bool = false,
        broken: TestUpstream.Behaviour = .silent, yaml: String = "", upstreamYAML: [String] = []
    ) throws -> (ProxyHarness, TestClient) {
        let proxy = try ProxyHarness(
            upstream: upstream(stored: big, chunkedEarly: chunkedEarly, broken: broken), upstreamYAML: upstreamYAML,
            yaml: "idempotency: { max_stored_body: 8MiB }\n" + yaml)
        let key = "behind-\(UInt32.random(in: 0...UInt32.max))"
        let post = guardedPost("/pay", key: key)
        var count = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(post + next(key))
        if untilForwarded { try readUntilForwarded(client, proxy.upstream, requests: 2) }
        return (proxy, client)
    }

    /// The client takes the replay a few KiB at a time until the request behind it reaches the
    /// upstream, then stops reading: what is left of the replay is with the kernel.
    static func readUntilForwarded(_ client: TestClient, _ upstream: TestUpstream, requests: Int) throws {
        while upstream.requests.count < requests {
            guard try client.fill() else { throw TestClient.ClientError.closed }
            usleep(100)
        }
    }

    /// Reads the replay whole, or records how much of it arrived.
    static func expectWholeReplay(_ client: TestClient) {
        var count = 0
        do {
            let replay = try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
            #expect(replay.status == 201)
            #expect(replay.value("idempotent-replayed") == "true")
            #expect(count == big.count)
        } catch {
            Issue.record("the replay queued ahead was cut: \(error), \(count) body bytes")
        }
    }

    /// After the replay: the cut answer's first bytes at most, then the close.
    static func expectTruncatedAnswer(_ client: TestClient, method: String = "GET") {
        do {
            let answer = try client.readResponse(requestMethod: method)
            Issue.record("a whole answer after the replay: \(answer.status) \(answer.bodyText.prefix(200))")
        } catch TestClient.ClientError.closed {
            // Truncated: what a cut must look like.
        } catch {
            Issue.record("after the replay: \(error)")
        }
    }

    static let earlyUpload = "PUT /early HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-ten.."

    // MARK: the request behind waits

    @Test func aRequestBehindAQueuedReplayWaitsUntilTheReplayIsWritten() throws {
        let (proxy, client) = try Self.replayAhead(of: { _ in "GET /next HTTP/1.1\r\nHost: a\r\n\r\n" }, untilForwarded: false)
        defer { proxy.stop() }
        usleep(500_000)
        #expect(proxy.upstream.count(method: "GET") == 0, "forwarded while most of the replay ahead was still queued")
        Self.expectWholeReplay(client)
        var count = 0
        let next = try client.readResponse(discardBody: true, bodyCount: &count)
        #expect(next.status == 201 && count == Self.big.count)
        #expect(proxy.upstream.count(method: "GET") == 1)
    }

    /// The requests behind the replay and the client's EOF after them: all answered in order,
    /// then the close.
    @Test func aHalfCloseBehindAQueuedReplayEndsTheConnectionAfterTheAnswers() throws {
        let (proxy, client) = try Self.replayAhead(
            of: { _ in "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n" }, untilForwarded: false)
        defer { proxy.stop() }
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(300_000)
        Self.expectWholeReplay(client)
        for _ in 0..<2 {
            var count = 0
            let answer = try client.readResponse(discardBody: true, bodyCount: &count)
            #expect(answer.status == 201 && count == Self.big.count)
        }
        #expect(client.isClosedByPeer())
        #expect(proxy.upstream.requests.map(\.target) == ["/pay", "/a", "/b"])
    }

    // MARK: the request's body ends it

    @Test func aRequestCutByTheEOFAfterAnEarlyAnswerLeavesTheReplayAheadWhole() throws {
        let (proxy, client) = try Self.replayAhead(of: { _ in Self.earlyUpload })
        defer { proxy.stop() }
        usleep(300_000)  // the upload upstream, its answer begun
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(300_000)
        Self.expectWholeReplay(client)
        Self.expectTruncatedAnswer(client, method: "PUT")
        #expect(proxy.upstream.count(method: "PUT") == 1)
    }

    /// Content-Length and chunked (re-framed) early answers alike.
    @Test(arguments: [false, true])
    func aBodyTimeoutAfterAnEarlyAnswerLeavesTheReplayAheadWhole(chunkedEarly: Bool) throws {
        let (proxy, client) = try Self.replayAhead(of: { _ in Self.earlyUpload }, chunkedEarly: chunkedEarly, yaml: "limits: { body_timeout: 1s }\n")
        defer { proxy.stop() }
        usleep(1_600_000)  // the upload's body stalls past body_timeout
        Self.expectWholeReplay(client)
        Self.expectTruncatedAnswer(client, method: "PUT")
    }

    @Test func aMalformedChunkAfterAnEarlyAnswerLeavesTheReplayAheadWhole() throws {
        let upload = "PUT /early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
        let (proxy, client) = try Self.replayAhead(of: { _ in upload })
        defer { proxy.stop() }
        usleep(300_000)
        try client.send("zz\r\n")  // not a chunk size (RFC 9112 §7.1)
        usleep(300_000)
        Self.expectWholeReplay(client)
        Self.expectTruncatedAnswer(client, method: "PUT")
    }

    // MARK: the upstream ends it

    static let resetMidBody = TestUpstream.Behaviour.sequence([brokenHead, Array("x".utf8)], gapSeconds: 0.3, ending: .reset)

    @Test func anUpstreamResetBehindTheReplayLeavesItWhole() throws {
        let (proxy, client) = try Self.replayAhead(of: { _ in "GET /broken HTTP/1.1\r\nHost: a\r\n\r\n" }, broken: Self.resetMidBody)
        defer { proxy.stop() }
        usleep(800_000)  // the head read, then the reset
        Self.expectWholeReplay(client)
        Self.expectTruncatedAnswer(client)
    }

    /// A guarded request whose response broke off after its head went out: the replay ahead is
    /// whole, the answer cut, and a retry never reaches the upstream again (SPEC §4).
    @Test(arguments: [false, true])
    func aGuardedResponseBrokenBehindTheReplayLeavesItWholeAndIsNotRunAgain(stalled: Bool) throws {
        let broken = stalled ? TestUpstream.Behaviour.sequence([Self.brokenHead], gapSeconds: 0, ending: .keepOpen) : Self.resetMidBody
        var brokenKey = ""
        let (proxy, client) = try Self.replayAhead(
            of: { key in
                brokenKey = key + "-broken"
                return Self.guardedPost("/broken", key: brokenKey)
            }, broken: broken, upstreamYAML: ["response_timeout: 1s"])
        defer { proxy.stop() }
        usleep(stalled ? 1_700_000 : 800_000)
        Self.expectWholeReplay(client)
        Self.expectTruncatedAnswer(client, method: "POST")
        let retry = try proxy.client()
        try retry.send(Self.guardedPost("/broken", key: brokenKey))
        let answer = try retry.readResponse(requestMethod: "POST")
        #expect(answer.status >= 400, "the retry got \(answer.status)")
        #expect(proxy.upstream.requests.filter { $0.target == "/broken" }.count == 1)
    }

    // MARK: the proxy holds the upstream back

    /// The same while the request body still streams: the upstream reads the head, answers at
    /// once with a whole 4 MiB body, and the client, 16 KiB into its upload, reads nothing for
    /// 1.8 s: past response_timeout (1 s), well within send_timeout and body_timeout (30 s).
    /// The upstream is not stalled (its answer waits in the proxy's paused socket), so the
    /// answer must reach the client whole, as it does once the body is complete.
    @Test func aWholeEarlyAnswerWaitingOnASlowReaderWhileTheUploadStreamsIsNotCut() throws {
        let answerSize = 4 << 20
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            guard TestUpstream.readHead(fd) else { return }
            let head = Array("HTTP/1.1 200 OK\r\nContent-Length: \(answerSize)\r\n\r\n".utf8)
            _ = TestUpstream.sendAll(fd, head + [UInt8](repeating: 0x61, count: answerSize))
            // Then takes the rest of the upload, as a server answering early does.
            TestUpstream.discardInput(fd, forMillis: 10_000)
        }
        let proxy = try ProxyHarness(upstream: upstream, upstreamYAML: ["response_timeout: 1s"])
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send("PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n")
        try client.send([UInt8](repeating: 0x62, count: 16384))
        usleep(1_800_000)
        var count = 0
        var status = 0
        var failure = ""
        do {
            status = try client.readResponse(requestMethod: "PUT", discardBody: true, bodyCount: &count).status
        } catch {
            failure = "\(error)"
        }
        #expect(status == 200 && count == answerSize, "status \(status), \(count) of \(answerSize) body bytes, error: \(failure)")
    }

    /// response_timeout (1 s) runs out while the upstream's whole answer waits unread in the
    /// proxy, which paused reading for a client slow to take it: the upstream is not stalled,
    /// so its answer goes out whole and, for a guarded request, is stored.
    @Test(arguments: [true, false])
    func aWholeAnswerWaitingOnASlowReaderIsNotBlamedOnTheUpstream(guarded: Bool) throws {
        var wholeKey = ""
        let (proxy, client) = try Self.replayAhead(
            of: { key in
                wholeKey = key + "-whole"
                return guarded ? Self.guardedPost("/whole", key: wholeKey) : "GET /whole HTTP/1.1\r\nHost: a\r\n\r\n"
            }, upstreamYAML: ["response_timeout: 1s"])
        defer { proxy.stop() }
        usleep(1_800_000)
        Self.expectWholeReplay(client)
        var count = 0
        let answer = try client.readResponse(requestMethod: guarded ? "POST" : "GET", discardBody: true, bodyCount: &count)
        #expect(answer.status == 201, "\(answer.status) \(answer.bodyText.prefix(200))")
        #expect(count == Self.big.count)
        guard guarded else { return }
        var retried = 0
        let retry = try proxy.client()
        try retry.send(Self.guardedPost("/whole", key: wholeKey))
        let replay = try retry.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &retried)
        #expect(replay.status == 201 && replay.value("idempotent-replayed") == "true", "the retry got \(replay.status)")
        #expect(proxy.upstream.requests.filter { $0.target == "/whole" }.count == 1)
    }

    /// The same for a close-delimited answer (RFC 9112 §6.3 rule 8), whole only at the
    /// upstream's EOF, which may be all that waits unread in the paused socket.
    @Test(arguments: [false, true])
    func aWholeCloseDelimitedAnswerWaitingOnASlowReaderIsNotA504(guarded: Bool) throws {
        let body = [UInt8](repeating: 0x63, count: 6 << 20)
        let proxy = try ProxyHarness(
            upstream: Self.upstream(stored: Self.big, chunkedEarly: false, broken: .untilClose(status: 200, body: body)),
            upstreamYAML: ["response_timeout: 1s"], yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let key = "close-\(UInt32.random(in: 0...UInt32.max))"
        let request = guarded ? Self.guardedPost("/broken", key: key) : "GET /broken HTTP/1.1\r\nHost: a\r\n\r\n"
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(request)
        usleep(1_800_000)  // past response_timeout, nothing read
        var count = 0
        let answer = try client.readResponse(requestMethod: guarded ? "POST" : "GET", discardBody: true, bodyCount: &count)
        #expect(answer.status == 200 && count == body.count, "\(answer.status), \(count) body bytes")
        guard guarded else { return }
        let retry = try proxy.client()
        try retry.send(request)
        let replay = try retry.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
        #expect(replay.status == 200 && replay.value("idempotent-replayed") == "true", "the retry got \(replay.status)")
    }

    /// The same with nothing pipelined: one guarded request whose 4 MiB answer the client does
    /// not read for longer than response_timeout.
    @Test func aWholeGuardedAnswerToAPausedReaderIsStoredNotMarkedUnknown() throws {
        let large = [UInt8](repeating: 0x62, count: 4 << 20)
        let proxy = try ProxyHarness(
            upstream: Self.upstream(stored: large, chunkedEarly: false, broken: .silent), upstreamYAML: ["response_timeout: 1s"],
            yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let post = Self.guardedPost("/pay", key: "paused-\(UInt32.random(in: 0...UInt32.max))")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(post)
        usleep(1_800_000)
        var count = 0
        #expect(try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count).status == 201)
        #expect(count == large.count)
        let again = try proxy.client()
        try again.send(post)
        var replayed = 0
        #expect(try again.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &replayed).value("idempotent-replayed") == "true")
        #expect(proxy.upstream.count(method: "POST") == 1)
    }

    // MARK: nothing ahead

    /// Nothing queued ahead: the early answer's head goes out at once, so a cut can only end
    /// it as a truncated message.
    @Test func withNothingAheadTheEarlyAnswerIsCutNotReplaced() throws {
        let proxy = try ProxyHarness(upstream: Self.upstream(stored: Self.big, chunkedEarly: false, broken: .silent))
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 3)
        try client.send(Self.earlyUpload)
        usleep(300_000)
        shutdown(client.fd, Int32(SHUT_WR))
        while (try? client.fill()) == true {}
        let received = String(decoding: client.buffer, as: UTF8.self)
        #expect(received.hasPrefix("HTTP/1.1 200"))
        #expect(received.hasSuffix("\r\n\r\nearly"), "the early answer, cut after its first bytes: \(received)")
    }
}
