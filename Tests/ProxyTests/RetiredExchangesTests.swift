import Testing
@testable import Proxy

/// The bookkeeping that lets a guarded request reuse an exchange another connection let go of:
/// never one that anything else still holds or that is not finished.
@Suite struct RetiredExchangesTests {
    final class FakeExchange: RetirableExchange {
        var isFinished = false
        var released = 0
        func releaseLargeBuffers() { released += 1 }
    }

    @Test func onlyAFinishedExchangeNothingElseHoldsIsTaken() {
        var retired = RetiredExchanges<FakeExchange>()
        var held: FakeExchange? = FakeExchange()
        held!.isFinished = true
        let unfinished = FakeExchange()
        retired.retire(held!)
        retired.retire(unfinished)
        #expect(held!.released == 1)
        // The first is still referenced here (a store write in flight), the second not finished.
        #expect(retired.takeReusable() == nil)
        #expect(retired.count == 2)
        let first = ObjectIdentifier(held!)
        held = nil  // its holder lets go
        let taken = retired.takeReusable()
        #expect(taken.map(ObjectIdentifier.init) == first)
        #expect(retired.count == 1)
        #expect(retired.takeReusable() == nil)
    }

    @Test func theCountIsBoundedAndOnlyTheOldestAreExamined() {
        var retired = RetiredExchanges<FakeExchange>()
        var keep: [FakeExchange] = []
        for _ in 0..<(RetiredExchanges<FakeExchange>.limit + 10) {
            let exchange = FakeExchange()
            keep.append(exchange)
            retired.retire(exchange)
        }
        #expect(retired.count == RetiredExchanges<FakeExchange>.limit)
        // A free exchange past the examined window is not found; one inside it is.
        let window = RetiredExchanges<FakeExchange>.examined
        keep[window].isFinished = true
        keep.removeAll()
        #expect(retired.takeReusable() == nil)
        #expect(retired.count == RetiredExchanges<FakeExchange>.limit)
    }

    @Test func aFreedExchangeInsideTheWindowIsTakenOldestFirst() {
        var retired = RetiredExchanges<FakeExchange>()
        var exchanges = (0..<4).map { _ in FakeExchange() }
        for exchange in exchanges { retired.retire(exchange) }
        exchanges[1].isFinished = true
        exchanges[3].isFinished = true
        let second = ObjectIdentifier(exchanges[1]), fourth = ObjectIdentifier(exchanges[3])
        exchanges.removeAll()
        #expect(retired.takeReusable().map(ObjectIdentifier.init) == second)
        #expect(retired.takeReusable().map(ObjectIdentifier.init) == fourth)
        #expect(retired.takeReusable() == nil)
    }
}
