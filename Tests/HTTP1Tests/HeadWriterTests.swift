import HTTP1
import Testing

@Suite struct HeadWriterTests {
    private func parseRequest(_ input: [UInt8], _ body: (RequestHead, UnsafeRawBufferPointer) -> Void) throws {
        try input.withUnsafeBytes { bytes throws in
            var head = RequestHead()
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init()))
            body(head, bytes)
        }
    }

    private func parseResponse(_ input: [UInt8], method: HTTPMethod = .get,
                               _ body: (ResponseHead, UnsafeRawBufferPointer) -> Void) throws {
        try input.withUnsafeBytes { bytes throws in
            var head = ResponseHead()
            #expect(try ResponseHeadParser.parse(bytes, into: &head, requestMethod: method, limits: .init()))
            body(head, bytes)
        }
    }

    /// RFC 9110 §7.6.1: a field named by Connection must be removed before
    /// forwarding, case-insensitively (the Go reverse proxy bug, issue 16875).
    @Test func connectionNamedFieldIsNotForwarded() throws {
        let input = raw("GET /p HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Internal-Token\r\nx-internal-token: secret\r\nAccept: */*\r\n\r\n")
        try parseRequest(input) { head, bytes in
            var out: [UInt8] = []
            HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: .none, into: &out)
            #expect(text(out) == "GET /p HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n")
        }
    }

    /// RFC 9112 §3.2.2: absolute-form reaches the origin in origin-form, and the upstream
    /// URL's path is prepended to every target.
    @Test(arguments: [
        ("GET http://api.example/v1/x?q=1 HTTP/1.1\r\nHost: api.example\r\n\r\n", "", "GET /v1/x?q=1 HTTP/1.1"),
        ("GET http://api.example HTTP/1.1\r\nHost: api.example\r\n\r\n", "", "GET / HTTP/1.1"),
        ("GET http://api.example?q=1 HTTP/1.1\r\nHost: api.example\r\n\r\n", "", "GET /?q=1 HTTP/1.1"),
        ("GET /v1/x HTTP/1.1\r\nHost: a\r\n\r\n", "/api", "GET /api/v1/x HTTP/1.1"),
        ("GET http://a/v1 HTTP/1.1\r\nHost: a\r\n\r\n", "/api", "GET /api/v1 HTTP/1.1"),
        ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "/api", "OPTIONS * HTTP/1.1"),
    ])
    func targetIsWrittenInOriginFormWithThePrefix(_ request: String, _ prefix: String, _ line: String) throws {
        try parseRequest(raw(request)) { head, bytes in
            var out: [UInt8] = []
            HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: .none, targetPrefix: Array(prefix.utf8), into: &out)
            #expect(text(out).hasPrefix(line + "\r\n"))
        }
    }

    /// The start line as forwarded: copied as one run when it is already what would be written
    /// (HTTP/1.1 with a reason; an origin-form target with no prefix), rebuilt otherwise.
    @Test(arguments: [
        ("HTTP/1.1 201 Created\r\n\r\n", "HTTP/1.1 201 Created"),
        ("HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.1 200 OK"),
        ("HTTP/1.1 204 \r\n\r\n", "HTTP/1.1 204 No Content"),
        ("HTTP/1.0 404 \r\n\r\n", "HTTP/1.1 404 Not Found"),
        ("HTTP/1.1 299 Odd \tbut valid\r\n\r\n", "HTTP/1.1 299 Odd \tbut valid"),
        ("HTTP/1.1 599 Caf\u{E9}\r\n\r\n", "HTTP/1.1 599 Caf\u{E9}"),
    ])
    func statusLineIsForwardedAsHTTP11(_ response: String, _ line: String) throws {
        try parseResponse(raw(response)) { head, bytes in
            var head = head
            var out = raw("before|")
            HeadWriter.writeResponseHead(&head, source: bytes, extra: [], framing: .none, close: false, into: &out)
            #expect(text(out) == "before|" + line + "\r\n\r\n")
        }
    }

    @Test(arguments: [
        ("GET /x?y=1 HTTP/1.0\r\n\r\n", "GET /x?y=1 HTTP/1.1"),
        ("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", "DELETE / HTTP/1.1"),
        ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS * HTTP/1.1"),
        ("\r\nPATCH /p HTTP/1.1\r\nHost: a\r\n\r\n", "PATCH /p HTTP/1.1"),
    ])
    func requestLineIsForwardedAsHTTP11(_ request: String, _ line: String) throws {
        try parseRequest(raw(request)) { head, bytes in
            var out = raw("before|")
            HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: .none, into: &out)
            #expect(text(out).hasPrefix("before|" + line + "\r\n"))
        }
    }

    @Test func requestIsReframedAndExtrasAppended() throws {
        let input = raw("POST /u?x=1 HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\nTE: trailers\r\nKeep-Alive: 1\r\nX-A: 1\r\n\r\nabc")
        try parseRequest(input) { head, bytes in
            var out = raw("prefix|")
            HeadWriter.writeRequestHead(
                head, source: bytes,
                extra: [(name: "X-Forwarded-For", value: "10.0.0.1"), (name: "X-Forwarded-Proto", value: "http")],
                dropping: ["expect"], framing: .contentLength(3), into: &out)
            #expect(text(out) == "prefix|POST /u?x=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n"
                + "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nContent-Length: 3\r\n\r\n")
        }
    }

    @Test func chunkedRequestIsWrittenWithOneFramingField() throws {
        let input = raw("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\n\r\n")
        try parseRequest(input) { head, bytes in
            var out: [UInt8] = []
            HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: .chunked, into: &out)
            #expect(text(out) == "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            out.removeAll()
            HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: .contentLength(12), into: &out)
            #expect(text(out) == "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")
        }
    }

    @Test func framingFieldsAreNeverCopiedEvenIfFlagsAreCleared() throws {
        let input = raw("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
        try parseRequest(input) { head, bytes in
            var head = head
            head.hopByHop = head.hopByHop.map { _ in false }
            var out: [UInt8] = []
            HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: .none, into: &out)
            #expect(text(out) == "POST / HTTP/1.1\r\nHost: a\r\n\r\n")
        }
    }

    @Test func responseDropsHopByHopAndAddsClose() throws {
        let input = raw("HTTP/1.1 200 Fine\r\nConnection: X-Backend\r\nX-Backend: 1\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=b\r\nTrailer: X\r\n\r\n")
        try parseResponse(input) { head, bytes in
            var head = head
            var out: [UInt8] = []
            HeadWriter.writeResponseHead(&head, source: bytes, extra: [(name: "Via", value: "1.1 idemproxy")],
                                         framing: .chunked, close: true, into: &out)
            #expect(text(out) == "HTTP/1.1 200 Fine\r\nSet-Cookie: a=b\r\nVia: 1.1 idemproxy\r\n"
                + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        }
    }

    @Test func responseUntilCloseWritesNoFraming() throws {
        let input = raw("HTTP/1.0 404 \r\nServer: s\r\n\r\n")
        try parseResponse(input) { head, bytes in
            var head = head
            #expect(head.framing == .untilClose)
            var out: [UInt8] = []
            let framing = head.framing
            HeadWriter.writeResponseHead(&head, source: bytes, extra: [], framing: framing, close: true, into: &out)
            // An empty upstream reason is replaced by the standard phrase.
            #expect(text(out) == "HTTP/1.1 404 Not Found\r\nServer: s\r\nConnection: close\r\n\r\n")
        }
    }

    @Test func headResponseCanKeepItsContentLength() throws {
        let input = raw("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        try parseResponse(input, method: .head) { head, bytes in
            var head = head
            #expect(head.framing == .none)
            #expect(head.contentLength == 1234)
            var out: [UInt8] = []
            let framing = BodyFraming.contentLength(head.contentLength!)
            HeadWriter.writeResponseHead(&head, source: bytes, extra: [], framing: framing,
                                         close: false, into: &out)
            #expect(text(out) == "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        }
    }

    @Test func generatedResponseHasLengthAndBody() {
        var out: [UInt8] = []
        let body = raw("{\"error\":\"bad\"}")
        body.withUnsafeBytes { bytes in
            HeadWriter.writeResponse(status: 400, reason: nil, fields: [(name: "Content-Type", value: "application/json")],
                                     body: bytes, close: true, into: &out)
        }
        #expect(text(out) == "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            + "Content-Length: 15\r\nConnection: close\r\n\r\n{\"error\":\"bad\"}")
    }

    @Test func generatedResponseWithoutContentHasNoLength() {
        var out: [UInt8] = []
        raw("ignored").withUnsafeBytes { bytes in
            HeadWriter.writeResponse(status: 204, reason: "Nothing", fields: [], body: bytes, close: false, into: &out)
            HeadWriter.writeResponse(status: 100, reason: nil, fields: [], body: bytes, close: false, into: &out)
        }
        #expect(text(out) == "HTTP/1.1 204 Nothing\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n")
    }

    @Test func generatedResponseWithEmptyBody() {
        var out: [UInt8] = []
        [UInt8]().withUnsafeBytes { bytes in
            HeadWriter.writeResponse(status: 502, reason: nil, fields: [], body: bytes, close: false, into: &out)
        }
        #expect(text(out) == "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func forwardedHeadParsesBackToTheSameFields() throws {
        let input = raw("PATCH /r HTTP/1.1\r\nHost: h\r\nX-One:  spaced value \r\nConnection: close\r\nContent-Length: 1\r\n\r\nz")
        var out: [UInt8] = []
        try parseRequest(input) { head, bytes in
            HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: head.framing, into: &out)
        }
        let outcome = MessageStreamDriver(side: .request).run([out + raw("z")])
        #expect(outcome.end == .clean)
        #expect(outcome.messages.first?.fields == ["Host: h", "X-One: spaced value", "Content-Length: 1"])
        #expect(outcome.messages.first?.keepAlive == true)
    }
}
