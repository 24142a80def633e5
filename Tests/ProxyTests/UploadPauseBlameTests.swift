import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// How many bytes an upstream handler read in all (-1: it has not finished reading).
final class SeenCount: Sendable {
    let value = Atomic<Int>(-1)
}

/// While an upload streams beside an early answer, each timer must measure its own party.
/// An upstream that answered (or began to) before the upload ended, and now waits for the rest
/// of it, is waiting on the client: a client pause within body_timeout is the client's, not an
/// upstream inactivity (`upstreamDidDrain`: "a pause now is the client's, and body_timeout
/// covers it, not the upstream's inactivity timeout"). And bytes the client sent that the
/// proxy holds back for a slow upstream are the upstream's wait, not the client's.
@Suite(.serialized) struct UploadPauseBlameTests {
    static func nowMillis() -> Int { TestUpstream.nowMillis() }

    /// Reads from `fd` until `buffer` holds a head and `bodyBytes` bytes after it.
    static func readHeadAndBody(_ fd: Int32, bodyBytes: Int, into buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = TestUpstream.find([13, 10, 13, 10], in: buffer), buffer.count - (end + 4) >= bodyBytes { return true }
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { return false }
            buffer += chunk[0..<n]
        }
    }

    /// An echo-style upstream: the first half of the upload, then the head and a first chunk
    /// of the answer (or only an interim `103`), then it waits for the second half and ends
    /// the answer. `upstreamSaw` records what the upstream read in all.
    static func duplexUpstream(interimOnly: Bool, upstreamSaw: SeenCount) -> TestUpstream {
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            var buffer: [UInt8] = []
            guard readHeadAndBody(fd, bodyBytes: 10, into: &buffer) else { return }
            let early = interimOnly
                ? "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                : "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
            guard TestUpstream.sendAll(fd, Array(early.utf8)) else { return }
            let ok = readHeadAndBody(fd, bodyBytes: 20, into: &buffer)
            upstreamSaw.value.store(buffer.count, ordering: .releasing)
            guard ok else { return }
            let rest = interimOnly
                ? "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhelloworld"
                : "5\r\nworld\r\n0\r\n\r\n"
            _ = TestUpstream.sendAll(fd, Array(rest.utf8))
            usleep(500_000)
        }
        return upstream
    }

    /// A 20-byte PUT to the duplex upstream (response_timeout 1 s, body_timeout 5 s): the
    /// first half, a pause of `pauseMillis`, the second half. Returns "complete" when the
    /// answer is the whole 200, else what the client got instead and what the upstream read.
    static func uploadWithAPause(pauseMillis: UInt32, interimOnly: Bool) throws -> String {
        let upstreamSaw = SeenCount()
        let upstream = duplexUpstream(interimOnly: interimOnly, upstreamSaw: upstreamSaw)
        let proxy = try ProxyHarness(
            upstream: upstream, upstreamYAML: ["response_timeout: 1s"], yaml: "limits: { body_timeout: 5s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 8)
        try client.send("PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n0123456789")
        usleep(pauseMillis * 1000)
        let secondHalfSent = (try? client.send("abcdefghij")) != nil
        let start = nowMillis()
        var outcome = "complete"
        do {
            let response = try client.readResponse(requestMethod: "PUT")
            if response.status != 200 || response.bodyText != "helloworld" {
                outcome = "status \(response.status), body \(response.bodyText.debugDescription)"
            }
        } catch {
            let received = String(decoding: client.buffer, as: UTF8.self)
            outcome = "\(error) after \(nowMillis() - start) ms, received \(received.debugDescription)"
        }
        if outcome == "complete" { return outcome }
        return "second half sent: \(secondHalfSent); the answer: \(outcome); the upstream read \(upstreamSaw.value.load(ordering: .acquiring)) bytes"
    }

    /// The upstream answered the first half of the upload at once and streams the rest of its
    /// answer as the upload goes on. The client pauses 2.5 s (body_timeout is 5 s) before the
    /// second half: well within its own limit. response_timeout (1 s) measures the upstream,
    /// which is idle only because it waits for the client.
    @Test func anEarlyAnswerWaitingForTheRestOfTheUploadIsNotCutByResponseTimeout() throws {
        #expect(try Self.uploadWithAPause(pauseMillis: 2_500, interimOnly: false) == "complete")
    }

    /// Same, but the upstream only sent an interim `103 Early Hints` before waiting for the rest
    /// of the upload: the client gets a 504 for an upstream that was waiting for it.
    @Test func anInterimResponseDuringTheUploadDoesNotStartResponseTimeoutAgainstTheUpstream() throws {
        #expect(try Self.uploadWithAPause(pauseMillis: 2_500, interimOnly: true) == "complete")
    }

    /// Control: the same exchange with no pause works (the upstream script is sound).
    @Test func theDuplexExchangeWithoutAPauseCompletes() throws {
        #expect(try Self.uploadWithAPause(pauseMillis: 300, interimOnly: false) == "complete")
    }

    // MARK: the tail of an upload held back for a slow upstream

    static func port(of fd: Int32, peer: Bool) -> UInt16? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length) }
        }
        guard rc == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
        return UInt16(bigEndian: address.sin_port)
    }

    /// The proxy's end of the upstream connection `fd` (same process): its send buffer is
    /// pinned small, so the proxy's own queue, not the kernel's, holds what the upstream has
    /// not read yet.
    static func pinProxySendBuffer(upstreamSide fd: Int32) {
        guard let proxyPort = port(of: fd, peer: true) else { return }
        for candidate in Int32(3)..<Int32(4096) where candidate != fd {
            guard port(of: candidate, peer: false) == proxyPort else { continue }
            var size: Int32 = 16384
            setsockopt(candidate, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// One chunked upload of `total` bytes, sent whole at once; the upstream reads nothing for
    /// 700 ms (the proxy holds the upload back: its queue towards the upstream is past the
    /// high watermark), then 16 KiB every 50 ms, while streaming an early answer (one small
    /// chunk every 100 ms) that the client reads as it comes. Returns nil if the answer was
    /// whole, else what happened.
    static func heldBackUpload(total: Int) throws -> String? {
        let upstreamRead = Atomic<Int>(0)
        let upstreamSawEnd = Atomic<Bool>(false)
        let start = Self.nowMillis()
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            var locked: Int32 = 131072
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &locked, socklen_t(MemoryLayout<Int32>.size))
            pinProxySendBuffer(upstreamSide: fd)
            var buffer: [UInt8] = []
            guard Self.readHeadAndBody(fd, bodyBytes: 0, into: &buffer) else { return }
            guard TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)) else { return }
            let tick = Array("1\r\nx\r\n".utf8)
            var tail = Array(buffer.suffix(5))
            var read = buffer.count
            var chunk = [UInt8](repeating: 0, count: 16384)
            var nextTick = 0
            let readFrom = Self.nowMillis() + 700
            let deadline = Self.nowMillis() + 15_000
            while Self.nowMillis() < deadline {
                let now = Self.nowMillis()
                if now >= nextTick {
                    if !TestUpstream.sendAll(fd, tick) { return }
                    nextTick = now + 100
                }
                if now >= readFrom {
                    let n = recv(fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
                    if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return }
                    if n > 0 {
                        read += n
                        upstreamRead.store(read, ordering: .relaxed)
                        tail = Array((tail + chunk[0..<n]).suffix(5))
                        if tail == Array("0\r\n\r\n".utf8) {
                            upstreamSawEnd.store(true, ordering: .releasing)
                            _ = TestUpstream.sendAll(fd, Array("0\r\n\r\n".utf8))
                            usleep(300_000)
                            return
                        }
                    }
                }
                usleep(50_000)
            }
        }
        let proxy = try ProxyHarness(
            upstream: upstream, upstreamYAML: ["response_timeout: 5s"],
            yaml: "limits: { body_timeout: 400ms, send_timeout: 5s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 15)
        var body: [UInt8] = []
        let piece = Array("400\r\n".utf8) + [UInt8](repeating: 0x62, count: 1024) + [13, 10]
        for _ in 0..<(total / 1024) { body += piece }
        body += Array("0\r\n\r\n".utf8)
        let clientFD = client.fd
        let request = Array("PUT /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8) + body
        Thread { _ = TestUpstream.sendAll(clientFD, request) }.start()
        do {
            var count = 0
            let response = try client.readResponse(requestMethod: "PUT", discardBody: true, bodyCount: &count)
            if response.status == 200 { return nil }
            return "status \(response.status)"
        } catch {
            return "\(error) after \(Self.nowMillis() - start) ms; the upstream read \(upstreamRead.load(ordering: .acquiring)) of \(request.count) bytes, saw the end: \(upstreamSawEnd.load(ordering: .acquiring))"
        }
    }

    /// Uploads of several sizes, so that for some the proxy's last read of the upload is the
    /// one it must hold back part of: the client has then sent everything, and the proxy alone
    /// holds its last bytes until the slow (but steadily reading) upstream takes them. Nothing
    /// about the client is slow: body_timeout must not end any of these exchanges.
    @Test func theHeldBackTailOfAnUploadIsNotTimedAgainstTheClient() throws {
        var failures: [String] = []
        for kib in stride(from: 256, through: 768, by: 32) {
            if let failure = try Self.heldBackUpload(total: kib * 1024) { failures.append("\(kib) KiB: \(failure)") }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    // MARK: a silent upstream after an upload that ended behind the hold

    /// An early answer's head and first chunk, then the upstream reads nothing for 500 ms (the
    /// proxy's queue towards it passes the high watermark), reads the whole Content-Length
    /// upload and goes silent with the connection open. The client's last read carried the
    /// body's end and `trailing` (a pipelined request, or the stray CRLF some clients send
    /// after a body, RFC 9112 §2.2), so the body ended only at the upstream's drain, with
    /// nothing left to write. response_timeout (1 s) must still end the exchange. Returns nil
    /// if it did, within 2.5 s of the silence, else what happened.
    static func silentAfterUpload(total: Int, trailing: String) throws -> String? {
        let upstreamGotAllAt = Atomic<Int>(0)
        let upstream = TestUpstream()
        upstream.setConnectionHandler { fd in
            var locked: Int32 = 131072
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &locked, socklen_t(MemoryLayout<Int32>.size))
            pinProxySendBuffer(upstreamSide: fd)
            var buffer: [UInt8] = []
            guard Self.readHeadAndBody(fd, bodyBytes: 0, into: &buffer) else { return }
            guard TestUpstream.sendAll(fd, Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".utf8)) else { return }
            usleep(500_000)
            guard Self.readHeadAndBody(fd, bodyBytes: total, into: &buffer) else { return }
            upstreamGotAllAt.store(Self.nowMillis(), ordering: .releasing)
            usleep(5_000_000)
        }
        let proxy = try ProxyHarness(
            upstream: upstream, upstreamYAML: ["response_timeout: 1s"],
            yaml: "limits: { body_timeout: 5s, send_timeout: 5s }\n")
        defer { proxy.stop() }
        let client = try TestClient(port: proxy.port, timeoutSeconds: 4)
        let request = Array("PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: \(total)\r\n\r\n".utf8)
            + [UInt8](repeating: 0x62, count: total) + Array(trailing.utf8)
        let clientFD = client.fd
        Thread { _ = TestUpstream.sendAll(clientFD, request) }.start()
        var outcome = ""
        do {
            outcome = "a whole response, status \(try client.readResponse(requestMethod: "PUT").status)"
        } catch {
            outcome = "\(error)"
        }
        let gotAll = upstreamGotAllAt.load(ordering: .acquiring)
        guard gotAll > 0 else { return "the upstream never read the whole upload (\(outcome))" }
        // 2.5 s or more: the client gave up at its own 4 s read timeout, no timer ran.
        let waited = Self.nowMillis() - gotAll
        return waited < 2_500 ? nil : "\(outcome) \(waited) ms after the upstream went silent"
    }

    @Test(arguments: ["GET /next HTTP/1.1\r\nHost: a\r\n\r\n", "\r\n"])
    func aSilentUpstreamAfterAnUploadThatEndedBehindTheHoldIsTimedOut(trailing: String) throws {
        var failure: String?
        for kib in stride(from: 256, through: 768, by: 32) {
            if let found = try Self.silentAfterUpload(total: kib * 1024, trailing: trailing) {
                failure = "\(kib) KiB: \(found)"
                break
            }
        }
        #expect(failure == nil, "after \(trailing.debugDescription): \(failure ?? "")")
    }
}
