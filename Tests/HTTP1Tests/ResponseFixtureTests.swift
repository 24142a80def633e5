import HTTP1
import Testing

@Suite struct ResponseFixtureTests {
    @Test(arguments: ResponseFixtures.all)
    func fixture(_ fixture: Fixture) {
        let driver = MessageStreamDriver(
            side: .response(to: fixture.requestMethod), limits: fixture.limits, closesAtEnd: fixture.closesAtEnd)
        let reference = normalized(driver.run([fixture.input]))
        check(reference, against: fixture)
        for feeding in Feeding.all(for: fixture.input.count).dropFirst() {
            let outcome = normalized(driver.run(feeding.pieces(of: fixture.input)))
            if outcome != reference {
                Issue.record("\(fixture.name): fed \(feeding) gave \(outcome), whole gave \(reference)")
                return
            }
        }
    }

    /// Upstream violations all become 502 at the caller.
    private func normalized(_ outcome: StreamOutcome) -> StreamOutcome {
        var outcome = outcome
        if case .rejected = outcome.end { outcome.end = .rejected(502) }
        return outcome
    }
}
