import Foundation
import Testing
import TestSupport

/// A replay's fields are chosen by the hop-by-hop flags the response parser set for the
/// original client's copy (`ResponseHead.hopByHop`), plus a name-based drop of the framing
/// fields and of Set-Cookie unless kept. These tests compare the two responses a client can see
/// field by field: the replay must carry exactly the fields the original client received, in
/// the same order and with the same bytes, less Content-Length/Transfer-Encoding and
/// Set-Cookie (unless `keep_headers` keeps it), followed by `Idempotent-Replayed: true` and the
/// replay's own Content-Length, and nothing else.
@Suite(.serialized) struct ReplayMatchesOriginalTests {
    struct Field: Hashable, CustomStringConvertible {
        var name: [UInt8]
        var value: [UInt8]
        var lowercasedName: String { String(decoding: name.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }, as: UTF8.self) }
        var description: String { "\(String(decoding: name, as: UTF8.self)): \(String(decoding: value, as: UTF8.self)) \(value)" }
        init(_ name: [UInt8], _ value: [UInt8]) { self.name = name; self.value = value }
        init(_ name: String, _ value: String) { self.init(Array(name.utf8), Array(value.utf8)) }
    }

    /// The field lines of a head (status line skipped), values with OWS trimmed.
    static func fields(_ headBytes: [UInt8]) -> [Field] {
        TestClient.Response.fieldLines(headBytes).map { Field($0.name, $0.value) }
    }

    static func request(_ key: String, method: String = "POST", body: String = "{}", version: String = "1.1") -> String {
        "\(method) /r HTTP/\(version)\r\nHost: a\r\nIdempotency-Key: \(key)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    static var redisYAML: String {
        let url = ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:1/0"
        return "store: { backend: redis, redis: { url: \"\(url)\", key_prefix: \"rmo\(UInt32.random(in: 0...UInt32.max)):\", command_timeout: 500ms } }\n"
    }

    enum Store: String, CaseIterable, CustomStringConvertible {
        case memory, redis
        var description: String { rawValue }
        var yaml: String { self == .redis ? ReplayMatchesOriginalTests.redisYAML : "" }
    }

    /// The comparison itself. Returns the two responses for further checks.
    @discardableResult
    func compare(
        _ behaviour: TestUpstream.Behaviour, key: String, keep: [String] = [], store: Store = .memory, yaml: String = "",
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (first: TestClient.Response, replay: TestClient.Response) {
        let upstream = TestUpstream { _ in behaviour }
        var text = "idempotency:\n  scope: { header: \"\" }\n"
        if !keep.isEmpty { text += "  replay: { keep_headers: [\(keep.joined(separator: ", "))] }\n" }
        let proxy = try ProxyHarness(upstream: upstream, yaml: text + store.yaml + yaml)
        defer { proxy.stop() }
        let first = try proxy.request(Self.request(key))
        let replay = try proxy.request(Self.request(key))
        #expect(upstream.requests.count == 1, sourceLocation: sourceLocation)
        #expect(replay.status == first.status, sourceLocation: sourceLocation)
        #expect(replay.body == first.body, sourceLocation: sourceLocation)
        let keepsCookies = keep.contains { $0.lowercased() == "set-cookie" }
        let original = Self.fields(first.headBytes).filter { field in
            switch field.lowercasedName {
            case "content-length", "transfer-encoding": return false
            case "set-cookie": return keepsCookies
            default: return true
            }
        }
        let replayed = Self.fields(replay.headBytes)
        let stored = Array(replayed.prefix(original.count))
        #expect(stored == original, "replay's stored fields:\n\(stored)\noriginal client's fields:\n\(original)", sourceLocation: sourceLocation)
        let added = Array(replayed.dropFirst(original.count))
        let bodyAllowed = first.status != 204 && first.status != 304
        var expectedAdded: Set<Field> = [Field("Idempotent-Replayed", "true")]
        if bodyAllowed { expectedAdded.insert(Field("Content-Length", "\(first.body.count)")) }
        #expect(added.count == expectedAdded.count && Set(added) == expectedAdded,
                "fields the replay adds: \(added)", sourceLocation: sourceLocation)
        return (first, replay)
    }

    /// Connection options naming Content-Type and Host (a response's Host is removed like any
    /// named field now), spread over two Connection fields with odd case, empty elements and
    /// whitespace; obs-text and duplicate names kept as received.
    @Test(arguments: Store.allCases)
    func connectionNamingContentTypeAndHost(store: Store) throws {
        let head = Array("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nHost: origin.internal\r\nConnection:  Content-TYPE ,\t\r\n".utf8)
            + Array("X-A: 1\r\nconnection: ,hOsT,, x-b\r\nX-B: 2\r\nx-a:  again \r\nX-Obs: caf".utf8) + [0xE9, 0x80, 0xFF]
            + Array("\r\nLocation: /r/1\r\nContent-Length: 2\r\n\r\n{}".utf8)
        let (first, replay) = try compare(.raw(head), key: "ct-host-\(store)", store: store)
        for response in [first, replay] {
            #expect(response.values("content-type").isEmpty)
            #expect(response.values("host").isEmpty)
            #expect(response.values("x-b").isEmpty)
            #expect(response.values("x-a") == ["1", "again"])
        }
    }

    /// Set-Cookie: kept or not by `keep_headers`, named by a Connection option or not. A named
    /// Set-Cookie never reached the original client, so no replay may carry it, kept or not.
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func setCookieKeptOrNamed(keep: Bool, named: Bool) throws {
        let head = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-K: k\r\nset-COOKIE: b=2\r\n" + (named ? "Connection: x-none, SET-cookie\r\n" : "")
            + "Content-Length: 2\r\n\r\n{}"
        let (first, replay) = try compare(.raw(Array(head.utf8)), key: "cookie-\(keep)-\(named)", keep: keep ? ["Set-Cookie"] : [])
        #expect(first.values("set-cookie") == (named ? [] : ["a=1", "b=2"]))
        #expect(replay.values("set-cookie") == (named || !keep ? [] : ["a=1", "b=2"]))
    }

    /// A chunked response (with a trailer and hop-by-hop fields) is replayed with Content-Length
    /// framing and the same body; none of its framing fields is stored.
    @Test(arguments: Store.allCases)
    func chunkedOriginalIsReplayedWithContentLength(store: Store) throws {
        let head = Array("HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nX-A: a\r\nConnection: x-c\r\nX-C: c\r\nX-D: d\r\n\r\n".utf8)
        let body = Array("4\r\nabcd\r\n1\r\ne\r\n0\r\nX-Sum: 5\r\n\r\n".utf8)
        let (first, replay) = try compare(.raw(head + body), key: "chunked-\(store)", store: store)
        #expect(first.value("transfer-encoding") == "chunked")
        #expect(replay.values("transfer-encoding").isEmpty)
        #expect(replay.values("content-length") == ["5"])
        #expect(replay.bodyText == "abcde")
        #expect(replay.values("x-sum").isEmpty && first.values("x-sum").isEmpty)
    }

    /// Interim responses before the final one: their fields and their Connection options
    /// belong to them alone (a 103's `Connection: x-final` does not remove the final X-Final).
    @Test func interimResponsesDoNotLeakIntoTheFinalFields() throws {
        let head = Array("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\nConnection: x-final, x-keep\r\nX-Keep: k\r\n\r\n".utf8)
            + Array("HTTP/1.1 200 OK\r\nX-Final: f\r\nConnection: x-other\r\nX-Other: o\r\nX-Keep: kept\r\nContent-Length: 2\r\n\r\n{}".utf8)
        let (first, replay) = try compare(.raw(head), key: "interim")
        for response in [first, replay] {
            #expect(response.values("x-final") == ["f"])
            #expect(response.values("x-keep") == ["kept"])
            #expect(response.values("x-interim").isEmpty && response.values("link").isEmpty && response.values("x-other").isEmpty)
        }
    }

    /// An HTTP/1.0 upstream response framed by the connection's close. `Connection: close`
    /// is an option and, like every option, names a field to remove (RFC 9110 §7.6.1): a field
    /// named `Close` reaches neither the client nor the replay, nor does any other named field.
    @Test func closeDelimitedHTTP10Response() throws {
        let bytes = Array("HTTP/1.0 200 OK\r\nConnection: close, x-hop\r\nClose: c\r\nX-Hop: h\r\nKeep-Alive: timeout=1\r\nX-Stay: s\r\n\r\nuntil-close".utf8)
        let (first, replay) = try compare(.sequence([bytes], gapSeconds: 0, ending: .close), key: "http10")
        #expect(first.bodyText == "until-close")
        #expect(replay.values("close").isEmpty && replay.values("x-hop").isEmpty && replay.values("keep-alive").isEmpty)
    }

    /// Interim, named, cookie, chunked and obs-text at once, on Redis (the record codec carries
    /// the stored fields there), with > 64 fields so the filter's bitmap spills over.
    @Test(arguments: Store.allCases)
    func everythingAtOnce(store: Store) throws {
        var head = Array("HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n".utf8)
        for i in 0..<80 {
            switch i {
            case 5: head += Array("Connection: X-F70, content-type, Host\r\n".utf8)
            case 9: head += Array("Set-Cookie: s=\(i)\r\n".utf8)
            case 33: head += Array("Host: h\r\n".utf8)
            case 47: head += Array("X-Bin: ".utf8) + [0x80, 0x20, 0xFE] + [13, 10]
            case 63, 64, 65: head += Array("content-type: text/x-\(i)\r\n".utf8)
            case 77: head += Array("CONNECTION: x-f3 ,\tx-f78\r\n".utf8)
            default: head += Array("X-F\(i): v\(i)\r\n".utf8)
            }
        }
        head += Array("\r\n".utf8) + Array("3\r\nabc\r\n0\r\n\r\n".utf8)
        let (first, _) = try compare(.raw(head), key: "all-\(store)", keep: ["set-cookie"], store: store, yaml: "limits: { max_headers: 1000 }\n")
        #expect(first.values("x-f70").isEmpty && first.values("x-f3").isEmpty && first.values("x-f78").isEmpty)
        #expect(first.values("set-cookie") == ["s=9"])
    }

    /// A HEAD with the key of a stored POST is not guarded (safe methods never are): it is
    /// forwarded, keeps the upstream's Content-Length, and is no replay; the POST still replays.
    @Test func headIsForwardedNotReplayed() throws {
        let upstream = TestUpstream { request in
            .respond(status: 200, headers: [("X-Method", request.method)], body: Array("0123456789".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { scope: { header: \"\" } }\n")
        defer { proxy.stop() }
        let post = try proxy.request(Self.request("hp"))
        let head = try proxy.request(Self.request("hp", method: "HEAD", body: ""), method: "HEAD")
        let replay = try proxy.request(Self.request("hp"))
        #expect(post.value("x-method") == "POST")
        #expect(head.value("x-method") == "HEAD" && head.value("content-length") == "10" && head.value("idempotent-replayed") == nil)
        #expect(replay.value("x-method") == "POST" && replay.value("idempotent-replayed") == "true" && replay.bodyText == "0123456789")
        #expect(upstream.requests.map(\.method) == ["POST", "HEAD"])
    }

    /// An upstream that sends its own `Idempotent-Replayed` field: the original client gets it
    /// as sent, but a replay must say `true`, once. Replaying the stored `false` next to the
    /// proxy's `true` leaves a client reading the first value believing the replay is fresh.
    @Test func anUpstreamsOwnReplayedFieldIsNotReplayedBesideTheProxys() throws {
        let head = Array("HTTP/1.1 201 Created\r\nIdempotent-Replayed: false\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n{}".utf8)
        let upstream = TestUpstream { _ in .raw(head) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { scope: { header: \"\" } }\n")
        defer { proxy.stop() }
        _ = try proxy.request(Self.request("own-replayed"))
        let replay = try proxy.request(Self.request("own-replayed"))
        #expect(upstream.requests.count == 1)
        #expect(replay.values("idempotent-replayed") == ["true"], "replay head:\n\(replay.head)")
    }
}
