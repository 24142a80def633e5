import Foundation
import Testing
import TestSupport

/// Bodies that are not buffered flow with back-pressure: the proxy's memory stays bounded
/// whatever the size. The bound is checked on the real binary in its own process, whose
/// resident memory no other test running in parallel can add to.
@Suite(.serialized) struct StreamingTests {
    static let size = 256 * 1024 * 1024

    /// The proxy in its own process in front of `upstream`, answering already (its baseline
    /// memory is taken after a first request).
    static func proxyProcess(_ upstream: TestUpstream) throws -> ProxyProcess {
        try #require(FileManager.default.isExecutableFile(atPath: ProxyProcess.binary), "build the idemproxy executable first (swift build)")
        let proxy = try ProxyProcess(inFrontOf: upstream)
        try #require(proxy.waitUntilServing(path: "/ready"), "the proxy did not start")
        return proxy
    }

    @Test func largeDownloadStreamsWithBoundedMemory() throws {
        let upstream = TestUpstream { request in
            request.target == "/ready" ? .respond(status: 200, headers: [], body: []) : .download(total: Self.size)
        }
        defer { upstream.stop() }
        let proxy = try Self.proxyProcess(upstream)
        defer { proxy.stop() }
        let before = proxy.residentKiB
        let client = try TestClient(port: proxy.port, timeoutSeconds: 60)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        var received = 0
        let response = try client.readResponse(discardBody: true, bodyCount: &received)
        let growth = proxy.residentKiB - before
        #expect(response.status == 200)
        #expect(received == Self.size)
        #expect(growth < 64 * 1024, "the proxy's RSS grew by \(growth / 1024) MiB")
    }

    @Test func largeUploadStreamsWithBoundedMemory() throws {
        let upstream = TestUpstream(recordBodies: false) { request in
            .respond(status: 200, headers: [], body: Array(String(request.bodyCount).utf8))
        }
        defer { upstream.stop() }
        let proxy = try Self.proxyProcess(upstream)
        defer { proxy.stop() }
        let before = proxy.residentKiB
        let client = try TestClient(port: proxy.port, timeoutSeconds: 60)
        try client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: \(Self.size)\r\n\r\n")
        let block = [UInt8](repeating: 0x62, count: 1024 * 1024)
        for _ in 0..<(Self.size / block.count) { try client.send(block) }
        let response = try client.readResponse()
        let growth = proxy.residentKiB - before
        #expect(response.status == 200)
        #expect(response.bodyText == String(Self.size))
        #expect(growth < 64 * 1024, "the proxy's RSS grew by \(growth / 1024) MiB")
    }

    /// The upstream reads nothing for a while, so back-pressure holds the end of the body in
    /// the proxy; once the upstream drains, the request must still complete.
    @Test func bodyHeldBackByBackPressureStillCompletes() throws {
        let upstream = TestUpstream(recordBodies: false) { request in
            .respond(status: 200, headers: [], body: Array(String(request.bodyCount).utf8))
        }
        upstream.bodyReadDelay = 0.5
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let size = 16 * 1024 * 1024
        for framing in ["Content-Length: \(size)", "Transfer-Encoding: chunked"] {
            let client = try proxy.client(timeoutSeconds: 20)
            try client.send("POST /slow HTTP/1.1\r\nHost: a\r\n\(framing)\r\n\r\n")
            let block = [UInt8](repeating: 0x63, count: 1024 * 1024)
            let chunked = framing.hasPrefix("Transfer")
            for _ in 0..<(size / block.count) {
                if chunked { try client.send(Array("100000\r\n".utf8)) }
                try client.send(block)
                if chunked { try client.send(Array("\r\n".utf8)) }
            }
            if chunked { try client.send(Array("0\r\n\r\n".utf8)) }
            let response = try client.readResponse()
            #expect(response.status == 200, "\(framing)")
            #expect(response.bodyText == String(size), "\(framing)")
        }
    }
}
