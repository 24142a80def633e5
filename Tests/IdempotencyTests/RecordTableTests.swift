import TestRandom
import Testing
@testable import Idempotency

/// `RecordTable` against a `Dictionary` doing the same insertions and removals. Tags cut to a
/// few bits make most keys share a home and a tag, so probe runs are long and every lookup has
/// to tell keys apart by their text; with full tags the index grows and shrinks through many
/// sizes. Runs that wrap past the index's last slot are `RecordTableWrapTests`.
@Suite struct RecordTableTests {
    static func key(_ n: Int) -> StoreKey { StoreKey("idempotency:v1:tenant:\(n)") }

    /// Random insertions, removals (of a random present key, so the last record moves into the
    /// hole) and lookups; after each step every key the model holds is found with its value
    /// and a few it does not hold are not.
    @Test(arguments: [(UInt64(1), UInt64(0x3)), (2, 0xF), (3, 0xFFFF_FFFF), (4, 0)])
    func agreesWithADictionary(seed: UInt64, tagMask: UInt64) {
        var random = SeededRandom(state: seed)
        var table = RecordTable<Int>(seed: random.next(), tagMask: tagMask)
        var model: [String: Int] = [:]
        var nextKey = 0
        var largestIndex = 0
        for step in 0..<6_000 {
            // Grow for the first half, then mostly shrink, so the index is rebuilt both ways.
            let inserting = step < 3_000 ? random.chance(70) : random.chance(25)
            if inserting || model.isEmpty {
                let key = Self.key(nextKey)
                nextKey += 1
                #expect(table.index(forKey: key) == nil)
                let index = table.insert(step, forKey: key)
                #expect(table[valueAt: index] == step)
                model[key.text] = step
            } else {
                let victim = random.pick(Array(model.keys))
                let index = table.index(forKey: StoreKey(victim))
                #expect(index != nil, "step \(step): \(victim) is held")
                if let index { table.remove(at: index) }
                model[victim] = nil
            }
            largestIndex = max(largestIndex, table.slotCount)
            #expect(table.count == model.count)
            for (text, value) in model where random.chance(step % 97 == 0 ? 100 : 3) {
                let index = table.index(forKey: StoreKey(text))
                #expect(index.map { table[valueAt: $0] } == value, "step \(step): \(text)")
                #expect(index.map { table.key(at: $0).text } == text)
            }
            for _ in 0..<2 {
                // Removed keys and keys never added.
                let absent = Self.key(random.below(nextKey + 50) + (random.chance(50) ? 0 : 1_000_000))
                if model[absent.text] == nil { #expect(table.index(forKey: absent) == nil, "step \(step): \(absent.text)") }
            }
        }
        #expect(Set(table.all.map(\.key.text)) == Set(model.keys))
        #expect(largestIndex >= 2_048, "the index grew with the records")
        #expect(table.slotCount < largestIndex, "and shrank once most were removed")
    }

    /// A borrowed key (a view of bytes a caller holds) finds the record stored under the owned
    /// key of the same text.
    @Test func aBorrowedKeyFindsTheRecordOfTheSameText() {
        var table = RecordTable<Int>()
        for n in 0..<100 { table.insert(n, forKey: Self.key(n)) }
        for n in [0, 42, 99] {
            let bytes = Array("idempotency:v1:tenant:\(n)".utf8)
            let found = bytes.withUnsafeBytes { table.index(forKey: StoreKey(borrowing: $0)) }
            #expect(found.map { table[valueAt: $0] } == n)
        }
        let missing = Array("idempotency:v1:tenant:100".utf8)
        #expect(missing.withUnsafeBytes { table.index(forKey: StoreKey(borrowing: $0)) } == nil)
    }

    /// A value changed through the subscript stays changed, and so do the others when the last
    /// record moves into a removed one's place.
    @Test func valuesChangeInPlaceAndSurviveTheMoveOfARemoval() {
        var table = RecordTable<[Int]>(seed: 9, tagMask: 0x1)
        for n in 0..<20 { table.insert([n], forKey: Self.key(n)) }
        table[valueAt: table.index(forKey: Self.key(19))!].append(190)
        table.remove(at: table.index(forKey: Self.key(3))!)
        #expect(table.index(forKey: Self.key(3)) == nil)
        #expect(table.index(forKey: Self.key(19)).map { table[valueAt: $0] } == [19, 190])
        for n in 0..<20 where n != 3 {
            #expect(table.index(forKey: Self.key(n)).map { table[valueAt: $0][0] } == n)
        }
    }

    /// Keys that share a hash are told apart by their text, and `forEachIndex(withHash:)` visits
    /// every record under that hash (the memory store's sweep finds records by hash alone).
    @Test(arguments: [UInt64(0x3), 0xFFFF_FFFF])
    func keysThatShareAHashAreAllFoundAndVisited(tagMask: UInt64) {
        var table = RecordTable<Int>(seed: 5, tagMask: tagMask)
        let shared: UInt64 = 0xDEAD_BEEF_0000_0001
        let twins = (0..<3).map { StoreKey("twin-\($0)", collidingHash: shared) }
        for n in 0..<40 { table.insert(100 + n, forKey: Self.key(n)) }
        for (n, key) in twins.enumerated() { table.insert(n, forKey: key) }
        for (n, key) in twins.enumerated() { #expect(table.index(forKey: key).map { table[valueAt: $0] } == n) }
        #expect(table.index(forKey: StoreKey("twin-3", collidingHash: shared)) == nil)
        var visited: [Int] = []
        table.forEachIndex(withHash: shared) { visited.append(table[valueAt: $0]) }
        #expect(visited.sorted() == [0, 1, 2])
        table.remove(at: table.index(forKey: twins[1])!)
        visited = []
        table.forEachIndex(withHash: shared) { visited.append(table[valueAt: $0]) }
        #expect(visited.sorted() == [0, 2])
        visited = []
        table.forEachIndex(withHash: Self.key(7).fnv) { visited.append(table[valueAt: $0]) }
        #expect(visited == [107])
    }
}
