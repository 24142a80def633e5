import Foundation
import Glibc
import Testing
import TestSupport

/// SPEC §4–§5 rules around the parser: what happens when peers misbehave, stall or hang up,
/// and the Host and routing rules. Raw bytes in; bytes out and the upstream's log checked.
@Suite(.serialized) struct LifecycleHardeningTests {
    /// Reads whatever arrives until EOF, a reset or `seconds` of silence.
    func drain(_ client: TestClient, seconds: Int = 3) -> (bytes: [UInt8], reset: Bool) {
        client.setTimeout(seconds: seconds)
        var reset = false
        while true {
            do {
                if try !client.fill() { break }
            } catch TestClient.ClientError.timeout {
                break
            } catch {
                reset = true
                break
            }
        }
        return (client.buffer, reset)
    }

    // MARK: 1. a reset is not the end of a close-delimited body

    @Test func anUpstreamResetDuringACloseDelimitedBodyIsATruncatedMessage() throws {
        let head = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".utf8)
        let upstream = TestUpstream { _ in .sequence([head, Array("partial".utf8), []], gapSeconds: 0.1, ending: .reset) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { scope: { header: \"\" } }\n")
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET /file HTTP/1.1\r\nHost: a\r\n\r\n")
        let (bytes, _) = drain(client)
        let text = String(decoding: bytes, as: UTF8.self)
        // Either the head and some of the body arrived, or nothing (the reset can beat the
        // bytes); never the last chunk that would make the truncated body look whole.
        #expect(!text.contains("\r\n0\r\n\r\n"), "\(text)")

        // Guarded: the record is not stored as completed; the retry is told the outcome is unknown.
        let guarded = try proxy.client()
        let post = "POST /v1/p HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\nContent-Length: 2\r\n\r\n{}"
        try guarded.send(post)
        let (guardedBytes, _) = drain(guarded)
        #expect(!String(decoding: guardedBytes, as: UTF8.self).contains("\r\n0\r\n\r\n"))
        usleep(100_000)
        let retry = try proxy.request(post)
        #expect(retry.status == 409)
        #expect(retry.bodyText.contains("outcome-unknown"))
        #expect(upstream.count(method: "POST") == 1)
    }

    // MARK: 2. a client that stops reading is cut at send_timeout

    @Test func aClientThatStopsReadingIsCutAtTheSendTimeout() throws {
        // Far more than kernel socket buffers hold, whatever their tuning.
        let body = [UInt8](repeating: 0x61, count: 24 << 20)
        let upstream = TestUpstream { _ in .respond(status: 201, headers: [], body: body) }
        let proxy = try ProxyHarness(
            upstream: upstream,
            yaml: "idempotency: { max_stored_body: 32MiB, scope: { header: \"\" } }\nlimits: { send_timeout: 1s }\n")
        defer { proxy.stop() }
        let post = "POST /v1/p HTTP/1.1\r\nHost: a\r\nIdempotency-Key: big\r\nContent-Length: 2\r\n\r\n{}"
        do {
            let first = try proxy.client()
            try first.send(post)
            #expect(try first.readResponse().body.count == body.count)
        }  // closed: only the stalled client below holds a connection
        for _ in 0..<20 where proxy.server.metrics.activeConnections.load(ordering: .relaxed) != 0 { usleep(50_000) }
        // The replay is queued whole at once; this client never reads it.
        let stalled = try TestClient(port: proxy.port, receiveBuffer: 4096)
        try stalled.send(post)
        let started = Date()
        var closed = false
        while Date().timeIntervalSince(started) < 5 && !closed {
            usleep(100_000)
            closed = proxy.server.metrics.activeConnections.load(ordering: .relaxed) == 0
        }
        #expect(closed, "the proxy still holds the connection of a client that stopped reading")
        #expect(Date().timeIntervalSince(started) >= 0.9)
    }

    // MARK: 3. routing uses the normalised path

    @Test func absoluteFormAndEncodedPathsCannotBypassARoute() throws {
        let upstream = TestUpstream()
        let proxy = try ProxyHarness(
            upstream: upstream,
            yaml: "routes:\n  - match: { path_prefix: /v1/payments }\n    required: true\n")
        defer { proxy.stop() }
        let absolute = try proxy.request("POST http://a/v1/payments HTTP/1.1\r\nHost: b\r\nAuthorization: t\r\nContent-Length: 2\r\n\r\n{}")
        #expect(absolute.status == 400)
        #expect(absolute.bodyText.contains("missing-key"))
        for target in ["/x/%2e%2e/v1/payments", "/x/%2E./v1/payments", "/x/.%2e/v1/payments", "//v1/payments", "/v1//payments", "/x/../v1/payments", "/./v1/payments",
                       "/public/..;/v1/payments", "/v1;x/payments", "/v1%2Fpayments", "/v1%2fpayments", "/x\\..\\v1\\payments", "/x/%5C../v1/payments",
                       "/x/%252e%252e/v1/payments", "/v1/pay%00ments"] {
            let response = try proxy.request("POST \(target) HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\n{}")
            #expect(response.status == 400, "\(target)")
        }
        // Look-alikes that are not dot segments still route normally.
        #expect(try proxy.request("GET /x/%2e%2ex/y HTTP/1.1\r\nHost: b\r\n\r\n", method: "GET").status == 200)
        #expect(try proxy.request("GET /a?next=//b/../c;d%2F HTTP/1.1\r\nHost: b\r\n\r\n", method: "GET").status == 200)
        // An absolute-form target without a path is routed (and sent) as "/".
        #expect(try proxy.request("GET http://a?x=1 HTTP/1.1\r\nHost: b\r\n\r\n", method: "GET").status == 200)
        #expect(upstream.requests.count == 3)
        #expect(upstream.requests.last?.head.hasPrefix("GET /?x=1 HTTP/1.1") == true)
    }

    // MARK: 4. lingering close

    @Test func aRefusedUploadIsAnsweredNotReset() throws {
        let upstream = TestUpstream()
        let proxy = try ProxyHarness(
            upstream: upstream, yaml: "idempotency: { max_request_body: 64KiB, required: true, scope: { header: \"\" } }\n")
        defer { proxy.stop() }
        let body = [UInt8](repeating: 0x62, count: 2 << 20)
        for (key, expected) in [("Idempotency-Key: k\r\n", 413), ("", 400)] {
            let client = try proxy.client()
            // The whole upload is sent before reading, as Python's http.client and curl do.
            try client.send(Array("POST /v1/upload HTTP/1.1\r\nHost: a\r\n\(key)Content-Length: \(body.count)\r\n\r\n".utf8) + body)
            let response = try client.readResponse()
            #expect(response.status == expected)
        }
        #expect(upstream.requests.isEmpty)
    }

    @Test func anUploadWhoseUpstreamFailsGetsTheErrorNotAReset() throws {
        let probe = TestUpstream()
        let deadPort = probe.port
        probe.stop()
        let proxy = try ProxyHarness(upstreamPort: deadPort)
        defer { proxy.stop() }
        let body = [UInt8](repeating: 0x63, count: 4 << 20)
        let client = try proxy.client()
        try client.send(Array("PUT /file HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let response = try client.readResponse()
        #expect(response.status == 502)
    }

    // MARK: 5. framing fields on body-less responses

    @Test func aNoContentResponseWithALengthIsNotReused() throws {
        // The stray bytes come late, after the next request could already have been sent on a
        // reused connection: only refusing reuse keeps them from becoming its response.
        let upstream = TestUpstream { request in
            if request.head.hasPrefix("GET /a ") {
                return .sequence([Array("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n".utf8), Array("hello".utf8)], gapSeconds: 0.5, ending: .keepOpen)
            }
            return .respond(status: 200, headers: [], body: Array("second".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        let first = try client.readResponse(requestMethod: "GET")
        #expect(first.status == 204)
        #expect(first.value("content-length") == nil)
        #expect(first.value("transfer-encoding") == nil)
        try client.send("GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        let second = try client.readResponse(requestMethod: "GET")
        #expect(second.status == 200)
        #expect(second.bodyText == "second")
    }

    // MARK: 6 and 7. Host, and fields Connection may not remove

    @Test func theUpstreamAlwaysGetsTheRightHost() throws {
        let upstream = TestUpstream()
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        #expect(try proxy.request("GET /old HTTP/1.0\r\n\r\n", method: "GET").status == 200)
        #expect(try proxy.request("GET /named HTTP/1.1\r\nHost: client.example\r\nConnection: host\r\n\r\n", method: "GET").status == 200)
        #expect(try proxy.request("GET http://target.example:8080/abs HTTP/1.1\r\nHost: other.example\r\n\r\n", method: "GET").status == 200)
        let requests = upstream.requests
        try #require(requests.count == 3)
        #expect(requests[0].values("host") == ["127.0.0.1:\(upstream.port)"])
        #expect(requests[1].values("host") == ["client.example"])
        #expect(requests[2].values("host") == ["target.example:8080"])
        #expect(requests[2].head.hasPrefix("GET /abs HTTP/1.1"))
    }

    @Test func connectionCannotStripTheKeyOrTheScope() throws {
        let upstream = TestUpstream()
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let response = try proxy.request(
            "POST /v1/p HTTP/1.1\r\nHost: a\r\nConnection: idempotency-key, authorization, x-drop\r\nIdempotency-Key: k7\r\nAuthorization: Bearer s\r\nX-Drop: 1\r\nContent-Length: 2\r\n\r\n{}")
        #expect(response.status == 200)
        let seen = try #require(upstream.requests.first)
        #expect(seen.values("idempotency-key") == ["k7"])
        #expect(seen.values("authorization") == ["Bearer s"])
        #expect(seen.values("x-drop").isEmpty)
    }

    // MARK: 9. the smaller ones

    @Test func http10KeepAliveIsAcknowledged() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let client = try proxy.client()
        for _ in 0..<2 {
            try client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let response = try client.readResponse(requestMethod: "GET")
            #expect(response.status == 200)
            #expect(response.value("connection")?.lowercased() == "keep-alive")
        }
        try client.send("GET / HTTP/1.0\r\n\r\n")
        let last = try client.readResponse(requestMethod: "GET")
        #expect(last.value("connection")?.lowercased() == "close")
    }

    @Test func smallerRules() throws {
        let upstream = TestUpstream { request in
            request.head.hasPrefix("GET /bare ") ? .raw(Array("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok".utf8)) : .respond(status: 200, headers: [], body: Array("x".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        #expect(try proxy.request("GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET").status == 400)
        // Long enough for the parser's eight-bytes-at-a-time path.
        #expect(try proxy.request("GET /abcdefghijklmnopqrstuvwxyz#fragment HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET").status == 400)
        #expect(try proxy.request("POST http://a#/v1/payments HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").status == 400)
        #expect(try proxy.request("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n").status == 400)
        let bare = try proxy.request("GET /bare HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
        #expect(bare.status == 200)
        #expect(bare.bodyText == "ok")
        let chunked = try proxy.request("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        #expect(chunked.status == 200)
        #expect(upstream.requests.last?.body == Array("abc".utf8))
    }

    // MARK: a half-close after pipelined requests

    /// RFC 9112 §9.6: a client's half-close ends its requests, not the answers. Two complete
    /// requests pipelined, then SHUT_WR, while the first is still upstream: both are answered,
    /// in order, and then the connection closes.
    /// A proxy whose upstream answers each request with its target after `delay` seconds.
    func echoingProxy(delay: Double) throws -> ProxyHarness {
        try ProxyHarness(upstream: TestUpstream { request in .delayed(seconds: delay, status: 200, body: Array(request.target.utf8)) })
    }

    /// An upstream that answers 201 with the target after 0.2 s, and a guarded POST it has
    /// already answered once: the POST sent again is a replay.
    func proxyWithAStoredPost() throws -> (proxy: ProxyHarness, post: String) {
        let proxy = try ProxyHarness(upstream: TestUpstream { request in .delayed(seconds: 0.2, status: 201, body: Array(request.target.utf8)) })
        let key = "half-close-\(UInt32.random(in: 0...UInt32.max))"
        let post = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}"
        let first = try proxy.request(post)
        #expect(first.status == 201)
        return (proxy, post)
    }

    /// A new client sends `requests` at once, then half-closes (SHUT_WR).
    func sendThenHalfClose(_ proxy: ProxyHarness, _ requests: String) throws -> TestClient {
        let client = try proxy.client(timeoutSeconds: 3)
        try client.send(requests)
        shutdown(client.fd, Int32(SHUT_WR))
        return client
    }

    @Test func requestsPipelinedBeforeAHalfCloseAreAllAnswered() throws {
        let proxy = try echoingProxy(delay: 0.3)
        defer { proxy.stop() }
        let client = try sendThenHalfClose(proxy, "GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n")
        let first = try client.readResponse()
        #expect(first.bodyText == "/first")
        #expect(first.value("connection") == nil, "an answer with another behind it announced a close")
        let second = try client.readResponse()
        #expect(second.bodyText == "/second")
        // The connection closes after it: the answer says so (RFC 9112 §9.6).
        #expect(second.value("connection") == "close")
        #expect(proxy.upstream.requests.map(\.target) == ["/first", "/second"])
        let rest = drain(client, seconds: 2)
        #expect(rest.bytes.isEmpty && !rest.reset, "the connection did not close cleanly after the last answer")
        #expect(client.isClosedByPeer())
    }

    /// Replays are answered inside the processing of the read that holds them: two replays and
    /// a PUT with a body behind a forwarded GET, then a half-close. Only the PUT's answer, the
    /// last, says close; a replay that did would drop the requests after it.
    @Test func onlyTheLastOfSeveralAnswersInOneReadSaysClose() throws {
        let (proxy, post) = try proxyWithAStoredPost()
        defer { proxy.stop() }
        let client = try sendThenHalfClose(proxy, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + post + post + "PUT /third HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        let first = try client.readResponse()
        #expect(first.bodyText == "/first" && first.value("connection") == nil)
        for _ in 0..<2 {
            let replay = try client.readResponse(requestMethod: "POST")
            #expect(replay.value("idempotent-replayed") == "true")
            #expect(replay.value("connection") == nil, "a replay with a request behind it announced a close")
        }
        let third = try client.readResponse(requestMethod: "PUT")
        #expect(third.bodyText == "/third")
        #expect(third.value("connection") == "close")
        #expect(drain(client, seconds: 2).bytes.isEmpty)
        #expect(client.isClosedByPeer())
    }

    /// An answer idemproxy writes itself (here a refused key) as the last one after a
    /// half-close carries `Connection: close` too. The request has no body: a refusal with
    /// one unread closes the connection whatever the client did.
    @Test func aGeneratedAnswerLastBeforeAHalfCloseSaysTheConnectionCloses() throws {
        let proxy = try echoingProxy(delay: 0.2)
        defer { proxy.stop() }
        let refused = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \"\"\r\nContent-Length: 0\r\n\r\n"
        let client = try sendThenHalfClose(proxy, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + refused)
        let first = try client.readResponse()
        #expect(first.bodyText == "/first")
        #expect(first.value("connection") == nil)
        let problem = try client.readResponse(requestMethod: "POST")
        #expect(problem.status == 400)
        #expect(problem.value("connection") == "close")
        #expect(drain(client, seconds: 2).bytes.isEmpty)
        #expect(client.isClosedByPeer())
        #expect(proxy.upstream.requests.map(\.target) == ["/first"])
    }

    /// What follows the complete requests is half a head: after the answer the connection
    /// closes at once, as an EOF on a partial head does, not when header_timeout fires.
    @Test func aPartialHeadLeftAfterAHalfCloseClosesTheConnectionOnceTheRestIsAnswered() throws {
        let proxy = try ProxyHarness(
            upstream: TestUpstream { request in .delayed(seconds: 0.2, status: 200, body: Array(request.target.utf8)) },
            yaml: "limits: { header_timeout: 20s }\n")
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 3)
        try client.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /sec")
        shutdown(client.fd, Int32(SHUT_WR))
        let started = Date()
        #expect(try client.readResponse().bodyText == "/first")
        let rest = drain(client, seconds: 3)
        #expect(rest.bytes.isEmpty, "something was answered for half a head")
        #expect(Date().timeIntervalSince(started) < 2, "the connection stayed open after the last answer")
        #expect(proxy.upstream.requests.map(\.target) == ["/first"])
    }

    /// A replay pipelined behind a forwarded request, then a half-close: the replay is
    /// answered too, after the forwarded response.
    @Test func aReplayPipelinedBeforeAHalfCloseIsAnswered() throws {
        let (proxy, post) = try proxyWithAStoredPost()
        defer { proxy.stop() }
        let client = try sendThenHalfClose(proxy, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + post)
        #expect(try client.readResponse().bodyText == "/first")
        let replay = try client.readResponse(requestMethod: "POST")
        #expect(replay.status == 201)
        #expect(replay.value("idempotent-replayed") == "true")
        #expect(replay.bodyText == "/pay")
        #expect(replay.value("connection") == "close", "the last answer before the close did not say so")
        #expect(proxy.upstream.requests.count == 2, "the replay reached the upstream")
        #expect(drain(client, seconds: 2).bytes.isEmpty)
        #expect(client.isClosedByPeer())
    }

    // MARK: requests cut by the half-close

    final class Box: @unchecked Sendable { var count = -1; var status = 0 }

    static let big = [UInt8](repeating: 0x62, count: 4 << 20)

    /// What follows the last whole request: a PUT (unguarded, streamed) or a guarded POST
    /// whose body the half-close cut, or half a head (control).
    static let tails: [String] = [
        "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-ten..",
        "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: other\r\nContent-Length: 100\r\n\r\nonly-ten..",
        "GET /sec",
    ]

    /// The request in progress at the half-close is a `concurrent: wait` waiter whose answer
    /// is a large replay (queued whole for a client that reads slowly). The request pipelined
    /// behind it can never be whole: it is dropped, and the replay still goes out whole.
    @Test(arguments: tails)
    func theAnswerInProgressAtAHalfCloseIsNotCutByATruncatedRequestBehindIt(_ tail: String) throws {
        let upstream = TestUpstream { request in
            request.method == "POST" ? .delayed(seconds: 0.5, status: 201, body: Self.big) : .respond(status: 200, headers: [], body: Array("ok".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { concurrent: wait, wait_timeout: 10s, max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let key = "hc-\(UInt32.random(in: 0...UInt32.max))"
        let post = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}"
        let owner = Box()
        let port = proxy.port
        let ownerThread = Thread {
            guard let client = try? TestClient(port: port, timeoutSeconds: 10) else { return }
            try? client.send(post)
            var count = 0
            if let response = try? client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count) {
                owner.status = response.status
                owner.count = count
            }
        }
        ownerThread.start()
        usleep(150_000)
        // The waiter: a small receive buffer and no reads for a while, so the replay stays queued.
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send(post + tail)
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(1_500_000)
        #expect(owner.status == 201 && owner.count == Self.big.count, "owner \(owner.status) \(owner.count)")
        var count = 0
        do {
            let replay = try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
            #expect(replay.status == 201)
            #expect(replay.value("idempotent-replayed") == "true")
        } catch {
            Issue.record("the replay was cut: \(error), \(client.buffer.count) bytes buffered")
        }
        #expect(upstream.count(method: "POST") == 1)
    }

    /// /slow is in progress at the half-close; the replay pipelined behind it is answered
    /// whole, and the cut request after that is dropped.
    @Test(arguments: tails)
    func aReplayAnsweredAfterAHalfCloseIsNotCutByATruncatedRequestBehindIt(_ tail: String) throws {
        let upstream = TestUpstream { request in
            if request.method == "POST" { return .respond(status: 201, headers: [], body: Self.big) }
            return .delayed(seconds: 0.3, status: 200, body: Array("slow".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { max_stored_body: 8MiB }\n")
        defer { proxy.stop() }
        let key = "hc-\(UInt32.random(in: 0...UInt32.max))"
        let post = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}"
        var stored = 0
        let first = try proxy.client()
        try first.send(post)
        #expect(try first.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &stored).status == 201)
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5, receiveBuffer: 4096)
        try client.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n" + post + tail)
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(1_000_000)
        #expect(try client.readResponse().bodyText == "slow")
        var count = 0
        do {
            let replay = try client.readResponse(requestMethod: "POST", discardBody: true, bodyCount: &count)
            #expect(replay.status == 201)
        } catch {
            Issue.record("the replay was cut: \(error), \(client.buffer.count) bytes buffered")
        }
    }

    /// A `Connection: close` request pipelined before the half-close ends the connection;
    /// what follows it is not forwarded.
    @Test func nothingAfterAConnectionCloseRequestIsForwarded() throws {
        let proxy = try echoingProxy(delay: 0.2)
        defer { proxy.stop() }
        let client = try sendThenHalfClose(proxy, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().bodyText == "/a")
        let b = try client.readResponse()
        #expect(b.bodyText == "/b")
        #expect(b.value("connection") == "close")
        #expect(drain(client, seconds: 2).bytes.isEmpty)
        #expect(proxy.upstream.requests.map(\.target) == ["/a", "/b"])
    }

    /// A waiter, a chunked PUT with `Expect: 100-continue` and a request answered 413,
    /// pipelined before a half-close: all answered in order, then the connection closes.
    @Test func waitersChunkedBodiesAndErrorsPipelinedBeforeAHalfCloseAreAnswered() throws {
        let upstream = TestUpstream { request in .delayed(seconds: 0.4, status: 201, body: Array(request.target.utf8)) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { concurrent: wait, wait_timeout: 10s, max_request_body: 10 }\nlimits: { header_timeout: 20s, idle_timeout: 20s }\n")
        defer { proxy.stop() }
        let key = "hc-\(UInt32.random(in: 0...UInt32.max))"
        let post = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}"
        let owner = try proxy.client()
        try owner.send(post)
        usleep(100_000)
        let client = try proxy.client(timeoutSeconds: 3)
        let chunked = "PUT /ch HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        let tooLarge = "POST /pay HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: x\(key)\r\nContent-Length: 11\r\n\r\n01234567890"
        try client.send(post + chunked + tooLarge)
        shutdown(client.fd, Int32(SHUT_WR))
        let started = Date()
        #expect(try owner.readResponse(requestMethod: "POST").status == 201)
        let replay = try client.readResponse(requestMethod: "POST")
        #expect(replay.status == 201 && replay.value("idempotent-replayed") == "true")
        let put = try client.readResponse()
        #expect(put.bodyText == "/ch")
        #expect(try client.readResponse(requestMethod: "POST").status == 413)
        let rest = drain(client, seconds: 3)
        #expect(rest.bytes.isEmpty && !rest.reset)
        #expect(Date().timeIntervalSince(started) < 3)
    }
}
