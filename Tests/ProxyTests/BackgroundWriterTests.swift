import Foundation
import Glibc
import Testing
@testable import Proxy

/// The access log's writer thread: `drain()` returns once every queued batch is written, and
/// `stop()` never holds a shutdown longer than its bound, even when the reader has stalled.
@Suite struct BackgroundWriterTests {
    static func millisSince(_ start: UInt64) -> UInt64 {
        (DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
    }

    /// Reads what is in the pipe now, without blocking.
    static func readAvailable(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { return out }
            out += chunk[0..<n]
        }
    }

    @Test func drainReturnsOnceEveryQueuedBatchIsWritten() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        // The test reads without blocking; the writer thread's end stays blocking.
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        let writer = BackgroundWriter(fd: fds[1])
        let batches = (0..<200).map { Array("line \($0)\n".utf8) }
        for batch in batches { writer.enqueue(batch) }
        writer.drain(timeoutMillis: 5000)
        // Nothing is read until drain returned: everything must already be in the pipe.
        #expect(Self.readAvailable(fds[0]) == Array(batches.joined()))
        writer.stop()
    }

    @Test func stopDetachesAWriterStuckOnAStalledReaderWithinItsBound() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let writer = BackgroundWriter(fd: fds[1], limitBytes: 1 << 20)
        // More than the pipe holds (64 KiB): the thread blocks in write(2) and nobody reads.
        writer.enqueue([UInt8](repeating: 0x61, count: 256 * 1024))
        let start = DispatchTime.now().uptimeNanoseconds
        writer.drain(timeoutMillis: 200)
        let drained = Self.millisSince(start)
        #expect(drained >= 150 && drained < 2000, "drain waited \(drained) ms for a 200 ms bound")
        let stopStart = DispatchTime.now().uptimeNanoseconds
        writer.stop(timeoutMillis: 200)
        let stopped = Self.millisSince(stopStart)
        #expect(stopped >= 150 && stopped < 2000, "stop waited \(stopped) ms for a 200 ms bound")
        // Unblock the detached thread so it can end: read the pipe dry until the write finishes.
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        while total < 256 * 1024 {
            let n = read(fds[0], &chunk, chunk.count)
            if n <= 0 { break }
            total += n
        }
        #expect(total == 256 * 1024)
    }

    @Test func stopReturnsPromptlyWhenTheWriterIsIdle() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let writer = BackgroundWriter(fd: fds[1])
        writer.enqueue(Array("one line\n".utf8))
        let start = DispatchTime.now().uptimeNanoseconds
        writer.stop(timeoutMillis: 5000)
        let stopped = Self.millisSince(start)
        // Joined, not waited out: far below the bound.
        #expect(stopped < 1000, "stop took \(stopped) ms with nothing stuck")
        var chunk = [UInt8](repeating: 0, count: 64)
        let n = read(fds[0], &chunk, chunk.count)
        #expect(n == 9, "the queued line was written before the thread ended")
    }
}
