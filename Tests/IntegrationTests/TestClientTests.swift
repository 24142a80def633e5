import Foundation
import Synchronization
import Testing
import TestSupport

/// The test client itself must not close descriptors it does not own: the suite runs its tests
/// on many threads in one process, and a stray close lands on another test's file or socket.
@Suite struct TestClientTests {
    /// A refused connect closes its socket exactly once. Another thread keeps opening and reading
    /// a file meanwhile; a second close of the refused socket's number would close that file
    /// under it (EBADF), since Linux hands out the lowest free number.
    @Test func refusedConnectClosesItsSocketOnce() throws {
        // A socket bound and never listening keeps the port refusing, whatever runs beside us.
        let (reserved, port) = RedisServer.boundLoopbackSocket()
        defer { close(reserved) }
        let flags = Flags()
        let reader = Thread {
            var byte: UInt8 = 0
            while !flags.stop.load(ordering: .acquiring) {
                let fd = open("/dev/zero", O_RDONLY)
                if fd < 0 { continue }
                for _ in 0..<4 where read(fd, &byte, 1) < 0 && errno == EBADF {
                    flags.badReads.add(1, ordering: .relaxed)
                }
                close(fd)
                sched_yield()  // do not starve timing-sensitive tests running beside this one
            }
        }
        reader.start()
        var refused = 0
        for _ in 0..<3000 {
            do { _ = try TestClient(port: port, timeoutSeconds: 1) } catch TestClient.ClientError.connectFailed { refused += 1 }
        }
        flags.stop.store(true, ordering: .releasing)
        #expect(refused == 3000)
        #expect(flags.badReads.load(ordering: .relaxed) == 0)
    }

    private final class Flags: Sendable {
        let stop = Atomic<Bool>(false)
        let badReads = Atomic<Int>(0)
    }
}
