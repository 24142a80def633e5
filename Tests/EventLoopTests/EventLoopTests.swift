@testable import EventLoop
import Glibc
import Testing

/// The epoll loop with real file descriptors (socket pairs) on one thread.
struct EventLoopTests {
    final class Recorder: EventHandler {
        var events: [(Bool, Bool)] = []
        var onEvent: (() -> Void)?
        func handleEvent(readable: Bool, writable: Bool) {
            events.append((readable, writable))
            onEvent?()
        }
    }

    func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
        return (fds[0], fds[1])
    }

    @Test func readableEventIsDelivered() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        let recorder = Recorder()
        try loop.register(a, handler: recorder, interest: [.read])
        _ = write(b, "x", 1)
        loop.runOnce(maxWaitMillis: 100)
        #expect(recorder.events.count == 1)
        #expect(recorder.events.first?.0 == true)
    }

    /// Two descriptors are ready in one batch. Whichever handler runs first closes the other
    /// descriptor and registers a new one under the same number: the other's stale event must
    /// reach neither the closed handler nor the newcomer (DESIGN habit 2).
    @Test func staleEventForAReusedDescriptorIsDropped() throws {
        let loop = try EventLoop()
        let (a, b) = socketPair()
        let (c, d) = socketPair()
        defer { close(b); close(d) }
        let first = Recorder()
        let second = Recorder()
        let newcomer = Recorder()
        try loop.register(a, handler: first, interest: [.read])
        try loop.register(c, handler: second, interest: [.read])
        var reused: [Int32] = []
        var survivor: Int32 = -1
        func closeTheOther(_ other: Int32, keeping mine: Int32) {
            guard reused.isEmpty else { return }
            loop.deregister(other)
            // dup2 closes `other` and opens the new descriptor under its number in one step: a
            // close then dup would race with other tests' threads taking the freed number.
            let number = dup2(b, other)
            reused.append(number)
            survivor = mine
            try? loop.register(number, handler: newcomer, interest: [.read])
        }
        first.onEvent = { closeTheOther(c, keeping: a) }
        second.onEvent = { closeTheOther(a, keeping: c) }
        _ = write(b, "x", 1)
        _ = write(d, "y", 1)
        loop.runOnce(maxWaitMillis: 100)
        #expect(first.events.count + second.events.count == 1)
        #expect(newcomer.events.isEmpty)
        #expect(reused.first == (survivor == a ? c : a), "dup2 should reuse the closed number")
        reused.forEach { close($0) }
        close(survivor)
    }

    @Test func executeRunsTasksFromAnotherThreadOnTheLoop() throws {
        let loop = try EventLoop()
        final class Box: @unchecked Sendable { var ran = false }
        let box = Box()
        let thread = LoopThread(name: "test") { loop.execute { box.ran = true; loop.stop() } }
        loop.run()
        thread.join()
        #expect(box.ran)
    }

    @Test func timerFiresThroughTheLoop() throws {
        let loop = try EventLoop()
        var fired = false
        let timer = Timer { fired = true }
        loop.arm(timer, after: 20)
        let start = loop.now
        while !fired && loop.refreshNow() - start < 1000 { loop.runOnce(maxWaitMillis: 50) }
        #expect(fired)
        #expect(loop.now - start >= 20)
    }

    /// Two timers are due in the same tick and the first one's action cancels the second (a
    /// connection closing both its timers): the second must not fire on a dead owner.
    @Test func timerCancelledByAnEarlierTimerInTheSameTickDoesNotFire() throws {
        let loop = try EventLoop()
        var fired: [String] = []
        var second: Timer!
        let first = Timer { fired.append("first"); second.cancel() }
        second = Timer { fired.append("second") }
        loop.arm(first, after: 10)
        loop.arm(second, after: 10)
        let start = loop.now
        while loop.refreshNow() - start < 100 { loop.runOnce(maxWaitMillis: 20) }
        #expect(fired == ["first"])
    }

    /// A handler, a timer, a deferred flush and a task each hold the loop (as connections do),
    /// and the loop holds them. Once `run()` returns after `stop()`, all of them and the loop
    /// itself are freed; without that they would keep each other alive for good.
    @Test func aStoppedLoopLetsGoOfWhatItStillHolds() throws {
        final class Holder: EventHandler, DeferredFlush, @unchecked Sendable {
            let loop: EventLoop
            init(loop: EventLoop) { self.loop = loop }
            func handleEvent(readable: Bool, writable: Bool) {}
            func flushBeforeWait() {}
        }
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        weak var weakLoop: EventLoop?
        weak var weakHandler: Holder?
        weak var weakTimerOwner: Holder?
        weak var weakFlusher: Holder?
        weak var weakTaskOwner: Holder?
        do {
            let loop = try EventLoop()
            weakLoop = loop
            let handler = Holder(loop: loop)
            weakHandler = handler
            try loop.register(a, handler: handler, interest: [.read])
            let timerOwner = Holder(loop: loop)
            weakTimerOwner = timerOwner
            // Armed far ahead, and a cancelled one: both stay in the heap.
            loop.arm(Timer { _ = timerOwner }, after: 3_600_000)
            let cancelled = Timer { _ = timerOwner }
            loop.arm(cancelled, after: 3_600_000)
            cancelled.cancel()
            let flusher = Holder(loop: loop)
            weakFlusher = flusher
            let taskOwner = Holder(loop: loop)
            weakTaskOwner = taskOwner
            // Queued from the loop itself after its last iteration's tasks ran: never run.
            loop.execute {
                loop.flushBeforeWait(flusher)
                loop.stop()
                loop.execute { _ = taskOwner }
            }
            let thread = LoopThread(name: "loop-release-test") { loop.run() }
            thread.join()
        }
        #expect(weakHandler == nil, "a registered handler outlived its stopped loop")
        #expect(weakTimerOwner == nil, "a timer's action outlived its stopped loop")
        #expect(weakFlusher == nil, "a deferred flush outlived its stopped loop")
        #expect(weakTaskOwner == nil, "a queued task outlived its stopped loop")
        #expect(weakLoop == nil, "the stopped loop was not freed")
    }
}
