import TestRandom
import Testing
@testable import Idempotency

/// Cases `RecordTableTests` leaves out. There, cut tags put every home in slots 0 to 15 of an
/// index that is at most 3/4 full, so no probe run ever wraps past the index's last slot; only
/// the full-tag case wraps, and then by chance. These build runs that cross the end on purpose
/// and check every record after every removal, and the load bounds after every step.
@Suite struct RecordTableWrapTests {
    static func key(_ n: Int) -> StoreKey { StoreKey("idempotency:v1:tenant:\(n)") }

    static func checkAll(_ table: RecordTable<Int>, _ model: [Int: Int], _ context: String) {
        #expect(table.count == model.count, "\(context)")
        for (n, value) in model {
            let index = table.index(forKey: key(n))
            #expect(index.map { table[valueAt: $0] } == value, "\(context): key \(n)")
            #expect(index.map { table.key(at: $0) } == key(n), "\(context): key \(n)")
        }
        // Load bounds: never over 3/4 (a probe must find an empty slot), and never emptier than
        // 1/8 above the minimum size.
        #expect(table.count * 4 <= table.slotCount * 3, "\(context): over 3/4 full")
        #expect(table.slotCount & (table.slotCount - 1) == 0, "\(context): not a power of two")
        #expect(table.slotCount >= RecordTable<Int>.minimumCapacity)
    }

    /// Twelve records (the most a 16-slot index takes) whose homes are the last slots and the
    /// first ones, so the run wraps from slot 15 to slot 0; then every removal order of a few
    /// random permutations, each step checked. A backward shift that does not wrap `next` or
    /// `hole`, or compares distances without the mask, loses or hides a record here.
    @Test(arguments: Array(UInt64(1)...40))
    func runsThatWrapPastTheLastSlot(seed: UInt64) {
        var random = SeededRandom(state: seed &* 7919)
        // Keys whose home is 13, 14, 15 (mostly) or 0, 1 (a few, displaced by the wrapped run).
        var late: [Int] = []
        var early: [Int] = []
        var n = 0
        while late.count < 9 || early.count < 3 {
            let home = RecordTable<Int>(seed: seed).home(of: Self.key(n))
            if home >= 13 && late.count < 9 { late.append(n) }
            else if home <= 1 && early.count < 3 { early.append(n) }
            n += 1
        }
        for round in 0..<6 {
            var table = RecordTable<Int>(seed: seed)
            var model: [Int: Int] = [:]
            // Insertion order matters for who ends up where: shuffle it.
            var order = late + early
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, random.below(i + 1)) }
            for k in order {
                table.insert(k * 10, forKey: Self.key(k))
                model[k] = k * 10
            }
            #expect(table.slotCount == 16, "twelve records fit the minimum index")
            Self.checkAll(table, model, "seed \(seed) round \(round) filled")
            // Remove in random order, re-inserting now and then so the run is rebuilt around holes.
            var present = order
            var step = 0
            while !present.isEmpty {
                let victim = present.remove(at: random.below(present.count))
                table.remove(at: table.index(forKey: Self.key(victim))!)
                model[victim] = nil
                Self.checkAll(table, model, "seed \(seed) round \(round) step \(step) removed \(victim)")
                #expect(table.index(forKey: Self.key(victim)) == nil)
                if step % 3 == 1 && table.count < 12 {
                    table.insert(victim * 10 + 1, forKey: Self.key(victim))
                    model[victim] = victim * 10 + 1
                    present.append(victim)
                    Self.checkAll(table, model, "seed \(seed) round \(round) step \(step) re-added \(victim)")
                }
                step += 1
            }
        }
    }

    /// Churn at the edge of growth (11 to 12 records in 16 slots, 23 to 24 in 32) with full tags
    /// and many seeds: runs wrap wherever the hash puts them.
    @Test func churnAtThreeQuartersWithManySeeds() {
        var random = SeededRandom(state: 77)
        for seed in UInt64(0)..<300 {
            var table = RecordTable<Int>(seed: seed)
            var model: [Int: Int] = [:]
            var next = 0
            let target = seed % 2 == 0 ? 12 : 24
            while model.count < target {
                table.insert(next, forKey: Self.key(next))
                model[next] = next
                next += 1
            }
            for step in 0..<60 {
                if model.count == target || (model.count > target - 3 && random.chance(50)) {
                    let victim = random.pick(Array(model.keys))
                    table.remove(at: table.index(forKey: Self.key(victim))!)
                    model[victim] = nil
                } else {
                    table.insert(next, forKey: Self.key(next))
                    model[next] = next
                    next += 1
                }
                Self.checkAll(table, model, "seed \(seed) step \(step)")
            }
        }
    }

    /// Growing to thousands and removing every record (in random order) passes every shrink
    /// boundary: after each removal all remaining records are found, and the index ends at its
    /// minimum size. The position an insertion returns is the last one, and a removal moves only
    /// the last record (into the hole).
    @Test func growThenEmptyThroughEveryShrink() {
        var random = SeededRandom(state: 5)
        var table = RecordTable<Int>(seed: 123)
        var model: [Int: Int] = [:]
        for n in 0..<3_000 {
            let position = table.insert(n, forKey: Self.key(n))
            #expect(position == n)
            model[n] = n
        }
        var sizes: Set<Int> = [table.slotCount]
        var present = Array(0..<3_000)
        while !present.isEmpty {
            let victim = present.remove(at: random.below(present.count))
            let index = table.index(forKey: Self.key(victim))!
            let lastKey = table.key(at: table.count - 1)
            table.remove(at: index)
            model[victim] = nil
            if lastKey != Self.key(victim) {
                #expect(table.index(forKey: lastKey) == index, "the last record took the hole")
            }
            sizes.insert(table.slotCount)
            #expect(table.count * 4 <= table.slotCount * 3)
            #expect(table.slotCount == 16 || table.count * 8 >= table.slotCount, "shrunk at 1/8")
            if present.count % 97 == 0 || present.count < 40 {
                Self.checkAll(table, model, "\(present.count) left")
            } else {
                // A few lookups each step.
                for _ in 0..<3 where !present.isEmpty {
                    let k = random.pick(present)
                    #expect(table.index(forKey: Self.key(k)).map { table[valueAt: $0] } == k)
                }
            }
        }
        #expect(table.slotCount == 16)
        #expect(sizes.count >= 8, "passed through every size from 4,096 down to 16")
        // And it is usable again.
        for n in 0..<100 { table.insert(n, forKey: Self.key(n)); model[n] = n }
        Self.checkAll(table, model, "refilled")
    }
}
