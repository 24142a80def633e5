import HTTP1
import Testing

/// Parser entry points: scan hints, reuse, lookups and error reporting.
@Suite struct HeadAPITests {
    @Test func incompleteHeadReturnsFalse() throws {
        var head = RequestHead()
        let input = raw("GET / HTTP/1.1\r\nHost: a\r\n\r")
        try input.withUnsafeBytes { bytes throws in
            #expect(try !RequestHeadParser.parse(bytes, into: &head, limits: .init()))
        }
    }

    /// Feeding a large head one byte at a time must stay linear: with the scan
    /// hint the scanner resumes where it stopped, so it must beat a parser that
    /// is forced to rescan from the start (scanHint 0) by a wide margin.
    @Test func byteByByteFeedingWithScanHintIsLinear() throws {
        var text = "GET /" + String(repeating: "p", count: 6000) + " HTTP/1.1\r\nHost: a\r\n"
        for i in 0..<40 { text += "X-Field-\(i): " + String(repeating: "v", count: 100) + "\r\n" }
        text += "\r\n"
        let input = raw(text)

        func feed(useHint: Bool) throws -> (Duration, RequestHead) {
            var head = RequestHead()
            var done = false
            let elapsed = try ContinuousClock().measure {
                try input.withUnsafeBytes { bytes throws in
                    for end in 1...input.count {
                        done = try RequestHeadParser.parse(
                            UnsafeRawBufferPointer(rebasing: bytes[..<end]), into: &head,
                            limits: .init(), scanHint: useHint ? end - 1 : 0)
                    }
                }
            }
            #expect(done)
            return (elapsed, head)
        }

        let (hinted, head) = try feed(useHint: true)
        let (rescanning, _) = try feed(useHint: false)
        #expect(head.fields.count == 41)
        #expect(head.headLength == input.count)
        #expect(hinted * 4 < rescanning, "hinted \(hinted), rescanning \(rescanning)")
    }

    /// "keep-alive" alone is read by a whole-value comparison; near misses and lists take the
    /// general path. An HTTP/1.0 request persists only when the option is really there.
    @Test func keepAliveIsRecognisedExactlyInAnyCase() throws {
        let cases: [(value: String, keepAlive: Bool)] = [
            ("keep-alive", true), ("Keep-Alive", true), ("KEEP-ALIVE", true), ("  keep-alive  ", true),
            ("keep-alive, x-a", true), ("x-a, Keep-Alive", true), ("keep-alivf", false), ("keep_alive", false),
            ("keep-aliv", false), ("kee-palive", false), ("keep-alive-x", false), ("close", false),
        ]
        for (value, keepAlive) in cases {
            let bytes = raw("GET / HTTP/1.0\r\nConnection: \(value)\r\nX-A: 1\r\n\r\n")
            var head = RequestHead()
            let complete = try bytes.withUnsafeBytes { try RequestHeadParser.parse($0, into: &head, limits: .init()) }
            try #require(complete)
            #expect(head.keepAlive == keepAlive, "\(value)")
            // X-A is removed only when the list names it.
            #expect(head.hopByHop[1] == value.contains("x-a"), "\(value)")
        }
    }

    /// The parser skips letters, digits and '-' eight at a time before its byte loop. The
    /// outcome for a field name must not depend on where a word boundary falls: every name
    /// length up to 24, a stop byte at every position, and the line at eight alignments are
    /// checked against the byte-at-a-time rule (scan tchar, then judge the stop byte).
    @Test func fieldNameOutcomeDoesNotDependOnWordBoundaries() throws {
        let whitespaceBeforeColon = HTTPParseError(status: 400, reason: "whitespace between field name and colon")
        let invalidFieldName = HTTPParseError(status: 400, reason: "invalid character in field name")
        let emptyFieldName = HTTPParseError(status: 400, reason: "empty field name")
        let missingColon = HTTPParseError(status: 400, reason: "field line without colon")
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        let nameBytes = Array("aZ9-kQ0-".utf8)
        let stops: [UInt8] = [0x20, 0x09, 0x40, 0x80, 0xC1, 0xE1, 0xAD, 0xFF, 0x5F, 0x21, 0x7E, 0x2F, 0x2C, 0x7F, 0x00, 0x3A, 0x5B, 0x60, 0x7B]
        func outcome(_ input: [UInt8]) -> HTTPParseError? {
            var head = RequestHead()
            do {
                let done = try input.withUnsafeBytes { try RequestHeadParser.parse($0, into: &head, limits: .init()) }
                return done ? nil : HTTPParseError(status: 0, reason: "incomplete")
            } catch { return error as? HTTPParseError ?? HTTPParseError(status: -1, reason: "\(error)") }
        }
        for alignment in 0..<8 {
            let start = raw("GET /" + String(repeating: "p", count: alignment) + " HTTP/1.1\r\nHost: a\r\n")
            for length in 0...24 {
                let name = (0..<length).map { nameBytes[$0 % nameBytes.count] }
                // A name with no colon at all.
                if length > 0 {
                    #expect(outcome(start + name + raw("\r\n\r\n")) == missingColon, "\(alignment) \(length) no colon")
                }
                for stop in stops {
                    if length == 0 && (stop == 0x20 || stop == 0x09) { continue }  // obs-fold, the scanner's error
                    let line = name + [stop] + raw("xY-1: v\r\n")
                    let expected: HTTPParseError?
                    if tchar.contains(stop) { expected = nil }  // part of the name "…xY-1"
                    else if stop == 0x3A { expected = length == 0 ? emptyFieldName : nil }
                    else if stop == 0x20 || stop == 0x09 { expected = whitespaceBeforeColon }
                    else { expected = invalidFieldName }
                    #expect(outcome(start + line + raw("\r\n")) == expected, "\(alignment) \(length) \(stop)")
                }
            }
        }
    }

    /// The whole-value "keep-alive" comparison against every one-bit change of every byte
    /// (case bit, high bit, low bit): only a case change keeps the option, and anything that
    /// fails the word comparison gets the general path's outcome.
    @Test func keepAliveFastPathAgreesWithTheListPathForEveryNearMiss() throws {
        let literal = Array("keep-alive".utf8)
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for position in 0..<literal.count {
            for flip: UInt8 in [0x20, 0x80, 0x01, 0xA0] {
                var value = literal
                value[position] ^= flip
                if value[position] < 0x20 || value[position] == 0x7F { continue }  // not a field value byte
                let input = raw("GET / HTTP/1.0\r\nConnection: ") + value + raw("\r\nKeep-Alive: timeout=5\r\n\r\n")
                var head = RequestHead()
                let lowered = value.map { $0 &- 0x41 < 26 ? $0 | 0x20 : $0 }
                if !value.allSatisfy({ tchar.contains($0) || $0 == 0x2C }) {  // ',' splits it into a list
                    #expect(throws: HTTPParseError(status: 400, reason: "malformed Connection field")) {
                        _ = try input.withUnsafeBytes { try RequestHeadParser.parse($0, into: &head, limits: .init()) }
                    }
                    continue
                }
                let done = try input.withUnsafeBytes { try RequestHeadParser.parse($0, into: &head, limits: .init()) }
                try #require(done)
                #expect(head.keepAlive == (lowered == literal), "\(value)")
                // The Keep-Alive field is hop-by-hop whatever the Connection value says.
                #expect(head.hopByHop[1])
            }
        }
    }

    /// `copyContents(of:)` copies property by property (so the source's arrays are borrowed,
    /// not retained): every stored property must arrive, whichever head is copied into which.
    /// The heads differ in every property, so a property left out fails some pair here.
    @Test func aCopyMatchesItsOriginalInEveryProperty() throws {
        let texts = [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "\r\nPOST http://b.example/x?y=1 HTTP/1.1\r\nHost: b.example\r\nExpect: 100-continue\r\nUpgrade: h2c\r\n"
                + "Connection: close, x-a\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n",
            "PUT /z HTTP/1.0\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n",
            // Incomplete: its scanner is part way (a complete parse leaves the scanner reset).
            "DELETE /partial HTTP/1.1\r\nHo",
        ]
        func parsed(_ text: String) throws -> (RequestHead, [UInt8]) {
            let bytes = raw(text)
            var head = RequestHead()
            let complete = try bytes.withUnsafeBytes { try RequestHeadParser.parse($0, into: &head, limits: .init()) }
            try #require(complete == text.hasSuffix("\r\n\r\n"), "\(text)")
            return (head, bytes)
        }
        func properties(_ head: RequestHead) -> [String] {
            Mirror(reflecting: head).children.map { "\($0.label ?? "?")=\($0.value)" }
        }
        for source in texts {
            for destination in texts where destination != source {
                let (original, _) = try parsed(source)
                var copy = try parsed(destination).0
                copy.copyContents(of: original)
                #expect(properties(copy) == properties(original), "\(destination) ← \(source)")
                copy.fields.withUnsafeBufferPointer { copied in
                    original.fields.withUnsafeBufferPointer { #expect(copied.baseAddress != $0.baseAddress) }
                }
            }
        }
        // The heads really differ in every property, or the pairs above would prove little.
        let all = try texts.map { properties(try parsed($0).0) }
        for index in all[0].indices {
            #expect(Set(all.map { $0[index] }).count > 1, "property \(all[0][index]) is the same in every head")
        }
    }

    /// `close` is an option and names a field too (RFC 9110 §7.6.1): a field named Close is
    /// removed from requests and responses alike, and the connection still closes.
    @Test func aConnectionCloseRemovesAFieldNamedClose() throws {
        try raw("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nClose: 1\r\nX: 2\r\n\r\n").withUnsafeBytes { bytes throws in
            var head = RequestHead()
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init()))
            #expect(head.hopByHop == [false, true, true, false])
            #expect(!head.keepAlive)
        }
        try raw("HTTP/1.1 200 OK\r\nClose: 1\r\nConnection: CLOSE\r\nContent-Length: 0\r\n\r\n").withUnsafeBytes { bytes throws in
            var head = ResponseHead()
            #expect(try ResponseHeadParser.parse(bytes, into: &head, requestMethod: .get, limits: .init()))
            #expect(head.hopByHop == [true, true, true])
            #expect(!head.keepAlive)
        }
    }

    /// `Connection: host` keeps a request's Host (RFC 9112 §3.2: the upstream needs one) but
    /// removes a response's Host like any field a Connection option names (RFC 9110 §7.6.1).
    @Test func aConnectionOptionNamingHostSparesOnlyARequestsHost() throws {
        try raw("GET / HTTP/1.1\r\nHost: a\r\nConnection: host, x\r\nX: 1\r\n\r\n").withUnsafeBytes { bytes throws in
            var head = RequestHead()
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init()))
            #expect(head.hopByHop == [false, true, true])
        }
        try raw("HTTP/1.1 200 OK\r\nHost: a\r\nConnection: host, x\r\nX: 1\r\nContent-Length: 0\r\n\r\n").withUnsafeBytes { bytes throws in
            var head = ResponseHead()
            #expect(try ResponseHeadParser.parse(bytes, into: &head, requestMethod: .get, limits: .init()))
            #expect(head.hopByHop == [true, true, true, true])
        }
    }

    @Test func fieldLookupIsCaseInsensitive() throws {
        let input = raw("GET / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: \"k1\"\r\nidempotency-key: \"k2\"\r\n\r\n")
        try input.withUnsafeBytes { bytes throws in
            var head = RequestHead()
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init()))
            #expect(head.firstIndex(ofField: "idempotency-key", in: bytes) == 1)
            #expect(head.fieldCount(named: "idempotency-key", in: bytes) == 2)
            #expect(head.firstIndex(ofField: "missing", in: bytes) == nil)
            #expect(head.fieldCount(named: "host", in: bytes) == 1)
        }
        let response = raw("HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nset-cookie: b\r\nContent-Length: 0\r\n\r\n")
        try response.withUnsafeBytes { bytes throws in
            var head = ResponseHead()
            #expect(try ResponseHeadParser.parse(bytes, into: &head, requestMethod: .post, limits: .init()))
            #expect(head.fieldCount(named: "set-cookie", in: bytes) == 2)
            #expect(head.firstIndex(ofField: "content-length", in: bytes) == 2)
        }
    }

    @Test func methodAndVersionAreReported() throws {
        let input = raw("OPTIONS /x HTTP/1.0\r\n\r\n")
        try input.withUnsafeBytes { bytes throws in
            var head = RequestHead()
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init()))
            #expect(head.method == .options)
            #expect(head.methodRange == 0..<7)
            #expect(head.target == 8..<10)
            #expect(head.versionMinor == 0)
            #expect(head.host == nil)
            #expect(head.keepAlive == false)
        }
    }

    @Test func errorsCarryStatusAndReason() {
        let input = raw("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        var head = RequestHead()
        #expect(throws: HTTPParseError(status: 400, reason: "Content-Length and Transfer-Encoding both present")) {
            try input.withUnsafeBytes { bytes throws in
                _ = try RequestHeadParser.parse(bytes, into: &head, limits: .init())
            }
        }
        let error = HTTPParseError(status: 414, reason: "request-target too long")
        #expect(error.description.contains("414"))
    }

    @Test func responseReasonAndStatus() throws {
        let input = raw("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
        try input.withUnsafeBytes { bytes throws in
            var head = ResponseHead()
            #expect(try ResponseHeadParser.parse(bytes, into: &head, requestMethod: .get, limits: .init()))
            #expect(head.status == 418)
            #expect(text(bytes, head.reason) == "I'm a teapot")
            #expect(head.headLength == input.count)
        }
    }
}
