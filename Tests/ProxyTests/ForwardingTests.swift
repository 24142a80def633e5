import Foundation
import Testing
import TestSupport

/// End-to-end forwarding over real loopback sockets: client → idemproxy → recording origin.
@Suite(.serialized) struct ForwardingTests {
    static let echoTarget: TestUpstream.Responder = { request in
        .respond(status: 200, headers: [("X-Target", request.target)], body: Array(request.target.utf8))
    }

    @Test func getIsForwardedWithForwardingHeadersAndAnswered() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echoTarget))
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET /v1/items?x=1 HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.bodyText == "/v1/items?x=1")
        let seen = try #require(proxy.upstream.requests.first)
        #expect(seen.method == "GET")
        #expect(seen.values("host") == ["api.example"])
        // Appended after the client's own value, never replacing it.
        #expect(seen.values("x-forwarded-for") == ["10.0.0.9", "127.0.0.1"])
        #expect(seen.values("x-forwarded-proto") == ["http"])
        #expect(seen.values("x-forwarded-host") == ["api.example"])
    }

    @Test func upstreamPathIsPrependedAndAbsoluteFormIsNormalised() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echoTarget), upstreamPath: "/api/")
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET /v1/items HTTP/1.1\r\nHost: a\r\n\r\nGET http://a/v2?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().bodyText == "/api/v1/items")
        #expect(try client.readResponse().bodyText == "/api/v2?x=1")
    }

    /// The forwarding fields are written from the request's bytes: an absolute-form target's
    /// authority replaces Host and is X-Forwarded-Host (RFC 9112 §3.2.2), an HTTP/1.0 request
    /// without Host gets the upstream's authority and no X-Forwarded-Host, and each connection
    /// names its own peer on every request it sends.
    @Test func forwardingFieldsFollowTheTargetFormAndTheVersion() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echoTarget))
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET http://b.example:8080/v2?x=1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n")
        #expect(try client.readResponse().bodyText == "/v2?x=1")
        try client.send("GET /again HTTP/1.1\r\nHost: c.example\r\n\r\n")
        #expect(try client.readResponse().bodyText == "/again")
        let old = try proxy.client()
        try old.send("GET /old HTTP/1.0\r\n\r\n")
        #expect(try old.readResponse().bodyText == "/old")

        let seen = proxy.upstream.requests
        try #require(seen.count == 3)
        #expect(seen[0].values("host") == ["b.example:8080"])
        #expect(seen[0].values("x-forwarded-host") == ["b.example:8080"])
        #expect(seen[0].values("expect").isEmpty)
        #expect(seen[1].values("host") == ["c.example"])
        #expect(seen[1].values("x-forwarded-host") == ["c.example"])
        #expect(seen[2].values("host") == ["127.0.0.1:\(proxy.upstream.port)"])
        #expect(seen[2].values("x-forwarded-host").isEmpty)
        for request in seen {
            #expect(request.values("x-forwarded-for") == ["127.0.0.1"])
            #expect(request.values("x-forwarded-proto") == ["http"])
        }
    }

    @Test func dotSegmentsAreRejectedSoRoutesCannotBeBypassed() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        for target in ["/public/../v1/payments", "/./v1", "/a/..", "/a/.?x"] {
            let response = try proxy.request("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
            #expect(response.status == 400, "\(target)")
        }
        // Dots inside names are fine.
        #expect(try proxy.request("GET /a/.well-known/x..y HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET").status == 200)
        #expect(proxy.upstream.requests.count == 1)
    }

    @Test func hopByHopFieldsAreRemovedInBothDirections() throws {
        let upstream = TestUpstream { _ in
            .respond(status: 200, headers: [("Connection", "X-Upstream-Secret"), ("X-Upstream-Secret", "1"), ("Keep-Alive", "timeout=5"), ("X-Kept", "yes")], body: Array("ok".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Client-Secret\r\nX-Client-Secret: s\r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-End: 1\r\n\r\n")
        let response = try client.readResponse()
        let seen = try #require(proxy.upstream.requests.first)
        for name in ["connection", "x-client-secret", "keep-alive", "proxy-connection", "te"] {
            #expect(seen.values(name).isEmpty, "\(name) was forwarded")
        }
        #expect(seen.values("x-end") == ["1"])
        #expect(response.values("x-upstream-secret").isEmpty)
        #expect(response.values("keep-alive").isEmpty)
        #expect(response.value("x-kept") == "yes")
    }

    @Test func keepAliveReusesBothConnections() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echoTarget))
        defer { proxy.stop() }
        let client = try proxy.client()
        for i in 0..<5 {
            try client.send("GET /r\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try client.readResponse().bodyText == "/r\(i)")
        }
        #expect(proxy.upstream.connectionCount == 1)
        #expect(proxy.upstream.requests.count == 5)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echoTarget))
        defer { proxy.stop() }
        let client = try proxy.client()
        var batch = ""
        for i in 0..<10 { batch += "GET /p\(i) HTTP/1.1\r\nHost: a\r\n\r\n" }
        batch += "POST /p10 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        try client.send(batch)
        for i in 0...10 {
            #expect(try client.readResponse().bodyText == "/p\(i)")
        }
        #expect(proxy.upstream.requests.last?.body == Array("abc".utf8))
    }

    @Test func chunkedRequestBodyIsDecodedAndReframed() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { request in .respond(status: 200, headers: [], body: request.body) })
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.bodyText == "hello world")
        let seen = try #require(proxy.upstream.requests.first)
        #expect(seen.values("transfer-encoding") == ["chunked"])
        #expect(seen.values("content-length").isEmpty)
        // Chunk extensions and trailers are consumed by the proxy, not forwarded.
        #expect(!proxy.upstream.rawText.contains("ext=1"))
        #expect(!proxy.upstream.rawText.contains("X-Trailer"))
    }

    /// A read that ends inside a chunk-size line must wait for the rest of the line (this once
    /// recursed without end and took the process down).
    @Test func chunkSizeLineSplitAcrossReadsIsCompletedLater() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { request in .respond(status: 200, headers: [], body: request.body) })
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1")
        usleep(200_000)
        try client.send("\r\nX\r\n0\r\n\r\n")
        #expect(try client.readResponse().bodyText == "helloX")
    }

    @Test func chunkedResponseIsChunkedForHTTP11AndCloseDelimitedForHTTP10() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .chunked(status: 200, pieces: [Array("abc".utf8), Array("defg".utf8)]) })
        defer { proxy.stop() }
        let modern = try proxy.client()
        try modern.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let chunked = try modern.readResponse()
        #expect(chunked.value("transfer-encoding") == "chunked")
        #expect(chunked.bodyText == "abcdefg")

        let old = try proxy.client()
        try old.send("GET / HTTP/1.0\r\n\r\n")
        let closeDelimited = try old.readResponse()
        #expect(closeDelimited.value("transfer-encoding") == nil)
        #expect(closeDelimited.value("connection")?.lowercased() == "close")
        #expect(closeDelimited.bodyText == "abcdefg")
    }

    @Test func closeDelimitedUpstreamResponseIsChunkedToTheClient() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .untilClose(status: 200, body: Array("until the end".utf8)) })
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.value("transfer-encoding") == "chunked")
        #expect(response.bodyText == "until the end")
        // The client connection survives: the proxy framed the body itself.
        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().bodyText == "until the end")
    }

    @Test func expectContinueIsAnsweredByTheProxyAndNotForwarded() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { request in .respond(status: 201, headers: [], body: request.body) })
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        // The interim response arrives before the client sends the body.
        while TestUpstream.find(Array("\r\n\r\n".utf8), in: client.buffer) == nil { try client.fill() }
        #expect(String(decoding: client.buffer, as: UTF8.self).hasPrefix("HTTP/1.1 100 Continue\r\n\r\n"))
        try client.send("body")
        let response = try client.readResponse()
        #expect(response.status == 201)
        #expect(response.bodyText == "body")
        #expect(proxy.upstream.requests.first?.values("expect") == [])
    }

    @Test func headResponseKeepsContentLengthWithoutBody() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .respond(status: 200, headers: [], body: Array("0123456789".utf8)) })
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let head = try client.readResponse(requestMethod: "HEAD")
        #expect(head.value("content-length") == "10")
        // The next response starts right after the head: no body bytes were sent for HEAD.
        #expect(try client.readResponse().bodyText == "0123456789")
    }

    @Test func upgradeAndConnectAreNotImplemented() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        for request in ["GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"] {
            let client = try proxy.client()
            try client.send(request)
            #expect(try client.readResponse().status == 501)
        }
        #expect(proxy.upstream.requests.isEmpty)
    }
}
