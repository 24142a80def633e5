import Testing
import TestSupport

/// The fields a replay carries are chosen and copied from the upstream's response head as it
/// arrives (`ReplayFilter.storedFields`): end to end, through a real proxy and its memory store.
@Suite struct ReplayedFieldsTests {
    /// Connection-named and hop-by-hop fields are dropped whatever their case, Set-Cookie is kept
    /// when `replay.keep_headers` names it, and every kept value replays byte for byte, obs-text
    /// (RFC 9110 §5.5) included.
    @Test func aReplayCarriesExactlyTheKeptFieldsBytes() throws {
        let head = Array("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: keep-alive, X-Hop , x-trace\r\n".utf8)
            + Array("X-Hop: 1\r\nX-TRACE: abc\r\nKeep-Alive: timeout=5\r\nSet-Cookie: s=1\r\nX-Label: caf".utf8) + [0xE9, 0xFF]
            + Array("\r\nContent-Length: 2\r\nLocation: /v1/p/42\r\n\r\n{}".utf8)
        let upstream = TestUpstream { _ in .raw(head) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency:\n  replay: { keep_headers: [set-cookie] }\n")
        defer { proxy.stop() }
        let request = "POST /p HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: fields-1\r\nContent-Length: 2\r\n\r\n{}"
        let first = try proxy.request(request)
        let replay = try proxy.request(request)
        #expect(first.status == 201 && replay.status == 201)
        #expect(replay.value("idempotent-replayed") == "true")
        #expect(upstream.requests.count == 1)
        let names = replay.head.components(separatedBy: "\r\n").dropFirst().compactMap { $0.split(separator: ":").first.map(String.init) }
        #expect(names.contains("Content-Type") && names.contains("Set-Cookie") && names.contains("Location") && names.contains("X-Label"))
        for dropped in ["X-Hop", "X-TRACE", "Keep-Alive"] { #expect(!names.contains(dropped), "\(dropped) was replayed") }
        #expect(replay.value("set-cookie") == "s=1")
        let label = Array("X-Label: caf".utf8) + [0xE9, 0xFF, 13, 10]
        #expect(replay.headBytes.firstRange(of: label) != nil, "the obs-text value was not replayed byte for byte")
        #expect(replay.bodyText == "{}")
    }
}
