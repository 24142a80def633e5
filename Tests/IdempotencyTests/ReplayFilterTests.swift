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
        for name in ReplayFilter.neverStored + ReplayFilter.droppedByDefault {
            #expect(ReplayFilter.mayBeDropped(ArraySlice(name.utf8)), "\(name)")
            let headers = [HeaderPair(name: name.uppercased(), value: "1"), HeaderPair(name: "Date", value: "x")]
            #expect(names(ReplayFilter.headersToStore(responseHeaders: headers, keepHeaders: [])) == ["Date"], "\(name)")
        }
    }
}
