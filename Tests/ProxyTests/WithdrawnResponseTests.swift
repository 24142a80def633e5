import Foundation
import Glibc
import Testing
import TestSupport

/// A response the upstream began that must end before it is whole (its request cut by the
/// client's EOF, a body timeout, a malformed chunked body, an upstream that resets or stalls
/// mid-body) while answers to earlier pipelined requests are still queued ahead of it for a
/// slow reader. None of it has gone out, so it is withdrawn: the earlier answers go out whole,
/// then the exchange ends as if the upstream had never answered. An abort there would cut a
/// replay of a request that already ran.
@Suite(.serialized) struct WithdrawnResponseTests {
    static let big = [UInt8](repeating: 0x62, count: 4 << 20)

    /// A head and 5 of 1000 body bytes.
    static let brokenHead = Array("HTTP/1.1 201 Created\r\nContent-Length: 1000\r\n\r\nearly".utf8)

    /// Answers `/pay` with `stored`; `/early` uploads as soon as their head arrives (5 of 1000
    /// body bytes, or one chunk of a chunked answer); `/broken` as told.
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
    /// and sends the same POST, whose replay stays queued, followed by `next(key)`.
    static func replayAhead(
        of next: (_ key: String) -> String, stored: [UInt8] = big, chunkedEarly: Bool = false,
        broken: TestUpstream.Behaviour = .silent, yaml: String = "", upstreamYAML: [String] = [], accessLogFD: Int32? = nil
    ) throws -> (ProxyHarness, TestClient) {
        let proxy = try ProxyHarness(
            upstream: upstream(stored: stored, chunkedEarly: chunkedEarly, broken: broken), upstreamYAML: upstreamYAML,
            yaml: "idempotency: { max_stored_body: 8MiB }\n" + yaml, accessLogFD: accessLogFD)
        let key = "withdrawn-\(UInt32.random(in: 0...UInt32.max))"
        let post = guardedPost("/pay", key: key)
        var count = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(post + next(key))
        return (proxy, client)
    }

    /// Reads the replay whole, or records how much of it arrived.
    static func expectWholeReplay(_ client: TestClient, size: Int = big.count) {
        var count = 0
        do {
            let replay = try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
            #expect(replay.status == 201)
            #expect(replay.value("idempotent-replayed") == "true")
            #expect(count == size)
        } catch {
            Issue.record("the replay queued ahead was cut: \(error), \(count) body bytes")
        }
    }

    static let earlyUpload = "PUT /early HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-ten.."

    // MARK: the request's body ends it

    @Test func aRequestCutByTheEOFAfterAnEarlyAnswerLeavesTheReplayAheadWhole() throws {
        let (proxy, client) = try Self.replayAhead(of: { _ in Self.earlyUpload })
        defer { proxy.stop() }
        usleep(500_000)  // the replay is queued, the upload upstream, its answer begun
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(300_000)
        Self.expectWholeReplay(client)
        // The upload's own answer was withdrawn: nothing of it follows, the connection ends.
        #expect(client.isClosedByPeer(), "after the replay: \(String(decoding: client.buffer.prefix(200), as: UTF8.self))")
        #expect(proxy.upstream.count(method: "PUT") == 1)
    }

    /// Content-Length and chunked (re-framed) early answers alike.
    @Test(arguments: [false, true])
    func aBodyTimeoutAfterAnEarlyAnswerLeavesTheReplayAheadWholeAndAnswers408(chunkedEarly: Bool) throws {
        let (proxy, client) = try Self.replayAhead(of: { _ in Self.earlyUpload }, chunkedEarly: chunkedEarly, yaml: "limits: { body_timeout: 1s }\n")
        defer { proxy.stop() }
        usleep(1_600_000)  // the upload's body stalls past body_timeout
        Self.expectWholeReplay(client)
        let timeout = try client.readResponse()
        #expect(timeout.status == 408)
        #expect(!timeout.bodyText.contains("early"))
        #expect(client.isClosedByPeer())
    }

    @Test func aMalformedChunkAfterAnEarlyAnswerLeavesTheReplayAheadWholeAndAnswers400() throws {
        let upload = "PUT /early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
        let (proxy, client) = try Self.replayAhead(of: { _ in upload })
        defer { proxy.stop() }
        usleep(500_000)
        try client.send("zz\r\n")  // not a chunk size (RFC 9112 §7.1)
        usleep(300_000)
        Self.expectWholeReplay(client)
        #expect(try client.readResponse().status == 400)
    }

    /// The interim `100 Continue` the proxy wrote for the upload sits between the replay and
    /// the early answer: it stays, the early answer goes.
    @Test func anInterimContinueAheadOfAWithdrawnAnswerStays() throws {
        let upload = "PUT /early HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\nonly-ten.."
        let (proxy, client) = try Self.replayAhead(of: { _ in upload })
        defer { proxy.stop() }
        usleep(500_000)
        shutdown(client.fd, Int32(SHUT_WR))
        Self.expectWholeReplay(client)
        while (try? client.fill()) == true {}
        let rest = String(decoding: client.buffer, as: UTF8.self)
        #expect(rest.isEmpty || rest == "HTTP/1.1 100 Continue\r\n\r\n", "after the replay: \(rest)")
    }

    /// The client never got any of the withdrawn answer, so the access log does not say it did.
    @Test func aWithdrawnAnswerIsNotLoggedAsSent() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let (proxy, client) = try Self.replayAhead(of: { _ in Self.earlyUpload }, accessLogFD: fds[1])
        usleep(500_000)
        shutdown(client.fd, Int32(SHUT_WR))
        Self.expectWholeReplay(client)
        #expect(client.isClosedByPeer())
        proxy.stop()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = read(fds[0], &buffer, buffer.count)
        let put = String(decoding: buffer[0..<max(count, 0)], as: UTF8.self).split(separator: "\n").first { $0.contains("\"method\":\"PUT\"") }
        #expect(put != nil)
        #expect(put?.contains("\"status\":200") == false, "logged as answered 200: \(put ?? "")")
    }

    // MARK: the upstream ends it

    /// A reset is reported even while the upstream's reads are paused for the slow reader, so
    /// it is seen before a byte of the head went out.
    static let resetMidBody = TestUpstream.Behaviour.sequence([brokenHead, Array("x".utf8)], gapSeconds: 0.3, ending: .reset)

    @Test func anUpstreamResetBehindTheReplayIsAnswered502() throws {
        let (proxy, client) = try Self.replayAhead(of: { _ in "GET /broken HTTP/1.1\r\nHost: a\r\n\r\n" }, broken: Self.resetMidBody)
        defer { proxy.stop() }
        usleep(800_000)  // the head read, then the reset
        Self.expectWholeReplay(client)
        let answer = try client.readResponse()
        #expect(answer.status == 502)
        #expect(answer.value("content-type") == "application/problem+json")
    }

    /// SPEC §4: request sent, no complete response, nothing of it sent to the client yet:
    /// 502 `outcome-unknown`.
    @Test func aGuardedResponseResetBehindTheReplayIsA502OutcomeUnknown() throws {
        let (proxy, client) = try Self.replayAhead(of: { key in Self.guardedPost("/broken", key: key + "-2") }, broken: Self.resetMidBody)
        defer { proxy.stop() }
        usleep(800_000)
        try Self.expectWholeReplayThenOutcomeUnknown(client, status: 502)
    }

    /// response_timeout runs out mid-body while the client, within send_timeout, has not yet
    /// read the replay ahead: 504 `outcome-unknown`.
    @Test func aGuardedResponseStalledBehindTheReplayIsA504OutcomeUnknown() throws {
        let stall = TestUpstream.Behaviour.sequence([Self.brokenHead], gapSeconds: 0, ending: .keepOpen)
        let (proxy, client) = try Self.replayAhead(
            of: { key in Self.guardedPost("/broken", key: key + "-3") }, broken: stall, upstreamYAML: ["response_timeout: 1s"])
        defer { proxy.stop() }
        usleep(1_700_000)
        try Self.expectWholeReplayThenOutcomeUnknown(client, status: 504)
    }

    /// The replay ahead whole, then the guarded request's `outcome-unknown` answer.
    static func expectWholeReplayThenOutcomeUnknown(_ client: TestClient, status: Int) throws {
        expectWholeReplay(client)
        let answer = try client.readResponse(requestMethod: "POST")
        #expect(answer.status == status)
        #expect(answer.bodyText.contains("outcome-unknown"))
    }

    // MARK: the proxy holds the upstream back

    /// response_timeout (1 s) runs out while the upstream's whole answer waits unread in the
    /// proxy, which paused reading for a client slow to take the replay ahead: the upstream is
    /// not stalled, so its answer goes out whole and, for a guarded request, is stored.
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

    /// A close-delimited answer is whole only at the upstream's EOF, which waits unread too.
    @Test(arguments: [false, true])
    func aWholeCloseDelimitedAnswerWaitingOnASlowReaderIsNotA504(guarded: Bool) throws {
        var wholeKey = ""
        let (proxy, client) = try Self.replayAhead(
            of: { key in
                wholeKey = key + "-close"
                return guarded ? Self.guardedPost("/broken", key: wholeKey) : "GET /broken HTTP/1.1\r\nHost: a\r\n\r\n"
            }, broken: .untilClose(status: 200, body: Array("whole-close-delimited".utf8)), upstreamYAML: ["response_timeout: 1s"])
        defer { proxy.stop() }
        usleep(1_800_000)
        Self.expectWholeReplay(client)
        let answer = try client.readResponse(requestMethod: guarded ? "POST" : "GET")
        #expect(answer.status == 200, "\(answer.status) \(answer.bodyText.prefix(300))")
        #expect(answer.bodyText == "whole-close-delimited")
        guard guarded else { return }
        let retry = try proxy.client()
        try retry.send(Self.guardedPost("/broken", key: wholeKey))
        let replay = try retry.readResponse(requestMethod: "POST")
        #expect(replay.status == 200 && replay.value("idempotent-replayed") == "true", "the retry got \(replay.status)")
    }

    /// The same with nothing pipelined: one guarded request whose 4 MiB answer the client does
    /// not read for longer than response_timeout.
    @Test func aWholeGuardedAnswerToAPausedReaderIsStoredNotMarkedUnknown() throws {
        let proxy = try ProxyHarness(
            upstream: Self.upstream(stored: Self.big, chunkedEarly: false, broken: .silent), upstreamYAML: ["response_timeout: 1s"],
            yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let post = Self.guardedPost("/pay", key: "paused-\(UInt32.random(in: 0...UInt32.max))")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(post)
        usleep(1_800_000)
        var count = 0
        #expect(try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count).status == 201)
        #expect(count == Self.big.count)
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
