import Foundation
import Testing
import TestSupport

/// Every SPEC §5 malformation is answered by the proxy with its status and never reaches the
/// upstream: the recording origin must not even see a connection.
@Suite(.serialized) struct RejectionTests {
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let bytes: String
        let status: Int
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "CL.TE: both Content-Length and Transfer-Encoding (RFC 9112 §6.1)", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", status: 400),
        Case(name: "TE.CL order", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", status: 400),
        Case(name: "Transfer-Encoding xchunked", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", status: 400),
        Case(name: "chunked not final (RFC 9112 §6.3)", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", status: 400),
        Case(name: "Transfer-Encoding twice", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "differing Content-Length", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 31\r\n\r\n", status: 400),
        Case(name: "Content-Length with sign", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", status: 400),
        Case(name: "Content-Length in hex", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", status: 400),
        Case(name: "Content-Length list", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd", status: 400),
        Case(name: "Content-Length empty", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", status: 400),
        Case(name: "Content-Length overflow", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000000\r\n\r\n", status: 400),
        Case(name: "whitespace before colon (RFC 9112 §5.1)", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", status: 400),
        Case(name: "obs-fold (RFC 9112 §5.2)", bytes: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", status: 400),
        Case(name: "bare CR (RFC 9112 §2.2)", bytes: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n", status: 400),
        Case(name: "bare LF line end (RFC 9112 §2.2)", bytes: "GET / HTTP/1.1\nHost: a\n\n", status: 400),
        Case(name: "NUL in value (RFC 9110 §5.5)", bytes: "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\u{0}b\r\n\r\n", status: 400),
        Case(name: "control byte in name", bytes: "GET / HTTP/1.1\r\nHost: a\r\nX\u{1}A: 1\r\n\r\n", status: 400),
        Case(name: "invalid token in field name", bytes: "GET / HTTP/1.1\r\nHost: a\r\nFo@: x\r\n\r\n", status: 400),
        Case(name: "invalid token in method", bytes: "G=\":<>(e),[T];?\" /get HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "missing Host on HTTP/1.1 (RFC 9112 §3.2)", bytes: "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", status: 400),
        Case(name: "duplicate Host", bytes: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
        Case(name: "malformed chunk size", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1these-bytes\r\n", status: 400),
        Case(name: "chunk size overflow", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF0\r\n", status: 400),
        Case(name: "request line with two spaces", bytes: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "unknown HTTP version", bytes: "GET / HTTP/1.32\r\nHost: a\r\n\r\n", status: 400),
        Case(name: "HTTP/1.0 with Transfer-Encoding (RFC 9112 §6.1)", bytes: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "header block too large", bytes: "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n", status: 431),
        Case(name: "too many header lines", bytes: "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<120).map { "X-\($0): v\r\n" }.joined() + "\r\n", status: 431),
        Case(name: "request target too long", bytes: "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n", status: 414),
    ]

    @Test(arguments: cases)
    func malformedRequestIsRejectedAndNeverForwarded(_ testCase: Case) throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send(Array(testCase.bytes.utf8))
        let response = try client.readResponse()
        #expect(response.status == testCase.status, "\(testCase.name)")
        if testCase.status == 400 || testCase.status == 431 || testCase.status == 414 {
            #expect(response.value("connection")?.lowercased() == "close")
        }
        // Chunk-level errors are found after the head was forwarded; everything else must not
        // even open an upstream connection.
        if !testCase.name.contains("chunk") {
            #expect(proxy.upstream.connectionCount == 0, "\(testCase.name) reached the upstream")
        }
        #expect(proxy.upstream.requests.isEmpty, "\(testCase.name) was forwarded whole")
    }

    @Test func smuggledSecondRequestNeverReachesTheUpstream() throws {
        // If the proxy honoured Content-Length here, "GET /smuggled" would become a second request.
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let client = try proxy.client()
        try client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().status == 400)
        #expect(client.isClosedByPeer())
        #expect(!proxy.upstream.rawText.contains("smuggled"))
    }
}
