import Foundation
import Idempotency
import Testing
import TestSupport

/// The forwarded request head is written as bytes (`writeForwardedHead`): the request line with
/// the upstream path prefix, the kept field lines copied as received, the per-connection
/// X-Forwarded-For/-Proto lines, then Host/X-Forwarded-Host taken from the request's own bytes
/// (or the target's authority, or the upstream's authority for HTTP/1.0 without Host), then the
/// framing field. Every test pins the exact head the upstream receives, across target forms,
/// pipelining, Expect, chunked bodies, guarded requests (whose head is copied into the guarded
/// exchange first) and heads that arrive in many small reads.
@Suite(.serialized) struct HostileForwardingTests {
    static let echo: TestUpstream.Responder = { request in
        .respond(status: 201, headers: [], body: Array((request.target + "|" + String(decoding: request.body, as: UTF8.self)).utf8))
    }

    static let forwarded = "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"

    /// Sends `bytes` in pieces of `size`, with a short pause after each, so the proxy reads
    /// the head in many reads (the pause only makes separate reads likely; nothing asserted
    /// depends on it).
    static func trickle(_ client: TestClient, _ text: String, size: Int) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + size, bytes.count)
            try client.send(Array(bytes[offset..<end]))
            offset = end
            usleep(300)
        }
    }

    /// Waits for the interim "100 Continue" the proxy answers an expectation with (left in the
    /// buffer: `readResponse` skips interim responses).
    static func readContinue(_ client: TestClient, sourceLocation: SourceLocation = #_sourceLocation) throws {
        while TestUpstream.find(Array("\r\n\r\n".utf8), in: client.buffer) == nil { try client.fill() }
        let text = String(decoding: client.buffer, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 100 Continue\r\n\r\n"), "\(text)", sourceLocation: sourceLocation)
    }

    /// Pipelined on one connection, with an upstream path prefix: absolute-form (with port,
    /// upper-case scheme and host, path-less with a query, https), origin-form with a Host
    /// carrying OWS, asterisk-form, a Connection option naming Host (spared) and another field,
    /// and a chunked body. Each request's Host and X-Forwarded-Host are its own: nothing of an
    /// absolute-form request leaks into the origin-form request after it, or back.
    @Test func pipelinedTargetFormsEachGetTheirOwnForwardingFields() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echo), upstreamPath: "/api/")
        defer { proxy.stop() }
        let client = try proxy.client()
        let batch = [
            "GET http://b.example:8080/v2?x=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n",
            "GET /v3 HTTP/1.1\r\nHost:   c.example  \r\nX-B: 2\r\n\r\n",
            "POST HTTP://D.Example?q=1 HTTP/1.1\r\nhost: ignored\r\nContent-Length: 3\r\n\r\nabc",
            "OPTIONS * HTTP/1.1\r\nHost: e\r\n\r\n",
            "GET /v4 HTTP/1.1\r\nConnection: HOST, x-drop\r\nX-Drop: 1\r\nHost: f.example:81\r\nX-Keep: k\r\n\r\n",
            "GET https://g.example/ HTTP/1.1\r\nX-First: 1\r\nHost: g.example\r\nX-Last: 2\r\n\r\n",
            "PUT /chunk HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n2\r\n12\r\n0\r\n\r\n",
            "GET /v5 HTTP/1.1\r\nHost: i\r\n\r\n",
        ].joined()
        try client.send(batch)
        let bodies = try (0..<8).map { _ in try client.readResponse().bodyText }
        #expect(bodies == [
            "/api/v2?x=1|", "/api/v3|", "/api/?q=1|abc", "*|", "/api/v4|", "/api/|", "/api/chunk|xyz12", "/api/v5|",
        ])
        let heads = proxy.upstream.requests.map(\.head)
        try #require(heads.count == 8)
        let f = Self.forwarded
        #expect(heads[0] == "GET /api/v2?x=1 HTTP/1.1\r\nX-A: 1\r\n\(f)Host: b.example:8080\r\nX-Forwarded-Host: b.example:8080")
        #expect(heads[1] == "GET /api/v3 HTTP/1.1\r\nHost:   c.example  \r\nX-B: 2\r\n\(f)X-Forwarded-Host: c.example")
        #expect(heads[2] == "POST /api/?q=1 HTTP/1.1\r\n\(f)Host: D.Example\r\nX-Forwarded-Host: D.Example\r\nContent-Length: 3")
        #expect(heads[3] == "OPTIONS * HTTP/1.1\r\nHost: e\r\n\(f)X-Forwarded-Host: e")
        #expect(heads[4] == "GET /api/v4 HTTP/1.1\r\nHost: f.example:81\r\nX-Keep: k\r\n\(f)X-Forwarded-Host: f.example:81")
        #expect(heads[5] == "GET /api/ HTTP/1.1\r\nX-First: 1\r\nX-Last: 2\r\n\(f)Host: g.example\r\nX-Forwarded-Host: g.example")
        #expect(heads[6] == "PUT /api/chunk HTTP/1.1\r\nHost: h\r\n\(f)X-Forwarded-Host: h\r\nTransfer-Encoding: chunked")
        #expect(heads[7] == "GET /api/v5 HTTP/1.1\r\nHost: i\r\n\(f)X-Forwarded-Host: i")
        #expect(proxy.upstream.connectionCount == 1)
    }

    /// Expect: 100-continue with an absolute-form target and a chunked body, then origin-form
    /// with Content-Length and Expect, then HTTP/1.0 keep-alive without Host, on one connection.
    @Test func expectationsAndBodiesAcrossTargetFormsOnOneConnection() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echo))
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("PUT http://up.example/e1 HTTP/1.1\r\nHost: other\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nX-Z: z\r\n\r\n")
        try Self.readContinue(client)
        try client.send("4\r\nbody\r\n0\r\n\r\n")
        #expect(try client.readResponse().bodyText == "/e1|body")
        try client.send("PUT /e2 HTTP/1.1\r\nExpect: 100-continue\r\nHost: origin.example\r\nContent-Length: 2\r\n\r\n")
        try Self.readContinue(client)
        try client.send("hi")
        #expect(try client.readResponse().bodyText == "/e2|hi")
        try client.send("PUT /e3 HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n!")
        let old = try client.readResponse()
        #expect(old.bodyText == "/e3|!")
        let heads = proxy.upstream.requests.map(\.head)
        try #require(heads.count == 3)
        let f = Self.forwarded
        #expect(heads[0] == "PUT /e1 HTTP/1.1\r\nX-Z: z\r\n\(f)Host: up.example\r\nX-Forwarded-Host: up.example\r\nTransfer-Encoding: chunked")
        #expect(heads[1] == "PUT /e2 HTTP/1.1\r\nHost: origin.example\r\n\(f)X-Forwarded-Host: origin.example\r\nContent-Length: 2")
        #expect(heads[2] == "PUT /e3 HTTP/1.1\r\n\(f)Host: 127.0.0.1:\(proxy.upstream.port)\r\nContent-Length: 1")
    }

    static let guardedYAML = "idempotency: { scope: { header: \"\" } }\n"

    /// Guarded requests copy their head into the guarded exchange before they are forwarded
    /// (and the exchange object is reused by the next guarded request on the connection). The
    /// heads arrive one byte per read; the first has an absolute-form target, Expect and a
    /// chunked body (forwarded with Content-Length, as buffered). A replay of it is not
    /// forwarded again, and the next guarded request's head is its own.
    @Test func guardedHeadsTrickledInAreForwardedExactly() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echo), upstreamPath: "/base", yaml: Self.guardedYAML)
        defer { proxy.stop() }
        let client = try proxy.client()
        let first = "\r\nPOST http://pay.example:9443/v1/charges?c=1 HTTP/1.1\r\nHost: wrong.example\r\nIdempotency-Key: \"k-trickle-1\"\r\n"
            + "Expect: 100-continue\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Tail: t\r\n\r\n"
        try Self.trickle(client, first, size: 1)
        try Self.readContinue(client)
        try Self.trickle(client, "5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n", size: 2)
        let r1 = try client.readResponse(requestMethod: "POST")
        #expect(r1.status == 201 && r1.bodyText == "/base/v1/charges?c=1|{\"a\":1}")

        let second = "PATCH /v1/charges/7 HTTP/1.1\r\nIdempotency-Key: k-trickle-2\r\nHost:\tbilling.example \r\nContent-Length: 4\r\n\r\nnull"
        try Self.trickle(client, second, size: 3)
        let r2 = try client.readResponse(requestMethod: "PATCH")
        #expect(r2.status == 201 && r2.bodyText == "/base/v1/charges/7|null")

        // The first again, in origin-form this time (same fingerprint: the target the
        // upstream receives is what counts) and with Content-Length: a replay.
        try client.send("POST /v1/charges?c=1 HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \"k-trickle-1\"\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
        let r3 = try client.readResponse(requestMethod: "POST")
        #expect(r3.value("idempotent-replayed") == "true", "\(r3.head)")
        #expect(r3.bodyText == r1.bodyText)

        // HTTP/1.0 keep-alive, guarded, no Host.
        try client.send("POST /v1/old HTTP/1.0\r\nConnection: keep-alive\r\nIdempotency-Key: k-trickle-3\r\nContent-Length: 2\r\n\r\n{}")
        let r4 = try client.readResponse(requestMethod: "POST")
        #expect(r4.status == 201 && r4.bodyText == "/base/v1/old|{}")

        let heads = proxy.upstream.requests.map(\.head)
        try #require(heads.count == 3)
        let f = Self.forwarded
        #expect(heads[0] == "POST /base/v1/charges?c=1 HTTP/1.1\r\nIdempotency-Key: \"k-trickle-1\"\r\nContent-Type: application/json\r\nX-Tail: t\r\n"
            + "\(f)Host: pay.example:9443\r\nX-Forwarded-Host: pay.example:9443\r\nContent-Length: 7")
        #expect(heads[1] == "PATCH /base/v1/charges/7 HTTP/1.1\r\nIdempotency-Key: k-trickle-2\r\nHost:\tbilling.example \r\n\(f)X-Forwarded-Host: billing.example\r\nContent-Length: 4")
        #expect(heads[2] == "POST /base/v1/old HTTP/1.1\r\nIdempotency-Key: k-trickle-3\r\n\(f)Host: 127.0.0.1:\(proxy.upstream.port)\r\nContent-Length: 2")
        #expect(proxy.upstream.requests.map(\.body) == [Array("{\"a\":1}".utf8), Array("null".utf8), Array("{}".utf8)])
    }

    /// A guarded request pipelined behind an unguarded absolute-form one and in front of an
    /// unguarded origin-form one: the guarded head is parsed, copied and forwarded while the
    /// connection's own head is parsed for other requests around it.
    @Test func guardedBetweenUnguardedPipelined() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echo), yaml: Self.guardedYAML)
        defer { proxy.stop() }
        let client = try proxy.client()
        var batch = ""
        for i in 0..<6 {
            batch += "GET http://u\(i).example/g\(i) HTTP/1.1\r\nHost: h\r\n\r\n"
            batch += "POST http://p\(i).example/p\(i) HTTP/1.1\r\nHost: h\r\nIdempotency-Key: pk-\(i)\r\nContent-Length: 1\r\n\r\n\(i)"
            batch += "POST /q\(i) HTTP/1.1\r\nHost: q\(i).example\r\nIdempotency-Key: qk-\(i)\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n"
            batch += "GET /o\(i) HTTP/1.1\r\nHost: o\(i).example\r\n\r\n"
        }
        try client.send(batch)
        for i in 0..<6 {
            #expect(try client.readResponse().bodyText == "/g\(i)|")
            #expect(try client.readResponse(requestMethod: "POST").bodyText == "/p\(i)|\(i)")
            #expect(try client.readResponse(requestMethod: "POST").bodyText == "/q\(i)|")
            #expect(try client.readResponse().bodyText == "/o\(i)|")
        }
        let heads = proxy.upstream.requests.map(\.head)
        try #require(heads.count == 24)
        let f = Self.forwarded
        for i in 0..<6 {
            #expect(heads[4 * i] == "GET /g\(i) HTTP/1.1\r\n\(f)Host: u\(i).example\r\nX-Forwarded-Host: u\(i).example")
            #expect(heads[4 * i + 1] == "POST /p\(i) HTTP/1.1\r\nIdempotency-Key: pk-\(i)\r\n\(f)Host: p\(i).example\r\nX-Forwarded-Host: p\(i).example\r\nContent-Length: 1")
            #expect(heads[4 * i + 2] == "POST /q\(i) HTTP/1.1\r\nHost: q\(i).example\r\nIdempotency-Key: qk-\(i)\r\n\(f)X-Forwarded-Host: q\(i).example")
            #expect(heads[4 * i + 3] == "GET /o\(i) HTTP/1.1\r\nHost: o\(i).example\r\n\(f)X-Forwarded-Host: o\(i).example")
        }
    }

    /// The same kind of batch trickled in 5-byte pieces: heads end and begin inside reads, a
    /// guarded head waits in the connection's pending bytes while the one before it is with the
    /// upstream. A Connection option naming the key is ignored for it (the key is protected),
    /// not for the field beside it; a head over 16 KiB replaces the guarded exchange's buffer,
    /// and the next guarded head on the connection is still copied whole.
    @Test func trickledPipelineWithGuardedAndLargeHeads() throws {
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: Self.echo), upstreamPath: "/p",
            yaml: Self.guardedYAML + "limits: { max_header_bytes: 64KiB }\n")
        defer { proxy.stop() }
        let client = try proxy.client()
        let big = String(repeating: "B", count: 20_000)
        let batch = [
            "POST http://one.example/a HTTP/1.1\r\nHost: x\r\nConnection: Idempotency-Key, x-secret\r\nX-Secret: s\r\nIdempotency-Key: t-1\r\nContent-Length: 1\r\n\r\n1",
            "GET /b HTTP/1.1\r\nHost: two.example\r\n\r\n",
            "POST /c HTTP/1.1\r\nHost: three.example\r\nX-Big: \(big)\r\nIdempotency-Key: t-2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n22\r\n0\r\n\r\n",
            "PATCH http://four.example:1/d?e HTTP/1.1\r\nIdempotency-Key: t-3\r\nHost: four.example:1\r\nContent-Length: 3\r\n\r\n333",
            "POST /a HTTP/1.1\r\nHost: five.example\r\nIdempotency-Key: t-1\r\nContent-Length: 1\r\n\r\n1",
        ].joined()
        try Self.trickle(client, batch, size: 5)
        let r = try ["POST", "GET", "POST", "PATCH", "POST"].map { try client.readResponse(requestMethod: $0) }
        #expect(r.map(\.bodyText) == ["/p/a|1", "/p/b|", "/p/c|22", "/p/d?e|333", "/p/a|1"])
        #expect(r[4].value("idempotent-replayed") == "true")
        let heads = proxy.upstream.requests.map(\.head)
        try #require(heads.count == 4)
        let f = Self.forwarded
        #expect(heads[0] == "POST /p/a HTTP/1.1\r\nIdempotency-Key: t-1\r\n\(f)Host: one.example\r\nX-Forwarded-Host: one.example\r\nContent-Length: 1")
        #expect(heads[1] == "GET /p/b HTTP/1.1\r\nHost: two.example\r\n\(f)X-Forwarded-Host: two.example")
        #expect(heads[2] == "POST /p/c HTTP/1.1\r\nHost: three.example\r\nX-Big: \(big)\r\nIdempotency-Key: t-2\r\n\(f)X-Forwarded-Host: three.example\r\nContent-Length: 2")
        #expect(heads[3] == "PATCH /p/d?e HTTP/1.1\r\nIdempotency-Key: t-3\r\n\(f)Host: four.example:1\r\nX-Forwarded-Host: four.example:1\r\nContent-Length: 3")
    }

    /// Under `concurrent: wait` a waiter that takes the key over after the owner's 503
    /// (released) forwards its own buffered head: its absolute-form authority, its fields.
    @Test func aWaiterThatTakesOverForwardsItsOwnHead() throws {
        let upstream = TestUpstream { request in
            request.values("x-who").first == "owner"
                ? .delayed(seconds: 0.4, status: 503, body: Array("busy".utf8))
                : .respond(status: 201, headers: [], body: Array("done".utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "idempotency: { scope: { header: \"\" }, concurrent: wait, wait_timeout: 10s }\n")
        defer { proxy.stop() }
        let owner = try proxy.client()
        try owner.send("POST /w HTTP/1.1\r\nHost: owner.example\r\nX-Who: owner\r\nIdempotency-Key: wk\r\nContent-Length: 2\r\n\r\n{}")
        #expect(eventually { upstream.requests.count == 1 })
        let waiter = try proxy.client()
        try waiter.send("POST http://waiter.example:8000/w HTTP/1.1\r\nHost: h\r\nX-Who: waiter\r\nIdempotency-Key: wk\r\nContent-Length: 2\r\n\r\n{}"
            + "GET /after HTTP/1.1\r\nHost: after.example\r\n\r\n")
        #expect(try owner.readResponse(requestMethod: "POST").status == 503)
        let taken = try waiter.readResponse(requestMethod: "POST")
        #expect(taken.status == 201 && taken.bodyText == "done")
        #expect(try waiter.readResponse().status == 201)
        let heads = upstream.requests.map(\.head)
        try #require(heads.count == 3)
        let f = Self.forwarded
        #expect(heads[1] == "POST /w HTTP/1.1\r\nX-Who: waiter\r\nIdempotency-Key: wk\r\n\(f)Host: waiter.example:8000\r\nX-Forwarded-Host: waiter.example:8000\r\nContent-Length: 2")
        #expect(heads[2] == "GET /after HTTP/1.1\r\nHost: after.example\r\n\(f)X-Forwarded-Host: after.example")
    }

    /// The fingerprint the proxy computes from the head it copied (fields read in place, several
    /// lines of one field joined, obs-text bytes as received) equals SHA-256 of the documented
    /// framing built here by hand, read back through `/records`.
    @Test func theStoredFingerprintIsTheDocumentedFraming() throws {
        let yaml = "idempotency: { scope: { header: \"\" }, fingerprint: { headers: [X-Tenant, Content-Type, X-Absent, x-empty] } }\n"
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: Self.echo), yaml: yaml)
        defer { proxy.stop() }
        let body = Array(String(repeating: "b", count: 150).utf8)
        let head = Array("POST http://fp.example/v1/f?z=%41 HTTP/1.1\r\nHost: fp.example\r\nx-tenant: t1\r\nContent-Type: text/plain\r\nX-Empty:\r\nIdempotency-Key: fp-1\r\nX-TENANT:  t2 \r\nX-Tenant: caf".utf8)
            + [0xE9, 0xFF] + Array("\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        let client = try proxy.client()
        try client.send(head)
        #expect(try client.readResponse(requestMethod: "POST").status == 201)
        let report = try proxy.admin("/records?key=fp-1")
        #expect(report.status == 200, "\(report.bodyText)")

        var stream: [UInt8] = []
        func field(_ bytes: [UInt8]) {
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { stream.append(contentsOf: $0) }
            stream.append(contentsOf: bytes)
        }
        field(Array("idemproxy/fingerprint/v1".utf8))
        field(Array("POST".utf8))
        field(Array("/v1/f?z=%41".utf8))
        withUnsafeBytes(of: UInt64(4).bigEndian) { stream.append(contentsOf: $0) }
        field(Array("x-tenant".utf8)); stream.append(1); field(Array("t1, t2, caf".utf8) + [0xE9, 0xFF])
        field(Array("content-type".utf8)); stream.append(1); field(Array("text/plain".utf8))
        field(Array("x-absent".utf8)); stream.append(0)
        field(Array("x-empty".utf8)); stream.append(1); field([])
        stream.append(UInt8(ascii: "R"))
        field(body)
        let expected = SHA256Hasher.hex(SHA256Hasher.hash(stream))
        #expect(report.bodyText.contains("\"fingerprint\":\"\(expected)\""), "\(report.bodyText) expected \(expected)")
    }
}
