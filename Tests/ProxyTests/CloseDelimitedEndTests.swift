import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// How a close-delimited body (an HTTP/1.0 client's) ends on every path: an orderly EOF only
/// once all of it is written, a reset whenever it is cut short (send_timeout, a forced close,
/// a guarded exchange whose client is detached).
@Suite(.serialized) struct CloseDelimitedEndTests {

    static func guardedPost10(_ target: String, key: String) -> String {
        "POST \(target) HTTP/1.0\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: 2\r\n\r\n{}"
    }

    // MARK: a response complete upstream but not yet written, cut by send_timeout

    /// What a loopback sender's kernel takes for a receiver with a 4 KiB receive buffer that
    /// does not read (the proxy's client socket holds about this much; `out` holds the rest).
    static func kernelCapacity() throws -> Int {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        listen(listener, 4)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let client = try TestClient(port: UInt16(bigEndian: address.sin_port), timeoutSeconds: 2, receiveBuffer: 4096)
        let server = accept(listener, nil, nil)
        defer { close(server) }
        _ = fcntl(server, F_SETFL, fcntl(server, F_GETFL) | O_NONBLOCK)
        let block = [UInt8](repeating: 0x41, count: 16 << 10)
        var total = 0
        for _ in 0..<3 {
            while true {
                let n = block.withUnsafeBytes { send(server, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break }
                total += n
            }
            usleep(100_000)
        }
        _ = client
        return total
    }

    /// The upstream's close-delimited answer arrives whole (the kernel takes most, the proxy's
    /// output holds the rest, below the high watermark), so the exchange finishes while part
    /// of the body is still unwritten for a reader that stalled. send_timeout then cuts it: an
    /// orderly close would make the HTTP/1.0 client take the short body for a whole one. Sizes
    /// around the measured kernel capacity; an orderly EOF after a short body fails.
    @Test func sendTimeoutAfterTheUpstreamFinishedAnUntilCloseBody() throws {
        let capacity = try Self.kernelCapacity()
        var failures: [String] = []
        var resets = 0
        for extra in [96 << 10, 160 << 10, 224 << 10] {
            let total = capacity + extra
            let upstream = TestUpstream { _ in .untilClose(status: 200, body: [UInt8](repeating: 0x64, count: total)) }
            let proxy = try ProxyHarness(upstream: upstream, yaml: "limits: { send_timeout: 1s }\n")
            defer { proxy.stop() }
            let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
            try client.send("GET /slow HTTP/1.0\r\nHost: a\r\n\r\n")
            usleep(2_500_000)
            let (bytes, error) = TestUpstream.readToEnd(client.fd)
            let got = TestUpstream.count(0x64, inBodyOf: bytes)
            if got != total && error == 0 { failures.append("\(got) of \(total) body bytes, then an orderly EOF") }
            if got != total && error != 0 { resets += 1 }
        }
        #expect(failures.isEmpty, "a close-delimited answer complete upstream but cut by send_timeout looks whole: \(failures)")
        // Not vacuous: some size was cut (by a reset) rather than taken whole by the kernel.
        #expect(resets > 0, "no size around the kernel's capacity (\(capacity) bytes) was cut")
    }

    // MARK: a guarded exchange detached by send_timeout or a forced close

    /// A guarded POST from an HTTP/1.0 client; its answer streams close-delimited. send_timeout
    /// cuts it while the exchange owns its claim, so the client is detached: its socket must
    /// still be reset.
    @Test func guardedCloseDelimitedAnswerCutBySendTimeoutIsNotWellFramed() throws {
        let total = 8 << 20
        let upstream = TestUpstream { _ in .untilClose(status: 200, body: [UInt8](repeating: 0x64, count: total)) }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "limits: { send_timeout: 1s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send(Self.guardedPost10("/pay", key: "st-\(UInt32.random(in: 0...UInt32.max))"))
        usleep(2_500_000)
        #expect(upstream.requests.count == 1)
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let got = TestUpstream.count(0x64, inBodyOf: bytes)
        #expect(got == total || error != 0,
                "guarded close-delimited answer cut by send_timeout ended in an orderly EOF after \(got) of \(total) body bytes")
    }

    /// `request`'s close-delimited answer stalls upstream after its first bytes; the shutdown's
    /// 1 s grace ends and the worker force-closes the connection: the client must see a reset.
    static func expectCutByForceClose(_ request: String, _ what: String) throws {
        let upstream = TestUpstream { _ in
            .sequence([Array("HTTP/1.1 200 OK\r\n\r\npartial-body".utf8)], gapSeconds: 0, ending: .keepOpen)
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 1s\n")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8)
        try client.send(request)
        usleep(500_000)
        proxy.server.shutdown()
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200"), "\(what): \(text.debugDescription)")
        #expect(error != 0, "\(what) cut by forceClose ended in an orderly EOF: \(text.debugDescription)")
        proxy.upstream.stop()
    }

    /// A guarded POST from an HTTP/1.0 client whose close-delimited answer stalls upstream; the
    /// shutdown's grace ends and the worker force-closes it: detached, and reset.
    @Test func guardedCloseDelimitedAnswerCutByForceCloseIsNotWellFramed() throws {
        try Self.expectCutByForceClose(Self.guardedPost10("/pay", key: "fc-\(UInt32.random(in: 0...UInt32.max))"), "guarded close-delimited answer")
    }

    /// The same unguarded (a GET).
    @Test func controlUnguardedCloseDelimitedAnswerCutByForceCloseIsReset() throws {
        try Self.expectCutByForceClose("GET /x HTTP/1.0\r\nHost: a\r\n\r\n", "unguarded close-delimited answer")
    }

    // MARK: complete close-delimited answers end with a FIN

    @Test func completeAnswersToHTTP10EndInAnOrderlyEOF() throws {
        let big = [UInt8](repeating: 0x65, count: 300 << 10)
        let upstream = TestUpstream { request in
            switch request.target {
            case "/until": return .untilClose(status: 200, body: big)
            case "/chunked": return .chunked(status: 200, pieces: [Array(big[0..<1000]), Array(big[1000...])])
            case "/nc": return .respond(status: 204, headers: [], body: [])
            default: return .respond(status: 200, headers: [], body: big)
            }
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        for (request, expected) in [
            ("GET /until HTTP/1.0\r\nHost: a\r\n\r\n", big.count),
            ("GET /chunked HTTP/1.0\r\nHost: a\r\n\r\n", big.count),
            ("GET /chunked HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", big.count),
            ("HEAD /until HTTP/1.0\r\nHost: a\r\n\r\n", 0),
            ("GET /nc HTTP/1.0\r\nHost: a\r\n\r\n", 0),
        ] {
            let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
            try client.send(request)
            usleep(300_000)
            let (bytes, error) = TestUpstream.readToEnd(client.fd)
            let got = TestUpstream.count(0x65, inBodyOf: bytes)
            #expect(got == expected && error == 0, "\(request.debugDescription): \(got) of \(expected), then \(TestUpstream.endText(error))")
        }
    }

    /// An HTTP/1.0 upload still arriving when the upstream's close-delimited answer completes:
    /// the close lingers; the answer must end in an orderly EOF (not a reset).
    @Test func completeAnswerDuringAnUploadEndsInOrderlyEOF() throws {
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            guard TestUpstream.readHead(fd) else { return }
            _ = TestUpstream.sendAll(fd, Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nearly-and-whole".utf8))
            // An orderly end of the close-delimited answer; the upload is drained meanwhile.
            shutdown(fd, Int32(SHUT_WR))
            TestUpstream.discardInput(fd, forMillis: 1_500)
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8)
        try client.send("PUT /early HTTP/1.0\r\nHost: a\r\nContent-Length: 100000\r\n\r\n0123456789")
        usleep(300_000)
        _ = TestUpstream.sendAll(client.fd, [UInt8](repeating: 0x41, count: 2000))
        usleep(300_000)
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasSuffix("early-and-whole") && error == 0, "\(text.debugDescription), then \(TestUpstream.endText(error))")
    }

    // MARK: the linger before the reset

    /// The pipeline of CloseDelimitedCutTests' second test, but the client half-closes before
    /// reading: the reset waits for the acknowledgement (clientFinished, polled), then comes
    /// promptly once the client has read; the shutdown afterwards has nothing left to wait for.
    @Test func aHalfClosedSlowReaderGetsTheWholeAnswerThenAResetPromptly() throws {
        let body = [UInt8](repeating: 0x62, count: 512 << 10)
        let upstream = TestUpstream { request in
            request.target == "/brk"
                ? .sequence([Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".utf8), Array("5\r\nwor".utf8)],
                            gapSeconds: 0.3, ending: .reset)
                : .respond(status: 200, headers: [], body: body)
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: "shutdown_grace: 20s\n")
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8, receiveBuffer: 4096)
        try client.send("GET /big HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET /brk HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        usleep(1_200_000)
        shutdown(client.fd, Int32(SHUT_WR))
        usleep(500_000)
        let started = TestUpstream.nowMillis()
        let (bytes, error) = TestUpstream.readToEnd(client.fd)
        let readMillis = TestUpstream.nowMillis() - started
        let got = TestUpstream.count(0x62, inBodyOf: bytes)
        #expect(got == body.count, "\(got) of \(body.count), then \(TestUpstream.endText(error))")
        #expect(error != 0, "the cut close-delimited answer ended in an orderly EOF")
        #expect(readMillis < 4_000, "the reset came \(readMillis) ms after the client started reading")
        let shutStart = TestUpstream.nowMillis()
        proxy.server.shutdown()
        #expect(TestUpstream.nowMillis() - shutStart < 3_000, "shutdown waited \(TestUpstream.nowMillis() - shutStart) ms")
        proxy.upstream.stop()
    }
}
