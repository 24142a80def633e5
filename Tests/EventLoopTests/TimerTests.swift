@testable import EventLoop
import Testing

/// The timer heap, driven with explicit clock values (no sleeping).
struct TimerTests {
    final class Log { var fired: [String] = [] }

    @Test func timersFireInDeadlineOrder() {
        var heap = TimerHeap()
        let log = Log()
        let a = Timer { log.fired.append("a") }
        let b = Timer { log.fired.append("b") }
        let c = Timer { log.fired.append("c") }
        heap.arm(c, at: 300)
        heap.arm(a, at: 100)
        heap.arm(b, at: 200)
        var due: [Timer] = []
        heap.popExpired(now: 250, into: &due)
        due.forEach { $0.action() }
        #expect(log.fired == ["a", "b"])
        #expect(heap.nextDeadline() == 300)
    }

    @Test func rearmingLaterDefersTheTimerWithoutAnotherEntry() {
        var heap = TimerHeap()
        let log = Log()
        let t = Timer { log.fired.append("t") }
        heap.arm(t, at: 100)
        heap.arm(t, at: 500)
        #expect(heap.count == 1)
        var due: [Timer] = []
        heap.popExpired(now: 200, into: &due)
        #expect(due.isEmpty)
        #expect(heap.nextDeadline() == 500)
        heap.popExpired(now: 500, into: &due)
        #expect(due.count == 1)
    }

    @Test func rearmingEarlierFiresAtTheEarlierDeadlineOnce() {
        var heap = TimerHeap()
        let t = Timer {}
        heap.arm(t, at: 500)
        heap.arm(t, at: 100)
        var due: [Timer] = []
        heap.popExpired(now: 100, into: &due)
        #expect(due.count == 1)
        due.removeAll()
        heap.popExpired(now: 1000, into: &due)
        #expect(due.isEmpty, "the superseded entry must not fire again")
    }

    @Test func cancelledTimersNeverFire() {
        var heap = TimerHeap()
        let t = Timer {}
        heap.arm(t, at: 100)
        t.cancel()
        var due: [Timer] = []
        heap.popExpired(now: 1000, into: &due)
        #expect(due.isEmpty)
        #expect(heap.nextDeadline() == nil)
    }
}
