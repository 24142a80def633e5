import EventLoop
import Glibc
import Testing
@testable import Upstream

/// response_timeout is an inactivity limit on the upstream side (SPEC §5): bytes queued for an
/// upstream that does not take them must end in a timeout, however the queue got there. These
/// run one connection on a loop driven by the test, against a real listener that never reads.
@Suite(.serialized) struct UpstreamInactivityTests {
    /// Stops the connection's timer on each drain, as a client connection streaming a body
    /// does (the wait is then the client's), and records the timeout.
    final class StreamingDelegate: UpstreamConnectionDelegate {
        var timedOutAt: UInt64?
        var drains = 0
        var closed = false
        func upstreamConnectFailed(_ connection: UpstreamConnection, error: IOError) { closed = true }
        func upstream(_ connection: UpstreamConnection, didRead bytes: UnsafeRawBufferPointer) -> Int { bytes.count }
        func upstreamDidClose(_ connection: UpstreamConnection, error: IOError?) { closed = true }
        func upstreamDidDrain(_ connection: UpstreamConnection) {
            drains += 1
            connection.cancelTimer()
        }
        func upstreamTimedOut(_ connection: UpstreamConnection) { timedOutAt = connection.loop.now }
    }

    /// A loopback listener whose one accepted connection is never read.
    static func silentListener() throws -> (listenFD: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(fd, 4) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// One open connection to a loopback listener, on a loop the test drives; `body` runs with
    /// it and the accepted end (which the test may use to play the upstream), and everything is
    /// closed after.
    static func withOpenConnection(
        delegate: any UpstreamConnectionDelegate, activityMillis: UInt64 = 0,
        _ body: (EventLoop, UpstreamConnection, Int32) throws -> Void
    ) throws {
        let (listenFD, port) = try Self.silentListener()
        defer { close(listenFD) }
        let loop = try EventLoop()
        let pool = UpstreamPool(
            configuration: .init(
                address: try Socket.Address.resolve(host: "127.0.0.1", port: port), connectTimeoutMillis: 2_000,
                maxIdle: 1, idleTimeoutMillis: 10_000),
            loop: loop)
        let connection = try pool.acquire(delegate: delegate)
        defer { connection.close() }
        connection.activityTimeoutMillis = activityMillis
        let accepted = accept(listenFD, nil, nil)
        try #require(accepted >= 0)
        defer { close(accepted) }
        var turns = 0
        while connection.state == .connecting && turns < 200 { loop.runOnce(maxWaitMillis: 10); turns += 1 }
        try #require(connection.state == .open)
        try body(loop, connection, accepted)
    }

    /// The same with an activity timeout of 300 ms, to a listener that never reads.
    static func withSilentUpstream(_ body: (EventLoop, UpstreamConnection, StreamingDelegate, UInt64) throws -> Void) throws {
        let delegate = StreamingDelegate()
        let activityMillis: UInt64 = 300
        try withOpenConnection(delegate: delegate, activityMillis: activityMillis) { loop, connection, _ in
            try body(loop, connection, delegate, activityMillis)
        }
    }

    /// The queue drained (the delegate stopped the timer), then the upstream's buffers filled
    /// with the queue empty: the next bytes queue without one written. The timer must run
    /// from that write, though it moved nothing.
    @Test func bytesQueuedWithoutProgressAfterADrainStillTimeOut() throws {
        try Self.withSilentUpstream { loop, connection, delegate, activityMillis in
            // A first write the upstream's buffers take whole: the queue drains, the timer stops.
            let drainsBefore = delegate.drains
            connection.outbound.bytes.append(contentsOf: [UInt8](repeating: 0x62, count: 1024))
            connection.flush()
            #expect(delegate.drains == drainsBefore + 1)
            // Fill the kernel's queue to the upstream behind the connection's back, to the byte.
            // Twice, 50 ms apart, so acknowledgements still on their way have arrived.
            let filler = [UInt8](repeating: 0x66, count: 65536)
            for pass in 0..<2 {
                if pass > 0 { usleep(50_000) }
                while filler.withUnsafeBytes({ send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }) > 0 {}
                try #require(errno == EAGAIN || errno == EWOULDBLOCK)
            }
            // The next bytes queue: not one is written.
            connection.outbound.bytes.append(contentsOf: [UInt8](repeating: 0x62, count: 65536))
            let queuedAt = loop.refreshNow()
            connection.flush()
            #expect(connection.outbound.pendingCount == 65536, "this write was meant to move nothing")
            #expect(delegate.drains == drainsBefore + 1)

            while delegate.timedOutAt == nil && !delegate.closed && loop.now < queuedAt + 5 * activityMillis {
                loop.runOnce(maxWaitMillis: 50)
            }
            let timedOutAt = try #require(delegate.timedOutAt, "no timeout \(loop.now - queuedAt) ms after the bytes queued")
            #expect(timedOutAt >= queuedAt + activityMillis && timedOutAt < queuedAt + 3 * activityMillis)
            #expect(!delegate.closed)
        }
    }

    /// Bytes queued behind a running timer do not postpone it: a stalled upstream is not given
    /// a fresh response_timeout by every write the proxy attempts.
    @Test func writesThatMoveNothingDoNotPostponeARunningTimer() throws {
        try Self.withSilentUpstream { loop, connection, delegate, activityMillis in
            // Queue until a write leaves bytes behind: the last write that moved any armed the timer.
            var lastProgressAt: UInt64 = 0
            while connection.outbound.pendingCount == 0 && !delegate.closed {
                connection.outbound.bytes.append(contentsOf: [UInt8](repeating: 0x62, count: 65536))
                lastProgressAt = loop.refreshNow()
                connection.flush()
            }
            // Then writes that move nothing, every 50 ms, past the deadline. (Should the kernel
            // take a few bytes after all, that write re-arms the timer, and is counted from.)
            while delegate.timedOutAt == nil && loop.now < lastProgressAt + 5 * activityMillis {
                connection.outbound.bytes.append(contentsOf: [UInt8](repeating: 0x62, count: 1024))
                let written = connection.bytesWrittenThisExchange
                let attemptAt = loop.refreshNow()
                connection.flush()
                if connection.bytesWrittenThisExchange != written { lastProgressAt = attemptAt }
                loop.runOnce(maxWaitMillis: 50)
            }
            let timedOutAt = try #require(delegate.timedOutAt)
            #expect(timedOutAt < lastProgressAt + 2 * activityMillis, "timed out \(timedOutAt - lastProgressAt) ms after the last write that moved bytes")
        }
    }
}
