import CSystemShims
import Glibc
import Synchronization

/// Receives readiness events for one registered file descriptor.
public protocol EventHandler: AnyObject {
    /// Called on the loop thread. `readable` includes error/hang-up conditions so the handler's
    /// next read observes them; `writable` likewise when write interest is registered.
    func handleEvent(readable: Bool, writable: Bool)
}

/// Output queued during a loop iteration and written once, before the loop next waits: many
/// small writes from one iteration (say, every claim its requests made) become one syscall.
public protocol DeferredFlush: AnyObject {
    func flushBeforeWait()
}

/// The events a handler wants; level-triggered, so interest must be dropped when not wanted.
public struct Interest: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = Interest(rawValue: 1)
    public static let write = Interest(rawValue: 2)
    var epollMask: UInt32 {
        var mask: UInt32 = 0
        if contains(.read) { mask |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if contains(.write) { mask |= EPOLLOUT.rawValue }
        return mask
    }
}

/// One epoll loop, driven by one thread. It owns every connection registered on it; nothing
/// here knows about HTTP. Timers live in a heap and set the epoll_wait timeout, as nginx and
/// redis `ae.c` do; other threads reach the loop only through `execute`, which wakes it via eventfd.
public final class EventLoop: @unchecked Sendable {
    private struct Slot {
        var handler: (any EventHandler)?
        var stamp: UInt32 = 0
        var interest: Interest = []
    }

    private let epollFD: Int32
    private let wakeFD: Int32
    private var slots: [Slot] = []
    private var nextStamp: UInt32 = 1
    private var timers = TimerHeap()
    private var flushes: [any DeferredFlush] = []
    private var flushing: [any DeferredFlush] = []
    private let pending = Mutex<[() -> Void]>([])
    private let stopRequested = Atomic<Bool>(false)
    private var events: UnsafeMutablePointer<epoll_event>
    private let eventCapacity = 512
    /// Monotonic milliseconds, refreshed once per loop iteration.
    public private(set) var now: UInt64
    public let index: Int
    /// Per-loop read buffers. A connection reads into one, processes what it can at once and
    /// keeps only the unprocessed rest, so an idle keep-alive connection owns no buffer at all.
    /// One for the client side and one for the upstream side, because handling one side's
    /// bytes may write to the other side but never reads it.
    public let clientReadBuffer: UnsafeMutableRawBufferPointer
    public let upstreamReadBuffer: UnsafeMutableRawBufferPointer

    public init(index: Int = 0) throws(IOError) {
        self.index = index
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        if epollFD < 0 { throw IOError(errno: errno, operation: "epoll_create1") }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        if wakeFD < 0 {
            let failure = IOError(errno: errno, operation: "eventfd")
            // `deinit` does not run for an object whose initialiser threw.
            Glibc.close(epollFD)
            throw failure
        }
        events = .allocate(capacity: eventCapacity)
        now = csys_monotonic_millis()
        clientReadBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        upstreamReadBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        var ev = epoll_event()
        csys_epoll_event_set(&ev, EPOLLIN.rawValue, UInt64(UInt32(bitPattern: wakeFD)))
        epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &ev)
    }

    deinit {
        events.deallocate()
        clientReadBuffer.deallocate()
        upstreamReadBuffer.deallocate()
        Glibc.close(wakeFD)
        Glibc.close(epollFD)
    }

    // MARK: registration

    /// Registers `fd`; the stamp packed into the epoll data makes events for an earlier
    /// registration of the same fd number (closed and reused within one tick) recognisable.
    public func register(_ fd: Int32, handler: any EventHandler, interest: Interest) throws(IOError) {
        let index = Int(fd)
        if index >= slots.count { slots.append(contentsOf: repeatElement(Slot(), count: max(index + 1 - slots.count, 1024))) }
        let stamp = nextStamp
        nextStamp &+= 1
        if nextStamp == 0 { nextStamp = 1 }
        slots[index] = Slot(handler: handler, stamp: stamp, interest: interest)
        var ev = epoll_event()
        csys_epoll_event_set(&ev, interest.epollMask, UInt64(stamp) << 32 | UInt64(UInt32(bitPattern: fd)))
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev) != 0 {
            slots[index] = Slot()
            throw IOError(errno: errno, operation: "epoll_ctl ADD")
        }
    }

    /// Changes the interest set; a no-op when unchanged, so callers may call it freely.
    public func setInterest(_ fd: Int32, _ interest: Interest) {
        let index = Int(fd)
        guard index < slots.count, slots[index].handler != nil, slots[index].interest != interest else { return }
        slots[index].interest = interest
        var ev = epoll_event()
        csys_epoll_event_set(&ev, interest.epollMask, UInt64(slots[index].stamp) << 32 | UInt64(UInt32(bitPattern: fd)))
        epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &ev)
    }

    public func interest(of fd: Int32) -> Interest {
        let index = Int(fd)
        return index < slots.count ? slots[index].interest : []
    }

    /// Removes `fd` from the loop. The caller closes it afterwards.
    public func deregister(_ fd: Int32) {
        let index = Int(fd)
        guard index < slots.count, slots[index].handler != nil else { return }
        slots[index] = Slot()
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
    }

    // MARK: timers

    public func arm(_ timer: Timer, after milliseconds: UInt64) {
        timers.arm(timer, at: now &+ milliseconds)
    }

    public func arm(_ timer: Timer, at deadline: UInt64) {
        timers.arm(timer, at: deadline)
    }

    /// Monotonic nanoseconds, for latency measurements finer than the loop's millisecond clock.
    @inline(__always)
    public static func monotonicNanos() -> UInt64 { csys_monotonic_nanos() }

    /// Refreshes the cached clock; handlers that need sub-tick precision may call it.
    @discardableResult
    public func refreshNow() -> UInt64 {
        now = csys_monotonic_millis()
        return now
    }

    /// Calls `flusher.flushBeforeWait()` once, before the loop next waits for events. The
    /// caller asks once per batch (it keeps its own "scheduled" flag).
    public func flushBeforeWait(_ flusher: any DeferredFlush) {
        flushes.append(flusher)
    }

    private func runDeferredFlushes() {
        // A flush may schedule another (a reply handled inline sends a command): run until none.
        while !flushes.isEmpty {
            swap(&flushes, &flushing)
            for flusher in flushing { flusher.flushBeforeWait() }
            flushing.removeAll(keepingCapacity: true)
        }
    }

    // MARK: cross-thread

    /// Runs `task` on the loop thread. Safe from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        pending.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    /// Asks `run()` to return after the current iteration. Safe from any thread.
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    // MARK: running

    /// Runs until `stop()`, then lets go of everything still registered, armed, scheduled or
    /// queued (`releaseEverything`). Must be called on the thread that owns this loop.
    public func run() {
        while !stopRequested.load(ordering: .acquiring) {
            runOnce()
        }
        releaseEverything()
    }

    /// A loop stopped for good never runs again, so what it still holds is abandoned: a handler
    /// still registered, a timer still in the heap (a cancelled one stays until its deadline
    /// comes up), a flush or a task not yet run. Each may hold the loop back (a connection
    /// keeps its loop, a timer's action a connection), and kept they would keep each other
    /// alive after their server is gone. Dropped, each object's `deinit` closes what it owns.
    /// The old values are swapped out before they are released, so a `deinit` that calls back
    /// into the loop (`deregister`, `arm`) finds it empty.
    private func releaseEverything() {
        var slots: [Slot] = []
        var timers = TimerHeap()
        var flushes: [any DeferredFlush] = []
        swap(&slots, &self.slots)
        swap(&timers, &self.timers)
        swap(&flushes, &self.flushes)
        let tasks = pending.withLock { tasks -> [() -> Void] in
            let taken = tasks
            tasks.removeAll()
            return taken
        }
        withExtendedLifetime((slots, timers, flushes, tasks)) {}
    }

    /// One iteration: write deferred output, wait for events (up to the earliest timer),
    /// dispatch, then fire timers.
    public func runOnce(maxWaitMillis: Int32 = 1000) {
        runDeferredFlushes()
        var timeout = maxWaitMillis
        if let next = timers.nextDeadline() {
            timeout = next <= now ? 0 : Int32(min(UInt64(maxWaitMillis), next - now))
        }
        let count = epoll_wait(epollFD, events, Int32(eventCapacity), timeout)
        now = csys_monotonic_millis()
        if count > 0 {
            for i in 0..<Int(count) {
                let mask = csys_epoll_event_events(events + i)
                let data = csys_epoll_event_data(events + i)
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
                if fd == wakeFD {
                    drainWakeups()
                    continue
                }
                let stamp = UInt32(truncatingIfNeeded: data >> 32)
                let index = Int(fd)
                // A handler may have closed this fd (and another connection may have reused the
                // number) earlier in this same batch: the stamp tells them apart.
                guard index < slots.count, slots[index].stamp == stamp, let handler = slots[index].handler else { continue }
                let failed = mask & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
                let interest = slots[index].interest
                // epoll reports errors and hang-ups whatever the interest, level-triggered: an
                // fd with reads paused would wake every iteration. Such events are delivered as
                // readable so the handler's read sees the error or EOF and closes.
                let readable = failed || (mask & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 && interest.contains(.read))
                let writable = (mask & EPOLLOUT.rawValue != 0 || failed) && interest.contains(.write)
                if readable || writable {
                    handler.handleEvent(readable: readable, writable: writable)
                }
            }
        }
        fireTimers()
    }

    private func fireTimers() {
        while let timer = timers.popNextExpired(now: now) { timer.action() }
    }

    private func drainWakeups() {
        var value: UInt64 = 0
        _ = Glibc.read(wakeFD, &value, 8)
        let tasks = pending.withLock { tasks -> [() -> Void] in
            let taken = tasks
            tasks.removeAll()
            return taken
        }
        for task in tasks { task() }
    }
}
