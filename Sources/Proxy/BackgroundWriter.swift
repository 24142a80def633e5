import EventLoop
import Glibc
import Synchronization

/// Writes log batches to a file descriptor on its own thread, so a stalled reader of stdout
/// (a full pipe to a log collector) blocks this thread, never an event loop. The queue is
/// bounded: when it is full, batches are dropped and counted instead of growing memory.
final class BackgroundWriter: @unchecked Sendable {
    private struct Queue {
        var batches: [[UInt8]] = []
        var bytes = 0
        var writing = false
    }

    private let fd: Int32
    private let limit: Int
    private let queue = Mutex(Queue())
    private let wakeup: UnsafeMutablePointer<sem_t>
    /// Batches dropped because the queue was full.
    let dropped = Atomic<Int>(0)
    private var thread: LoopThread?

    init(fd: Int32, limitBytes: Int = 8 * 1024 * 1024) {
        self.fd = fd
        limit = limitBytes
        wakeup = .allocate(capacity: 1)
        sem_init(wakeup, 0, 0)
        thread = LoopThread(name: "idemproxy-log") { [self] in run() }
    }

    /// Queues one batch; never blocks.
    func enqueue(_ batch: [UInt8]) {
        let accepted = queue.withLock { queue -> Bool in
            guard queue.bytes + batch.count <= limit else { return false }
            queue.batches.append(batch)
            queue.bytes += batch.count
            return true
        }
        if accepted { sem_post(wakeup) } else { dropped.add(1, ordering: .relaxed) }
    }

    /// Waits (up to `timeoutMillis`) until everything queued has been written; for shutdown.
    func drain(timeoutMillis: UInt64 = 1000) {
        let deadline = EventLoop.monotonicNanos() + timeoutMillis * 1_000_000
        while EventLoop.monotonicNanos() < deadline {
            if queue.withLock({ $0.batches.isEmpty && !$0.writing }) { return }
            usleep(1000)
        }
    }

    private func run() {
        while true {
            while sem_wait(wakeup) != 0 {}
            let batches = queue.withLock { queue -> [[UInt8]] in
                let taken = queue.batches
                queue.batches.removeAll()
                queue.bytes = 0
                queue.writing = !taken.isEmpty
                return taken
            }
            for batch in batches { write(batch) }
            queue.withLock { $0.writing = false }
        }
    }

    private func write(_ batch: [UInt8]) {
        batch.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }  // the descriptor is gone: nothing sensible to do
                offset += written
            }
        }
    }
}
