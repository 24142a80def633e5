import Testing
import Upstream

/// The keep-alive pool's decisions, without sockets.
struct PoolStateMachineTests {
    func pool(maxIdle: Int = 2, idle: UInt64 = 1000) -> PoolStateMachine {
        PoolStateMachine(configuration: .init(maxIdle: maxIdle, idleTimeoutMillis: idle))
    }

    @Test func emptyPoolConnects() {
        var state = pool()
        var expired: [Int] = []
        #expect(state.lease(now: 0, expired: &expired) == .connect)
    }

    @Test func mostRecentlyParkedConnectionIsReusedFirst() {
        var state = pool()
        #expect(state.release(id: 1, reusable: true, now: 0) == .park(deadline: 1000))
        #expect(state.release(id: 2, reusable: true, now: 10) == .park(deadline: 1010))
        var expired: [Int] = []
        #expect(state.lease(now: 20, expired: &expired) == .reuse(id: 2, check: false))
        #expect(state.lease(now: 20, expired: &expired) == .reuse(id: 1, check: false))
        #expect(expired.isEmpty)
    }

    @Test func connectionsIdleLongerThanTheThresholdAreCheckedBeforeReuse() {
        var state = pool()
        _ = state.release(id: 1, reusable: true, now: 0)
        _ = state.release(id: 2, reusable: true, now: 100)
        var expired: [Int] = []
        #expect(state.lease(now: 120, expired: &expired) == .reuse(id: 2, check: false))
        #expect(state.lease(now: 120, expired: &expired) == .reuse(id: 1, check: true))
    }

    @Test func expiredConnectionsAreNeverReused() {
        var state = pool()
        _ = state.release(id: 1, reusable: true, now: 0)
        var expired: [Int] = []
        #expect(state.lease(now: 1000, expired: &expired) == .connect)
        #expect(expired == [1])
    }

    @Test func unreusableOrSurplusConnectionsAreClosed() {
        var state = pool(maxIdle: 1)
        #expect(state.release(id: 1, reusable: false, now: 0) == .close)
        #expect(state.release(id: 2, reusable: true, now: 0) == .park(deadline: 1000))
        #expect(state.release(id: 3, reusable: true, now: 0) == .close)
    }

    @Test func sweepExpiresOnlyDueConnections() {
        var state = pool()
        _ = state.release(id: 1, reusable: true, now: 0)
        _ = state.release(id: 2, reusable: true, now: 500)
        #expect(state.nextDeadline == 1000)
        #expect(state.expire(now: 1200) == [1])
        #expect(state.idleIDs == [2])
    }

    @Test func lostIdleConnectionLeavesThePool() {
        var state = pool()
        _ = state.release(id: 1, reusable: true, now: 0)
        state.idleConnectionLost(id: 1)
        var expired: [Int] = []
        #expect(state.lease(now: 1, expired: &expired) == .connect)
    }

    @Test func shutdownClosesIdleAndStopsParking() {
        var state = pool()
        _ = state.release(id: 1, reusable: true, now: 0)
        #expect(state.shutdown() == [1])
        #expect(state.release(id: 2, reusable: true, now: 0) == .close)
    }
}
