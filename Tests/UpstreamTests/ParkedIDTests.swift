import Testing
@testable import Upstream

/// Parked connections are keyed by their ids with a one-round hash: sequential ids must still
/// land in distinct buckets of a small table, and a dictionary keyed by them must behave.
struct ParkedIDTests {
    @Test func sequentialIDsSpreadOverTheLowBits() {
        // A table of 128 buckets uses the low 7 bits: 128 consecutive ids should fill most of them.
        for seed in [0, 1, 0x5EED, -1] {
            let buckets = Set((1...128).map { ParkedID($0)._rawHashValue(seed: seed) & 127 })
            #expect(buckets.count > 70, "seed \(seed): \(buckets.count) buckets")
        }
        #expect(ParkedID(7)._rawHashValue(seed: 3) == ParkedID(7)._rawHashValue(seed: 3))
    }

    @Test func aDictionaryKeyedByThemFindsEveryEntry() {
        var table: [ParkedID: Int] = [:]
        for id in 1...5000 { table[ParkedID(id)] = id * 2 }
        for id in stride(from: 1, through: 5000, by: 3) { table.removeValue(forKey: ParkedID(id)) }
        for id in 1...5000 {
            #expect(table[ParkedID(id)] == (id % 3 == 1 ? nil : id * 2))
        }
        #expect(table.count == 5000 - 1667)
    }
}
