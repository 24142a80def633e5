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

/// What the Sentinel watcher reads from `+switch-master` and `+promoted-slave` messages.
@Suite struct SentinelAnnouncementTests {
    @Test func switchMasterNamesTheNewAddress() {
        #expect(SentinelLocator.announcedPrimary(channel: "+switch-master", payload: "payments 10.0.0.5 6379 10.0.0.6 6380", masterName: "payments")
                == RedisConnection.Endpoint(host: "10.0.0.6", port: 6380))
        #expect(SentinelLocator.announcedPrimary(channel: "+switch-master", payload: "other 10.0.0.5 6379 10.0.0.6 6380", masterName: "payments") == nil)
    }

    @Test func promotedSlaveNamesThePromotedReplica() {
        let payload = "slave 10.0.0.6:6380 10.0.0.6 6380 @ payments 10.0.0.5 6379"
        #expect(SentinelLocator.announcedPrimary(channel: "+promoted-slave", payload: payload, masterName: "payments")
                == RedisConnection.Endpoint(host: "10.0.0.6", port: 6380))
        #expect(SentinelLocator.announcedPrimary(channel: "+promoted-slave", payload: payload, masterName: "orders") == nil)
        #expect(SentinelLocator.announcedPrimary(channel: "+sdown", payload: payload, masterName: "payments") == nil)
    }
}
