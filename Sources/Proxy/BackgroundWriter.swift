import CSystemShims
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
        /// `stop()` was called: the thread ends once the queue is empty.
        var stopping = false
    }

    private let fd: Int32
    private let limit: Int
    private let queue = Mutex(Queue())
    /// Posted for each batch queued, and by `stop()`.
    private let wakeup: UnsafeMutablePointer<sem_t>
    /// Posted by the thread each time it finds the queue empty after writing, and when it
    /// leaves `run()`: what `drain()` and `stop()` wait on, instead of polling.
    private let settled: UnsafeMutablePointer<sem_t>
    /// Batches dropped because the queue was full.
    let dropped = Atomic<Int>(0)
    private var thread: LoopThread?
    /// The thread has left `run()`.
    private let finished = Atomic<Bool>(false)

    init(fd: Int32, limitBytes: Int = 8 * 1024 * 1024) {
        self.fd = fd
        limit = limitBytes
        wakeup = .allocate(capacity: 1)
        sem_init(wakeup, 0, 0)
        settled = .allocate(capacity: 1)
        sem_init(settled, 0, 0)
        thread = LoopThread(name: "idemproxy-log") { [self] in run() }
    }

    deinit {
        sem_destroy(wakeup)
        wakeup.deallocate()
        sem_destroy(settled)
        settled.deallocate()
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
        let deadline = Self.deadline(afterMillis: timeoutMillis)
        while !queue.withLock({ $0.batches.isEmpty && !$0.writing }) {
            guard Self.wait(settled, until: deadline) else { return }
        }
    }

    /// Ends the writer thread after what is queued has been written, waiting for it up to
    /// `timeoutMillis`. The thread holds the writer, so without this every server that shut
    /// down would leave one behind. A thread still blocked in a write to a stalled reader is
    /// detached instead of joined: shutdown must not hang on a log collector.
    func stop(timeoutMillis: UInt64 = 1000) {
        queue.withLock { $0.stopping = true }
        sem_post(wakeup)
        let deadline = Self.deadline(afterMillis: timeoutMillis)
        while !finished.load(ordering: .acquiring) {
            guard Self.wait(settled, until: deadline) else { break }
        }
        if finished.load(ordering: .acquiring) { thread?.join() } else { thread?.detach() }
        thread = nil
    }

    /// Monotonic nanoseconds `millis` from now (the far future for an unbounded wait).
    private static func deadline(afterMillis millis: UInt64) -> UInt64 {
        let now = EventLoop.monotonicNanos()
        return millis > (UInt64.max - now) / 1_000_000 ? .max : now + millis * 1_000_000
    }

    /// False once `deadline` (monotonic nanoseconds) has passed.
    private static func wait(_ semaphore: UnsafeMutablePointer<sem_t>, until deadline: UInt64) -> Bool {
        csys_sem_wait_until_monotonic(semaphore, deadline) == 0
    }

    private func run() {
        while true {
            while sem_wait(wakeup) != 0 {}
            let (batches, stopping) = queue.withLock { queue -> ([[UInt8]], Bool) in
                let taken = queue.batches
                queue.batches.removeAll()
                queue.bytes = 0
                queue.writing = !taken.isEmpty
                return (taken, queue.stopping)
            }
            for batch in batches { write(batch) }
            let (empty, done) = queue.withLock { queue -> (Bool, Bool) in
                queue.writing = false
                return (queue.batches.isEmpty, stopping && queue.batches.isEmpty)
            }
            if done { break }
            if empty { sem_post(settled) }
        }
        finished.store(true, ordering: .releasing)
        sem_post(settled)
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
