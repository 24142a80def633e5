import RedisClient
import Testing

/// Key → slot, against the values `CLUSTER KEYSLOT` gives on Redis 7.0.
@Suite struct ClusterSlotTests {
    @Test(arguments: [
        ("123456789", 12739), ("foo", 12182), ("{user1000}.following", 3443), ("{user1000}.followers", 3443), ("user1000", 3443),
        ("foo{}{bar}", 8363), ("foo{{bar}}zap", 4015), ("foo{bar}{zap}", 5061), ("{}x", 10595), ("x{}", 2608), ("", 0),
    ])
    func slotsMatchRedis(_ key: String, _ slot: Int) {
        #expect(ClusterSlot.of(key) == slot)
    }

    @Test func aRecordAndItsHashTagShareASlot() {
        let digest = String(repeating: "ab", count: 32)
        #expect(ClusterSlot.of("idem:{\(digest)}") == ClusterSlot.of(digest))
        #expect(ClusterSlot.of("other-prefix:{\(digest)}") == ClusterSlot.of("idem:{\(digest)}"))
    }
}
