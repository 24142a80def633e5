import EventLoop
import Glibc
import Testing
@testable import Upstream

/// A connection whose connect completes with nothing queued yet (bytes to be queued later)
/// must still read what the upstream sends and must not keep asking for writability.
@Suite(.serialized) struct ConnectWithNothingQueuedTests {
    final class Recorder: UpstreamConnectionDelegate {
        var readBytes = 0
        var drains = 0
        var closed = false
        func upstreamConnectFailed(_ connection: UpstreamConnection, error: IOError) { closed = true }
        func upstream(_ connection: UpstreamConnection, didRead bytes: UnsafeRawBufferPointer) -> Int { readBytes += bytes.count; return bytes.count }
        func upstreamDidClose(_ connection: UpstreamConnection, error: IOError?) { closed = true }
        func upstreamDidDrain(_ connection: UpstreamConnection) { drains += 1 }
        func upstreamTimedOut(_ connection: UpstreamConnection) {}
    }

    @Test func aConnectionOpenedWithNothingQueuedReadsAndDoesNotSpin() throws {
        let delegate = Recorder()
        try UpstreamInactivityTests.withOpenConnection(delegate: delegate) { loop, _, accepted in
            // The upstream speaks (as after a request queued and sent later would be answered).
            let hello = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
            #expect(hello.withUnsafeBytes { send(accepted, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == hello.count)
            // 300 ms of loop turns that wait up to 50 ms each: about 6 when idle.
            let start = loop.refreshNow()
            var spins = 0
            while loop.refreshNow() < start + 300 { loop.runOnce(maxWaitMillis: 50); spins += 1 }
            #expect(delegate.readBytes == hello.count, "the upstream's bytes were never read (read \(delegate.readBytes))")
            #expect(spins < 100, "the loop turned \(spins) times in 300 ms: a writability event with nothing to write, again and again")
        }
    }
}
