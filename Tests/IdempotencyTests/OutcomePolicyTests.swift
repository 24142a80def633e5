import Testing
@testable import Idempotency

private let mine = SHA256Hasher.hash("mine")
private let other = SHA256Hasher.hash("other")
private let response = StoredResponse(status: 201, headers: [HeaderPair(name: "Location", value: "/x")], body: bytes("{}"))

private func existing(_ state: RecordState, _ fingerprint: [UInt8] = mine, _ response: StoredResponse? = nil) -> ClaimOutcome {
    .existing(IdempotencyRecord(
        state: state, fingerprint: fingerprint, owner: OwnerToken.random(), leaseDeadlineMillis: 1, response: response))
}

@Suite struct OutcomePolicyTests {
    @Test func decideTable() {
        #expect(OutcomePolicy.decide(.claimed, fingerprint: mine) == .forward)
        #expect(OutcomePolicy.decide(existing(.inFlight), fingerprint: mine) == .inFlight)
        #expect(OutcomePolicy.decide(existing(.unknown), fingerprint: mine) == .outcomeUnknown)
        #expect(OutcomePolicy.decide(existing(.completed, mine, response), fingerprint: mine) == .replay(response))
        let omitted = StoredResponse(status: 200, headers: [], body: [], bodyOmitted: true)
        #expect(
            OutcomePolicy.decide(existing(.completed, mine, omitted), fingerprint: mine)
                == .replayUnavailable(status: 200))
        // A completed record without a response is never treated as "run it again".
        #expect(OutcomePolicy.decide(existing(.completed), fingerprint: mine) == .outcomeUnknown)
    }

    @Test(arguments: RecordState.allCases)
    func otherFingerprintIsAMismatchInEveryState(_ state: RecordState) {
        let outcome = existing(state, other, state == .completed ? response : nil)
        #expect(OutcomePolicy.decide(outcome, fingerprint: mine) == .mismatch)
    }

    @Test func afterResponse() {
        let release = OutcomePolicy.defaultReleaseStatuses
        #expect(OutcomePolicy.afterResponse(status: 429, releaseStatuses: release) == .release)
        #expect(OutcomePolicy.afterResponse(status: 503, releaseStatuses: release) == .release)
        #expect(OutcomePolicy.afterResponse(status: 200, releaseStatuses: release) == .complete)
        #expect(OutcomePolicy.afterResponse(status: 500, releaseStatuses: release) == .complete)  // errors replay too
        #expect(OutcomePolicy.afterResponse(status: 503, releaseStatuses: []) == .complete)
        #expect(OutcomePolicy.afterResponse(status: 409, releaseStatuses: [409]) == .release)
    }

    @Test func afterFailure() {
        #expect(OutcomePolicy.afterFailure(requestSent: false, indeterminate: .hold) == .release)
        #expect(OutcomePolicy.afterFailure(requestSent: false, indeterminate: .release) == .release)
        #expect(OutcomePolicy.afterFailure(requestSent: true, indeterminate: .hold) == .markUnknown)
        #expect(OutcomePolicy.afterFailure(requestSent: true, indeterminate: .release) == .release)
    }
}
