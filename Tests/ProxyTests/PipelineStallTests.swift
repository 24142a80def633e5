import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// A client that sends a whole upload and half-closes at once, to an upstream that reads it
/// slowly: body bytes wait in the proxy for the upstream (back-pressure) when the client's EOF
/// is read. The body is not cut: what was held back is still forwarded, and the request is
/// answered.
@Suite(.serialized) struct BackPressureHalfCloseTests {
    final class Notes: @unchecked Sendable {
        let lines = Mutex<[String]>([])
        func add(_ line: String) { lines.withLock { $0.append(line) } }
    }

    /// An upstream that reads 4 KiB every 2 ms and, after each read, sends a `102 Processing`
    /// or, with `streamAnswer`, one byte of a chunked answer begun at once; each read or
    /// response byte makes the proxy look at its client again while bytes are held back.
    static func slowReader(streamAnswer: Bool, notes: Notes) -> TestUpstream {
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            var buffer: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                var headEnd = TestUpstream.find([13, 10, 13, 10], in: buffer)
                while headEnd == nil {
                    let n = read(fd, &chunk, chunk.count)
                    if n <= 0 { return }
                    buffer += chunk[0..<n]
                    headEnd = TestUpstream.find([13, 10, 13, 10], in: buffer)
                }
                let isGet = buffer.starts(with: Array("GET".utf8))
                buffer.removeFirst(headEnd! + 4)
                if isGet {
                    guard TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext".utf8)) else { return }
                    continue
                }
                if streamAnswer {
                    guard TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)) else { return }
                }
                let terminator = Array("\r\n0\r\n\r\n".utf8)
                var total = buffer.count
                var tail = Array(buffer.suffix(terminator.count))
                while tail != terminator {
                    usleep(2_000)
                    let n = read(fd, &chunk, chunk.count)
                    if n <= 0 {
                        notes.add("the proxy closed after \(total) body bytes")
                        return
                    }
                    total += n
                    tail = Array((tail + chunk[0..<n]).suffix(terminator.count))
                    let interim = streamAnswer ? Array("1\r\n.\r\n".utf8) : Array("HTTP/1.1 102 Processing\r\n\r\n".utf8)
                    guard TestUpstream.sendAll(fd, interim) else { return }
                }
                buffer = []
                let body = Array("got \(total)".utf8)
                let answer = streamAnswer
                    ? Array(String(body.count, radix: 16).utf8) + [13, 10] + body + Array("\r\n0\r\n\r\n".utf8)
                    : Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
                guard TestUpstream.sendAll(fd, answer) else { return }
            }
        }
        return upstream
    }

    @Test(arguments: [false, true])
    func aWholeUploadHeldBackForASlowUpstreamIsNotCutByTheEOF(streamAnswer: Bool) throws {
        let notes = Notes()
        let proxy = try ProxyHarness(upstream: Self.slowReader(streamAnswer: streamAnswer, notes: notes))
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 15)
        var request = Array("PUT /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        let piece = Array("400\r\n".utf8) + [UInt8](repeating: 0x61, count: 1024) + [13, 10]
        for _ in 0..<(8 * 1024) { request += piece }
        request += Array("0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        let sent = Atomic<Int>(0)
        let fd = client.fd
        let bytes = request
        let sender = Thread {
            if TestUpstream.sendAll(fd, bytes) { sent.store(bytes.count, ordering: .releasing) }
            shutdown(fd, Int32(SHUT_WR))
        }
        sender.start()
        do {
            let put = try client.readResponse()
            #expect(put.status == 200)
            // Sent once the upstream saw the body's last chunk.
            #expect(put.bodyText.contains("got "), "\(put.bodyText.suffix(30))")
            if streamAnswer {
                // Answered before its body was complete: the connection closes after it.
                #expect(put.value("connection") == "close")
            } else {
                #expect(try client.readResponse().bodyText == "next")
            }
        } catch {
            Issue.record("the whole PUT was not answered: \(error); the upstream: \(notes.lines.withLock { $0 })")
        }
        #expect(sent.load(ordering: .acquiring) == bytes.count)
    }
}

extension BackPressureHalfCloseTests {
    /// A whole body, a pipelined GET and half a head arrive with the EOF while the body waits
    /// for an upstream that starts reading late: both requests are answered in order, then the
    /// connection closes.
    @Test func aHeldBackBodyThenAPipelinedRequestThenTheEOF() throws {
        let upstream = TestUpstream { request in .respond(status: 200, headers: [], body: Array("\(request.method) \(request.bodyCount)".utf8)) }
        upstream.bodyReadDelay = 0.5
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 5)
        let body = [UInt8](repeating: 0x41, count: 3 << 20)
        let bytes = Array("PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
            + Array("GET /next HTTP/1.1\r\nHost: a\r\n\r\nGET /half HTTP/1.1\r\nHo".utf8)
        let fd = client.fd
        let sender = Thread {
            _ = TestUpstream.sendAll(fd, bytes)
            shutdown(fd, Int32(SHUT_WR))
        }
        sender.start()
        #expect(try client.readResponse().bodyText == "PUT \(body.count)")
        #expect(try client.readResponse().bodyText == "GET 0")
        #expect(client.isClosedByPeer())
    }
}

/// A request answered at once inside the processing of a read (its upstream write failed as
/// it was made) must not strand the requests pipelined behind it.
@Suite(.serialized) struct PipelinedAfterSynchronousFailureTests {
    @Test(arguments: [false, true])
    func theRequestAfterOneWhoseReusedConnectionFailedOnWriteIsAnswered(halfClose: Bool) throws {
        // Each answer is followed by a reset: the connection goes back to the pool looking
        // healthy, and the next request written into it fails at once.
        let upstream = TestUpstream { request in
            .sequence([Array("HTTP/1.1 200 OK\r\nContent-Length: \(request.target.utf8.count)\r\n\r\n\(request.target)".utf8)], gapSeconds: 0, ending: .reset)
        }
        let proxy = try ProxyHarness(upstream: upstream)
        defer { proxy.stop() }
        let client = try proxy.client(timeoutSeconds: 3)
        try client.send(
            "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
                + "POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
                + "GET /third HTTP/1.1\r\nHost: a\r\n\r\n")
        if halfClose { shutdown(client.fd, Int32(SHUT_WR)) }
        #expect(try client.readResponse().bodyText == "/first")
        // Not retried: a POST is not idempotent (RFC 9110 §9.2.2).
        #expect(try client.readResponse(requestMethod: "POST").status == 502)
        #expect(try client.readResponse().bodyText == "/third")
        if halfClose { #expect(client.isClosedByPeer()) }
    }
}
