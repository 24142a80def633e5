import HTTP1
import Testing

/// RFC 9112 §9.3.2: requests may be pipelined; each one starts exactly where
/// the previous body ended, and nothing of one leaks into the next.
@Suite struct PipeliningTests {
    /// Parses two requests from one buffer by hand, the way a connection does.
    @Test func secondRequestStartsAfterTheFirstBody() throws {
        let input = raw(
            "POST /one HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                + "GET /two HTTP/1.1\r\nHost: b\r\n\r\n")
        try input.withUnsafeBytes { bytes throws in
            var head = RequestHead()
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init()))
            #expect(text(bytes, head.target) == "/one")

            var decoder = BodyDecoder(framing: head.framing)
            var offset = head.headLength
            var body: [UInt8] = []
            loop: while true {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                let (event, consumed) = try decoder.next(rest)
                if case .data(let range) = event { body += rest[range] }
                offset += consumed
                switch event {
                case .end: break loop
                case .needMore: Issue.record("first body should be complete"); return
                case .data: continue
                }
            }
            #expect(text(body) == "abc")
            #expect(offset == 72)

            let second = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            #expect(try RequestHeadParser.parse(second, into: &head, limits: .init()))
            #expect(head.method == .get)
            #expect(text(second, head.target) == "/two")
            #expect(head.host.map { text(second, $0) } == "b")
            #expect(offset + head.headLength == input.count)
        }
    }

    /// The same two requests through every feeding: the stream splits into the
    /// same two messages whatever the segmentation.
    @Test func pipelinedRequestsAgreeUnderEveryFeeding() {
        let input = raw(
            "PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nwxyz"
                + "\r\nDELETE /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        let driver = MessageStreamDriver(side: .request)
        let reference = driver.run([input])
        #expect(reference.end == .clean)
        #expect(reference.messages.map(\.target) == ["/a", "/b"])
        #expect(reference.messages.map { text($0.body) } == ["wxyz", ""])
        #expect(reference.messages.map(\.keepAlive) == [true, false])
        for feeding in Feeding.all(for: input.count) {
            #expect(driver.run(feeding.pieces(of: input)) == reference, "\(feeding)")
        }
    }

    /// A smuggled request hidden in a rejected message never surfaces as a
    /// second message: the stream stops at the first error.
    @Test func smuggledRequestIsNeverParsed() {
        let input = raw(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                + "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
        let outcome = MessageStreamDriver(side: .request).run([input])
        #expect(outcome.end == .rejected(400))
        #expect(outcome.messages.isEmpty)
    }

    /// A head that was parsed successfully leaves the parser ready for the
    /// next message even when the caller passes a stale scan hint.
    @Test func reusedHeadDoesNotKeepStaleFields() throws {
        let first = raw("GET /x HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n")
        let second = raw("GET /y HTTP/1.1\r\nHost: b\r\n\r\n")
        var head = RequestHead()
        try first.withUnsafeBytes { bytes throws in
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init()))
        }
        #expect(head.fields.count == 3)
        try second.withUnsafeBytes { bytes throws in
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init(), scanHint: 5))
            #expect(head.fields.count == 1)
            #expect(head.hopByHop.count == 1)
            #expect(text(bytes, head.target) == "/y")
        }
    }
}
