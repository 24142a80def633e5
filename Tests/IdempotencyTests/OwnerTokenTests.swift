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
        // Below zero, a negative fraction of a second included, is zero.
        #expect(Duration.milliseconds(-5).milliseconds == 0)
        #expect(Duration.nanoseconds(-1).milliseconds == 0)
        #expect(Duration.nanoseconds(999_999).milliseconds == 0)
        // The largest whole count that fits, and one past it.
        #expect(Duration.milliseconds(Int64.max).milliseconds == UInt64(Int64.max))
        #expect(Duration.seconds(Int64(UInt64.max / 1000)).milliseconds == UInt64.max / 1000 * 1000)
        #expect((Duration.seconds(Int64(UInt64.max / 1000)) + .seconds(1)).milliseconds == UInt64.max)
        // Against the arithmetic on whole seconds and their fraction, over a seeded spread.
        var state: UInt64 = 0x1234_5678
        for _ in 0..<10_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let seconds = Int64(state >> 36)  // up to about 2^28 s, eight years
            let nanos = Int64((state >> 4) % 1_000_000_000)
            let duration = Duration.seconds(seconds) + .nanoseconds(nanos)
            #expect(duration.milliseconds == UInt64(seconds) * 1000 + UInt64(nanos / 1_000_000))
        }
    }

    /// Attosecond counts past what whole Int64 seconds can hold, and the exact edges of the
    /// 64-bit quotient.
    @Test func durationMillisAtTheEdgesOfTheDivision() {
        let perMillisecond = Int128(1_000_000_000_000_000)
        #expect(Duration(attoseconds: perMillisecond - 1).milliseconds == 0)
        #expect(Duration(attoseconds: perMillisecond).milliseconds == 1)
        #expect(Duration(attoseconds: 1).milliseconds == 0)
        #expect(Duration(attoseconds: 0).milliseconds == 0)
        #expect(Duration(attoseconds: -1).milliseconds == 0)
        #expect(Duration(attoseconds: .min).milliseconds == 0)
        #expect(Duration(attoseconds: .max).milliseconds == .max)
        let largest = Int128(UInt64.max) * perMillisecond
        #expect(Duration(attoseconds: largest).milliseconds == .max)
        #expect(Duration(attoseconds: largest - 1).milliseconds == UInt64.max - 1)
        #expect(Duration(attoseconds: largest + perMillisecond - 1).milliseconds == .max)
        #expect(Duration(attoseconds: largest + perMillisecond).milliseconds == .max)
        // A high word just below and at the divisor.
        let highBelow = (Int128(999_999_999_999_999) << 64) | Int128(UInt64.max)
        #expect(Duration(attoseconds: highBelow).milliseconds == UInt64((UInt128(highBelow) / UInt128(perMillisecond))))
        #expect(Duration(attoseconds: Int128(1_000_000_000_000_000) << 64).milliseconds == .max)
        // Seconds beyond Int64 (components would truncate them).
        #expect(Duration(attoseconds: Int128(Int64.max) * 1_000_000_000_000_000_000 * 2).milliseconds == .max)
    }

    @Test func monotonicClockDoesNotGoBackwards() {
        let a = MonotonicClock.nowMillis()
        let b = MonotonicClock.nowMillis()
        #expect(b >= a)
        #expect(a > 0)
    }
}
