import Testing
@testable import Idempotency

/// A stored response is kept as its replay's bytes: what it is built from must read back
/// exactly, and each replay form must be what HTTP/1.1 asks for.
@Suite struct StoredResponseTests {
    static let fields = [
        HeaderPair(name: "Content-Type", value: "application/json"),
        HeaderPair(name: Array("X-Obs".utf8), value: Array("caf".utf8) + [0xE9, 0x80, 0xFF]),
        HeaderPair(name: "X-Empty", value: ""),
        HeaderPair(name: "X-Spaces", value: " a  b "),
        HeaderPair(name: "X-Colon", value: "a: b:c"),
    ]

    static func text(_ bytes: some Sequence<UInt8>) -> String { String(decoding: Array(bytes), as: UTF8.self) }

    @Test func readsBackWhatItWasBuiltFrom() {
        let body = (0..<300).map { UInt8(truncatingIfNeeded: $0) }
        let response = StoredResponse(status: 201, headers: Self.fields, body: body)
        #expect(response.status == 201)
        #expect(response.headers == Self.fields)
        #expect(response.fieldCount == Self.fields.count)
        #expect(response.body == body && response.bodyCount == 300)
        #expect(response.withBody { Array($0) } == body)
        #expect(!response.bodyOmitted)
        var visited: [HeaderPair] = []
        response.forEachField { visited.append(HeaderPair(name: Array($0), value: Array($1))) }
        #expect(visited == Self.fields)
    }

    @Test func theKeepAliveReplayIsTheStoredBytes() {
        let response = StoredResponse(status: 201, headers: [HeaderPair(name: "Location", value: "/p/1")], body: Array("{}".utf8))
        #expect(Self.text(response.keepAliveReplay)
            == "HTTP/1.1 201 Created\r\nLocation: /p/1\r\nIdempotent-Replayed: true\r\nContent-Length: 2\r\n\r\n{}")
    }

    @Test func aReplayThatNamesItsConnectionAddsOneField() {
        let response = StoredResponse(status: 200, headers: [HeaderPair(name: "A", value: "1")], body: Array("xyz".utf8))
        var closing: [UInt8] = Array("before".utf8)
        response.writeReplay(connectionField: "Connection: close", into: &closing)
        #expect(Self.text(closing)
            == "beforeHTTP/1.1 200 OK\r\nA: 1\r\nIdempotent-Replayed: true\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz")
        var acknowledged: [UInt8] = []
        response.writeReplay(connectionField: "Connection: keep-alive", into: &acknowledged)
        #expect(Self.text(acknowledged).hasSuffix("Content-Length: 3\r\nConnection: keep-alive\r\n\r\nxyz"))
    }

    /// 204 and 304 cannot have content (RFC 9110 §6.4.1): a replay carries neither body nor
    /// Content-Length, whatever the upstream sent, yet the record still reads back whole.
    @Test(arguments: [204, 304])
    func aStatusWithoutContentReplaysNoBody(status: Int) {
        let response = StoredResponse(status: status, headers: [HeaderPair(name: "ETag", value: "\"1\"")], body: Array("late".utf8))
        let replay = Self.text(response.keepAliveReplay)
        #expect(replay.hasSuffix("ETag: \"1\"\r\nIdempotent-Replayed: true\r\n\r\n"))
        #expect(!replay.contains("Content-Length") && !replay.contains("late"))
        var closing: [UInt8] = []
        response.writeReplay(connectionField: "Connection: close", into: &closing)
        #expect(Self.text(closing).hasSuffix("Idempotent-Replayed: true\r\nConnection: close\r\n\r\n"))
        #expect(response.body == Array("late".utf8) && response.headers.count == 1)
    }

    @Test func changingAPartRebuildsTheBytes() {
        var response = StoredResponse(status: 201, headers: Self.fields, body: Array("one".utf8))
        let original = response
        response.body = Array("second".utf8)
        #expect(response != original && response.headers == Self.fields)
        #expect(Self.text(response.keepAliveReplay).hasSuffix("Content-Length: 6\r\n\r\nsecond"))
        response.headers = [HeaderPair(name: "B", value: "2")]
        response.status = 202
        #expect(Self.text(response.keepAliveReplay)
            == "HTTP/1.1 202 Accepted\r\nB: 2\r\nIdempotent-Replayed: true\r\nContent-Length: 6\r\n\r\nsecond")
        response.bodyOmitted = true
        #expect(response.bodyOmitted && response.status == 202)
    }

    @Test func equalityComparesEveryPart() {
        let base = StoredResponse(status: 201, headers: Self.fields, body: [1, 2])
        #expect(base == StoredResponse(status: 201, headers: Self.fields, body: [1, 2]))
        #expect(base != StoredResponse(status: 200, headers: Self.fields, body: [1, 2]))
        #expect(base != StoredResponse(status: 201, headers: Array(Self.fields.dropLast()), body: [1, 2]))
        #expect(base != StoredResponse(status: 201, headers: Self.fields, body: [1, 3]))
        #expect(base != StoredResponse(status: 201, headers: Self.fields, body: [1, 2], bodyOmitted: true))
    }

    /// What the stores charge against their bounds covers the one buffer.
    @Test func storedBytesCoverTheBuffer() {
        let response = StoredResponse(status: 201, headers: Self.fields, body: Array(repeating: 7, count: 1000))
        #expect(response.storedBytes >= response.keepAliveReplay.count)
        #expect(response.storedBytes < response.keepAliveReplay.count + 256)
    }
}
