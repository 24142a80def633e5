import HTTP1
import Testing

/// Runs every request fixture whole, byte by byte and split at every offset,
/// and requires one and the same outcome from all of them.
@Suite struct RequestFixtureTests {
    @Test(arguments: RequestFixtures.all)
    func fixture(_ fixture: Fixture) {
        let driver = MessageStreamDriver(side: .request, limits: fixture.limits)
        let reference = driver.run([fixture.input])
        check(reference, against: fixture)
        for feeding in Feeding.all(for: fixture.input.count).dropFirst() {
            let outcome = driver.run(feeding.pieces(of: fixture.input))
            if outcome != reference {
                Issue.record("\(fixture.name): fed \(feeding) gave \(outcome), whole gave \(reference)")
                return
            }
        }
    }

    @Test func fixtureNamesAreUnique() {
        let names = RequestFixtures.all.map(\.name) + ResponseFixtures.all.map(\.name)
        #expect(Set(names).count == names.count)
    }

    @Test func everyFixtureStatesWhyItExists() {
        for fixture in RequestFixtures.all + ResponseFixtures.all {
            #expect(fixture.why.count > 20, "\(fixture.name) needs a reason")
        }
    }
}

/// Compares an outcome with a fixture's expectation.
func check(_ outcome: StreamOutcome, against fixture: Fixture, sourceLocation: SourceLocation = #_sourceLocation) {
    switch fixture.expected {
    case .reject(let status):
        #expect(outcome.end == .rejected(status), "\(fixture.name): \(outcome)", sourceLocation: sourceLocation)
        #expect(outcome.messages.isEmpty, "\(fixture.name) let a message through", sourceLocation: sourceLocation)
    case .accept(let want):
        #expect(outcome.end == .clean, "\(fixture.name): \(outcome)", sourceLocation: sourceLocation)
        #expect(outcome.messages.count == want.messages, "\(fixture.name): \(outcome)", sourceLocation: sourceLocation)
        #expect(outcome.messages.map(\.consumed).reduce(0, +) == fixture.input.count,
                "\(fixture.name) did not consume exactly its input", sourceLocation: sourceLocation)
        guard let message = outcome.messages.first else { return }
        func expectEqual<T: Equatable>(_ got: T, _ want: T?, _ what: String) {
            guard let want else { return }
            #expect(got == want, "\(fixture.name): \(what)", sourceLocation: sourceLocation)
        }
        expectEqual(message.method, want.method, "method")
        expectEqual(message.target, want.target, "target")
        expectEqual(message.framing, want.framing, "framing")
        expectEqual(text(message.body), want.body, "body")
        expectEqual(message.fields, want.fields, "fields")
        expectEqual(message.keepAlive, want.keepAlive, "keepAlive")
        expectEqual(message.expectContinue, want.expectContinue, "expectContinue")
        expectEqual(message.upgradeRequested, want.upgradeRequested, "upgradeRequested")
        expectEqual(message.host, want.host, "host")
        expectEqual(message.status, want.status, "status")
        expectEqual(message.contentLength, want.contentLength, "contentLength")
        if let forwarded = want.forwarded {
            let kept = zip(message.fields, message.hopByHop).filter { !$0.1 }.map(\.0)
            #expect(kept == forwarded, "\(fixture.name): forwarded fields", sourceLocation: sourceLocation)
        }
    }
}
