import Foundation
import Testing
import TestSupport

/// Bodies that are not buffered flow with back-pressure: the proxy's memory stays bounded
/// whatever the size. The proxy runs in this test process, so the process RSS is measured
/// before and after; the test's own client and origin use fixed-size buffers.
@Suite(.serialized) struct StreamingTests {
    static let size = 256 * 1024 * 1024

    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
        }
        return 0
    }

    @Test func largeDownloadStreamsWithBoundedMemory() throws {
        let proxy = try ProxyHarness(upstream: TestUpstream { _ in .download(total: Self.size) })
        defer { proxy.stop() }
        let before = Self.residentBytes()
        let client = try proxy.client(timeoutSeconds: 60)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        var received = 0
        let response = try client.readResponse(discardBody: true, bodyCount: &received)
        let growth = Self.residentBytes() - before
        #expect(response.status == 200)
        #expect(received == Self.size)
        #expect(growth < 64 * 1024 * 1024, "RSS grew by \(growth / 1_048_576) MiB")
    }

    @Test func largeUploadStreamsWithBoundedMemory() throws {
        let upstream = TestUpstream(recordBodies: false) { request in
            .respond(status: 200, headers: [], body: Array(String(request.bodyCount).utf8))
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let before = Self.residentBytes()
        let client = try proxy.client(timeoutSeconds: 60)
        try client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: \(Self.size)\r\n\r\n")
        let block = [UInt8](repeating: 0x62, count: 1024 * 1024)
        for _ in 0..<(Self.size / block.count) { try client.send(block) }
        let response = try client.readResponse()
        let growth = Self.residentBytes() - before
        #expect(response.status == 200)
        #expect(response.bodyText == String(Self.size))
        #expect(growth < 64 * 1024 * 1024, "RSS grew by \(growth / 1_048_576) MiB")
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
