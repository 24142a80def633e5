import Testing
@testable import Idempotency

@Suite struct OwnerTokenTests {
    @Test func sixteenRandomBytes() {
        let tokens = (0..<64).map { _ in OwnerToken.random() }
        #expect(tokens.allSatisfy { $0.count == 16 })
        #expect(Set(tokens.map(Hex.encode)).count == tokens.count)
        #expect(tokens.contains { $0 != [UInt8](repeating: 0, count: 16) })
    }

    @Test func durationMillis() {
        #expect(Duration.seconds(30).milliseconds == 30_000)
        #expect(Duration.milliseconds(250).milliseconds == 250)
        #expect(Duration.microseconds(1999).milliseconds == 1)
        #expect(Duration.seconds(-5).milliseconds == 0)
        #expect(Duration.seconds(Int64.max).milliseconds == UInt64.max)
    }

    @Test func monotonicClockDoesNotGoBackwards() {
        let a = MonotonicClock.nowMillis()
        let b = MonotonicClock.nowMillis()
        #expect(b >= a)
        #expect(a > 0)
    }
}
