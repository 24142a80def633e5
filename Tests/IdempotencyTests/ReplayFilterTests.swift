import Testing
@testable import Idempotency

private func names(_ headers: [HeaderPair]) -> [String] { headers.map(\.nameText) }

@Suite struct ReplayFilterTests {
    static let upstream: [HeaderPair] = [
        HeaderPair(name: "Content-Type", value: "application/json"),
        HeaderPair(name: "Connection", value: "keep-alive, X-Hop , close"),
        HeaderPair(name: "Keep-Alive", value: "timeout=5"),
        HeaderPair(name: "X-Hop", value: "1"),
        HeaderPair(name: "Proxy-Connection", value: "keep-alive"),
        HeaderPair(name: "TE", value: "trailers"),
        HeaderPair(name: "Trailer", value: "X-Checksum"),
        HeaderPair(name: "Transfer-Encoding", value: "chunked"),
        HeaderPair(name: "Upgrade", value: "h2c"),
        HeaderPair(name: "Content-Length", value: "17"),
        HeaderPair(name: "set-cookie", value: "session=abc"),
        HeaderPair(name: "Location", value: "/v1/payments/42"),
        HeaderPair(name: "Cache-Control", value: "no-store"),
    ]

    @Test func dropsHopByHopFramingAndCookies() {
        let kept = ReplayFilter.headersToStore(responseHeaders: Self.upstream, keepHeaders: [])
        #expect(names(kept) == ["Content-Type", "Location", "Cache-Control"])
    }

    @Test func keepHeadersRescuesSetCookieCaseInsensitively() {
        let kept = ReplayFilter.headersToStore(responseHeaders: Self.upstream, keepHeaders: ["Set-Cookie"])
        #expect(names(kept) == ["Content-Type", "set-cookie", "Location", "Cache-Control"])
    }

    @Test func keepHeadersCannotRescueHopByHopFields() {
        let kept = ReplayFilter.headersToStore(
            responseHeaders: Self.upstream, keepHeaders: ["transfer-encoding", "X-HOP", "Content-Length"])
        #expect(names(kept) == ["Content-Type", "Location", "Cache-Control"])
    }

    @Test func fieldsNamedByConnectionAreDroppedWhateverTheirCase() {
        let headers = [
            HeaderPair(name: "connection", value: "X-Custom"),
            HeaderPair(name: "x-custom", value: "1"),
            HeaderPair(name: "X-CUSTOM", value: "2"),
            HeaderPair(name: "X-Other", value: "3"),
        ]
        #expect(names(ReplayFilter.headersToStore(responseHeaders: headers, keepHeaders: [])) == ["X-Other"])
    }

    @Test func nothingToDrop() {
        let headers = [HeaderPair(name: "A", value: "1"), HeaderPair(name: "B", value: "2")]
        #expect(ReplayFilter.headersToStore(responseHeaders: headers, keepHeaders: []) == headers)
    }

    /// The length pre-check must admit every name the filter drops, or one would be stored.
    @Test func everyDroppedNameHasALengthThePreCheckAdmits() {
        for name in ReplayFilter.neverStored + ReplayFilter.droppedByDefault + [ReplayFilter.addedByReplay] {
            #expect(ReplayFilter.mayBeDropped(name.utf8.count), "\(name)")
            let headers = [HeaderPair(name: name.uppercased(), value: "1"), HeaderPair(name: "Date", value: "x")]
            #expect(names(ReplayFilter.headersToStore(responseHeaders: headers, keepHeaders: [])) == ["Date"], "\(name)")
        }
    }

    /// The first 64 fields' fates are kept as bits; the rest apart. Both must drop and keep.
    @Test func responsesWithMoreThan64FieldsAreFilteredThroughout() {
        var headers = (0..<70).map { HeaderPair(name: "X-F\($0)", value: "\($0)") }
        headers[3] = HeaderPair(name: "Content-Length", value: "1")
        headers[66] = HeaderPair(name: "Transfer-Encoding", value: "chunked")
        headers[69] = HeaderPair(name: "Connection", value: "X-F1, x-f65")
        let expected = (0..<70).filter { ![1, 3, 65, 66, 69].contains($0) }.map { "X-F\($0)" }
        #expect(names(ReplayFilter.headersToStore(responseHeaders: headers, keepHeaders: [])) == expected)
    }

    /// The fields are taken from the head as received and written, in order, into one new
    /// buffer (the stored response's): nothing of the head is kept, and there is one
    /// allocation for all the bytes.
    @Test func storedFieldsAreCopiedOutOfTheHeadIntoOneBuffer() {
        let head = Array(
            ("HTTP/1.1 201 Created\r\nServer: nginx\r\nConnection: keep-alive , X-Hop\r\nX-Hop: 1\r\n"
                + "Content-Length: 2\r\nContent-Type: a/b\r\nSet-Cookie: s=1\r\n\r\n").utf8)
        // Field ranges as the response parser reports them: name, and value without OWS.
        var ranges: [(name: Range<Int>, value: Range<Int>)] = []
        var lineStart = head.firstIndex(of: UInt8(ascii: "\n"))! + 1
        while head[lineStart] != UInt8(ascii: "\r") {
            let colon = head[lineStart...].firstIndex(of: UInt8(ascii: ":"))!
            let end = head[colon...].firstIndex(of: UInt8(ascii: "\r"))!
            ranges.append((lineStart..<colon, colon + 2..<end))
            lineStart = end + 2
        }
        let kept = head.withUnsafeBytes { source in
            ReplayFilter.storedFields(count: ranges.count, in: source, keepHeaders: []) { ranges[$0] }
        }
        #expect(names(kept) == ["Server", "Content-Type"])
        #expect(kept.map { String(decoding: $0.value, as: UTF8.self) } == ["nginx", "a/b"])
        let addresses = kept.flatMap { pair in
            [pair.name, pair.value].map { slice in slice.withUnsafeBufferPointer { ($0.baseAddress!, $0.count) } }
        }
        // Name, ": ", value, CRLF: each next slice starts right after the previous one's separator.
        for (index, (previous, next)) in zip(addresses, addresses.dropFirst()).enumerated() {
            #expect(previous.0 + previous.1 + 2 == next.0, "stored field bytes are not one buffer, in order (\(index))")
        }
        head.withUnsafeBufferPointer { original in
            #expect(!addresses.contains { original.baseAddress! <= $0.0 && $0.0 < original.baseAddress! + original.count })
        }
    }

    /// The proxy passes the hop-by-hop flags its response parser set: those decide, whatever
    /// the names say, and Set-Cookie is still dropped unless kept.
    @Test func parserFlagsDecideWhatIsHopByHop() {
        let head = Array("Connection: x\r\nServer: n\r\nX-Named: 1\r\nSet-Cookie: s\r\nContent-Length: 2\r\n".utf8)
        var ranges: [(name: Range<Int>, value: Range<Int>)] = []
        var lineStart = 0
        while lineStart < head.count {
            let colon = head[lineStart...].firstIndex(of: UInt8(ascii: ":"))!
            let end = head[colon...].firstIndex(of: UInt8(ascii: "\r"))!
            ranges.append((lineStart..<colon, colon + 2..<end))
            lineStart = end + 2
        }
        // As a parser would mark them had the Connection field named X-Named.
        let flags = [true, false, true, false, true]
        func stored(keep: [String], flags: [Bool]) -> [String] {
            names(head.withUnsafeBytes { source in
                ReplayFilter.storedFields(count: ranges.count, in: source, keepHeaders: keep, isHopByHop: { flags[$0] }) { ranges[$0] }
            })
        }
        #expect(stored(keep: [], flags: flags) == ["Server"])
        #expect(stored(keep: ["set-cookie"], flags: flags) == ["Server", "Set-Cookie"])
        // Unflagged, Connection and X-Named are kept (the flags are the rule), but never a
        // framing field: the replay computes its own Content-Length.
        #expect(stored(keep: [], flags: Array(repeating: false, count: 5)) == ["Connection", "Server", "X-Named"])
    }
}
