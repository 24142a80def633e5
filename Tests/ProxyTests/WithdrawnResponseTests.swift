import Foundation
import Glibc
import Testing
import TestSupport

/// A response the upstream began that must end before it is whole (its request cut by the
/// client's EOF, a body timeout, a malformed chunked body) while
/// answers to earlier pipelined requests are still queued ahead of it for a slow reader. None
/// of it has gone out, so it is withdrawn: the earlier answers go out whole, then the
/// exchange ends as if the upstream had never answered. An abort there would cut a replay of
/// a request that already ran.
@Suite(.serialized) struct WithdrawnResponseTests {
    static let big = [UInt8](repeating: 0x62, count: 4 << 20)

    /// An upstream that stores a 4 MiB answer for the guarded POST and answers `/early`
    /// uploads as soon as their head arrives: a head and 5 of 1000 body bytes.
    static func upstream() -> TestUpstream {
        let upstream = TestUpstream { _ in .respond(status: 201, headers: [], body: Self.big) }
        upstream.setEarlyAnswer { request in
            request.target == "/early" ? Array("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nearly".utf8) : nil
        }
        return upstream
    }

    /// Stores the 4 MiB answer, then opens a client that reads slowly (a 4 KiB receive
    /// buffer) and sends the same POST, whose replay stays queued, followed by `next`.
    static func replayAhead(of next: String, yaml: String = "") throws -> (ProxyHarness, TestClient) {
        let proxy = try ProxyHarness(upstream: upstream(), yaml: "idempotency: { max_stored_body: 8MiB }\n" + yaml)
        let key = "withdrawn-\(UInt32.random(in: 0...UInt32.max))"
        let post = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}"
        var stored = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &stored).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(post + next)
        return (proxy, client)
    }

    /// Reads the replay whole, or records how much of it arrived.
    static func expectWholeReplay(_ client: TestClient) {
        var count = 0
        do {
            let replay = try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
            #expect(replay.status == 201)
            #expect(replay.value("idempotent-replayed") == "true")
            #expect(count == Self.big.count)
        } catch {
            Issue.record("the replay queued ahead was cut: \(error), \(count) body bytes")
        }
    }

    static let earlyUpload = "PUT /early HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-ten.."

    @Test func aRequestCutByTheEOFAfterAnEarlyAnswerLeavesTheReplayAheadWhole() throws {
        let (proxy, client) = try Self.replayAhead(of: Self.earlyUpload)
        defer { proxy.stop() }
        usleep(500_000)  // the replay is queued, the upload upstream, its answer begun
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(300_000)
        Self.expectWholeReplay(client)
        // The upload's own answer was withdrawn: nothing of it follows, the connection ends.
        #expect(client.isClosedByPeer(), "after the replay: \(String(decoding: client.buffer.prefix(200), as: UTF8.self))")
        #expect(proxy.upstream.count(method: "PUT") == 1)
    }

    @Test func aBodyTimeoutAfterAnEarlyAnswerLeavesTheReplayAheadWholeAndAnswers408() throws {
        let (proxy, client) = try Self.replayAhead(of: Self.earlyUpload, yaml: "limits: { body_timeout: 1s }\n")
        defer { proxy.stop() }
        usleep(1_600_000)  // the upload's body stalls past body_timeout
        Self.expectWholeReplay(client)
        let timeout = try client.readResponse()
        #expect(timeout.status == 408)
        #expect(!timeout.bodyText.contains("early"))
    }

    @Test func aMalformedChunkAfterAnEarlyAnswerLeavesTheReplayAheadWholeAndAnswers400() throws {
        let upload = "PUT /early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
        let (proxy, client) = try Self.replayAhead(of: upload)
        defer { proxy.stop() }
        usleep(500_000)
        try client.send("zz\r\n")  // not a chunk size (RFC 9112 §7.1)
        usleep(300_000)
        Self.expectWholeReplay(client)
        #expect(try client.readResponse().status == 400)
    }

    /// Nothing queued ahead: the early answer's head goes out at once, so a cut can only end
    /// it as a truncated message.
    @Test func withNothingAheadTheEarlyAnswerIsCutNotReplaced() throws {
        let proxy = try ProxyHarness(upstream: Self.upstream())
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
