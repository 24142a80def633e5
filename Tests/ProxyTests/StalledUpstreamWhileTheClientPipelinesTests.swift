import Foundation
import Glibc
import Testing
import TestSupport

/// response_timeout measures the upstream alone. A client that sends the next, pipelined
/// request a byte at a time while the upstream is silent makes the proxy read and flush (with
/// nothing queued for the upstream) on every byte; that must not count as the upstream's
/// activity, or a silent upstream is never cut.
@Suite(.serialized) struct StalledUpstreamWhileTheClientPipelinesTests {
    /// An upstream that reads the request head, optionally sends a head and half the body,
    /// then stays silent for 8 s.
    static func silentUpstream(afterHalfABody: Bool) -> TestUpstream {
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            guard TestUpstream.readHead(fd) else { return }
            if afterHalfABody { _ = TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello".utf8)) }
            usleep(8_000_000)
        }
        return upstream
    }

    struct Outcome {
        /// Milliseconds after the stall began, nil if not within 5 s.
        var closedAfter: Int?
        var firstBytesAfter: Int?
        var received: String
    }

    /// `GET /a`, then (if `trickle`) `GET /b` pipelined one byte every 300 ms, while the
    /// upstream is silent; `response_timeout: 1s`.
    static func run(afterHalfABody: Bool, trickle: Bool) throws -> Outcome {
        let proxy = try ProxyHarness(upstream: silentUpstream(afterHalfABody: afterHalfABody), upstreamYAML: ["response_timeout: 1s"])
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 10)
        try client.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        if afterHalfABody {
            while TestUpstream.find(Array("hello".utf8), in: client.buffer) == nil { guard try client.fill() else { break } }
        }
        let start = TestUpstream.nowMillis()
        var outcome = Outcome(closedAfter: nil, firstBytesAfter: nil, received: "")
        var received = client.buffer
        let next = Array("GET /b HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        var sent = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        defer { outcome.received = String(decoding: received, as: UTF8.self) }
        while TestUpstream.nowMillis() - start < 5_000 {
            if trickle && sent < next.count {
                _ = TestUpstream.sendAll(client.fd, [next[sent]])
                sent += 1
            }
            var descriptor = pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 300) > 0 else { continue }
            let count = read(client.fd, &chunk, chunk.count)
            if count <= 0 {
                outcome.closedAfter = TestUpstream.nowMillis() - start
                outcome.received = String(decoding: received, as: UTF8.self)
                return outcome
            }
            if outcome.firstBytesAfter == nil && !afterHalfABody { outcome.firstBytesAfter = TestUpstream.nowMillis() - start }
            received += chunk[0..<count]
        }
        outcome.received = String(decoding: received, as: UTF8.self)
        return outcome
    }

    /// The control: with the client quiet, the stalled body is cut after about 1 s.
    @Test func aStalledBodyIsCut() throws {
        let outcome = try Self.run(afterHalfABody: true, trickle: false)
        #expect(outcome.closedAfter.map { $0 < 2_500 } == true, "closed after \(String(describing: outcome.closedAfter)) ms")
    }

    @Test func aStalledBodyIsCutWhileTheClientPipelinesSlowly() throws {
        let outcome = try Self.run(afterHalfABody: true, trickle: true)
        #expect(outcome.closedAfter.map { $0 < 2_500 } == true, "closed after \(String(describing: outcome.closedAfter)) ms; got \(outcome.received.debugDescription)")
    }

    @Test func aSilentUpstreamIsAnswered504WhileTheClientPipelinesSlowly() throws {
        let outcome = try Self.run(afterHalfABody: false, trickle: true)
        #expect(outcome.received.hasPrefix("HTTP/1.1 504"), "got \(outcome.received.debugDescription)")
        #expect(outcome.firstBytesAfter.map { $0 < 2_500 } == true, "the 504 came after \(String(describing: outcome.firstBytesAfter)) ms")
    }
}
