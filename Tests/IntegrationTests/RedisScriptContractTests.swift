import Foundation
import Idempotency
import RedisStore
import Testing
import TestSupport

/// The Redis scripts' SPEC §4 contracts, read back from Redis itself: a record never expires
/// before its lease deadline, and a write retried after a lost reply reports success.
@Suite(.serialized) struct RedisScriptContractTests {
    let fingerprint = [UInt8](repeating: 7, count: 32)

    func pttl(_ key: String) throws -> Int {
        let url = StoreKind.redisURL.replacingOccurrences(of: "redis://", with: "").split(separator: "/")[0].split(separator: ":")
        let client = try TestClient(port: UInt16(url[1])!, timeoutSeconds: 2)
        try client.send("PTTL \(key)\r\n")
        try client.fill()
        let text = String(decoding: client.buffer, as: UTF8.self)
        return Int(text.dropFirst().prefix { !$0.isNewline }) ?? -99
    }

    /// Redis' clock (`TIME`), in whole seconds as milliseconds: what a record of an earlier
    /// version measured its absolute lease deadline against.
    static func redisNowMillis(_ f: RedisStoreTests.Fixture) throws -> UInt64 {
        try #require(f.await { (reply: @escaping (UInt64?) -> Void) in
            f.connection.send(["TIME"]) { result in
                guard case .success(.array(let parts)) = result, let seconds = parts.first?.text.flatMap(UInt64.init) else { return reply(nil) }
                reply(seconds * 1000)
            }
        } ?? nil)
    }

    @Test func theKeyLivesAtLeastAsLongAsItsLease() throws {
        let f = try RedisStoreTests.Fixture()
        let key = f.key()
        let owner = OwnerToken.random()
        #expect(f.await { f.store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: .seconds(30), ttl: .seconds(2), expiredLease: .hold, completion: $0) } == .success(.claimed))
        let first = try pttl(key)
        #expect(first > 25_000, "PTTL \(first)")
        let other = f.key()
        #expect(f.await { f.store.claim(key: other, owner: owner, fingerprint: fingerprint, lease: .seconds(1), ttl: .seconds(2), expiredLease: .hold, completion: $0) } == .success(.claimed))
        // lease + ttl: the record outlives its lease deadline by ttl.
        let second = try pttl(other)
        #expect(second > 2_000 && second <= 3_000, "PTTL \(second)")
        // The lease is the key's expiry less ttl: a refresh sets it to the new lease + ttl,
        // out past the old expiry…
        #expect(f.await { f.store.refreshLease(key: other, owner: owner, lease: .seconds(20), ttl: .seconds(2), completion: $0) } == .success(true))
        #expect(try pttl(other) > 21_000)
        // …or back, when the new lease is shorter (the record still outlives it by ttl).
        #expect(f.await { f.store.refreshLease(key: other, owner: owner, lease: .seconds(1), ttl: .seconds(2), completion: $0) } == .success(true))
        let shortened = try pttl(other)
        #expect(shortened > 2_000 && shortened <= 3_000, "PTTL \(shortened)")
        // An operator sees the lease left, not the key's whole life.
        let inspected = f.await { f.store.inspect(key: other, completion: $0) }
        guard case .success(let inspection?) = inspected else { Issue.record("inspect: \(inspected)"); return }
        #expect(inspection.leaseRemainingMillis > 0 && inspection.leaseRemainingMillis <= 1_000, "\(inspection.leaseRemainingMillis)")
    }

    @Test func aRetriedCompletionOrMarkReportsSuccessOnlyToItsOwner() throws {
        let f = try RedisStoreTests.Fixture()
        let key = f.key(), unknownKey = f.key()
        let owner = OwnerToken.random(), stranger = OwnerToken.random()
        let response = StoredResponse(status: 201, body: Array("{}".utf8))
        #expect(f.await { f.store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: $0) } == .success(.claimed))
        #expect(f.await { f.store.complete(key: key, owner: owner, response: response, ttl: .seconds(60), completion: $0) } == .success(true))
        #expect(f.await { f.store.complete(key: key, owner: owner, response: response, ttl: .seconds(60), completion: $0) } == .success(true))
        #expect(f.await { f.store.complete(key: key, owner: stranger, response: response, ttl: .seconds(60), completion: $0) } == .success(false))
        #expect(f.await { f.store.markUnknown(key: key, owner: owner, ttl: .seconds(60), completion: $0) } == .success(false))

        #expect(f.await { f.store.claim(key: unknownKey, owner: owner, fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: $0) } == .success(.claimed))
        #expect(f.await { f.store.markUnknown(key: unknownKey, owner: owner, ttl: .seconds(60), completion: $0) } == .success(true))
        #expect(f.await { f.store.markUnknown(key: unknownKey, owner: owner, ttl: .seconds(60), completion: $0) } == .success(true))
        #expect(f.await { f.store.complete(key: unknownKey, owner: owner, response: response, ttl: .seconds(60), completion: $0) } == .success(false))
        #expect(f.await { f.store.markUnknown(key: unknownKey, owner: stranger, ttl: .seconds(60), completion: $0) } == .success(false))
    }

    /// A claim written by an earlier version holds an absolute deadline in Redis `TIME`
    /// milliseconds: a claim by this version still respects it while it runs, and holds the
    /// key as unknown once it has passed.
    @Test func aClaimOfAnEarlierVersionKeepsItsAbsoluteDeadline() throws {
        let f = try RedisStoreTests.Fixture()
        let live = f.key(), expired = f.key()
        let redisNow = try Self.redisNowMillis(f)
        for (key, deadline) in [(live, redisNow + 60_000), (expired, redisNow - 1_000)] {
            let old = RecordCodec.encode(IdempotencyRecord(state: .inFlight, fingerprint: fingerprint, owner: OwnerToken.random(), leaseDeadlineMillis: deadline))
            let stored = f.await { done in f.connection.send([Array("SET".utf8), Array(key.utf8), old, Array("PX".utf8), Array("60000".utf8)], completion: done) }
            #expect(stored == .success(.status("OK")))
        }
        let stillRunning = f.await { f.store.claim(key: live, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: $0) }
        guard case .success(.existing(let running))? = stillRunning else { Issue.record("\(String(describing: stillRunning))"); return }
        #expect(running.state == .inFlight)
        let held = f.await { f.store.claim(key: expired, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: $0) }
        guard case .success(.existing(let unknown))? = held else { Issue.record("\(String(describing: held))"); return }
        #expect(unknown.state == .unknown)
    }

    /// An operator's purge without force leaves a claim whose lease runs, in either form of
    /// deadline, and deletes every other record; a forced one deletes the claim too.
    @Test func aPurgeWithoutForceLeavesOnlyARunningLeaseAlone() throws {
        let f = try RedisStoreTests.Fixture()
        let running = f.key(), lapsed = f.key(), done = f.key(), oldRunning = f.key(), oldLapsed = f.key(), persisted = f.key()
        let owner = OwnerToken.random()
        let claim = { (key: String, lease: Duration) in
            f.await { f.store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: lease, ttl: .seconds(60), expiredLease: .hold, completion: $0) }
        }
        #expect(claim(running, .seconds(5)) == .success(.claimed))
        // A claim whose key lost its expiry behind idemproxy's back: a lease without end, as
        // `inspect` reads it, so neither a purge nor a claim takes it for lapsed.
        #expect(claim(persisted, .seconds(5)) == .success(.claimed))
        #expect(f.await { reply in f.connection.send([Array("PERSIST".utf8), Array(persisted.utf8)], completion: reply) } == .success(.integer(1)))
        #expect(f.await { f.store.inspect(key: persisted, completion: $0) }.flatMap { try? $0.get() }??.isLiveClaim == true)
        #expect(claim(lapsed, .milliseconds(50)) == .success(.claimed))
        #expect(claim(done, .seconds(5)) == .success(.claimed))
        #expect(f.await { f.store.complete(key: done, owner: owner, response: StoredResponse(status: 201, body: []), ttl: .seconds(60), completion: $0) } == .success(true))
        let redisNow = try Self.redisNowMillis(f)
        for (key, deadline) in [(oldRunning, redisNow + 60_000), (oldLapsed, redisNow - 1_000)] {
            let old = RecordCodec.encode(IdempotencyRecord(state: .inFlight, fingerprint: fingerprint, owner: owner, leaseDeadlineMillis: deadline))
            let stored = f.await { reply in f.connection.send([Array("SET".utf8), Array(key.utf8), old, Array("PX".utf8), Array("120000".utf8)], completion: reply) }
            #expect(stored == .success(.status("OK")))
        }
        usleep(150_000)
        let purge = { (key: String, force: Bool) in f.await { f.store.purge(key: key, evenInFlight: force, completion: $0) } }
        guard case .success(.existing(let held))? = claim(persisted, .seconds(5)) else { Issue.record("the persisted claim was taken"); return }
        #expect(held.state == .inFlight)
        #expect(purge(persisted, false) == .success(.stillInFlight(leaseRemainingMillis: .max)))
        for key in [running, oldRunning] {
            guard case .success(.stillInFlight(let lease))? = purge(key, false) else { Issue.record("a running lease was not left alone"); continue }
            #expect(lease > 0 && lease <= 60_000, "lease \(lease)")
            #expect(f.await { f.store.get(key: key, completion: $0) }.flatMap { try? $0.get() }?.state == .inFlight)
        }
        for key in [lapsed, done, oldLapsed] {
            #expect(purge(key, false) == .success(.purged))
            #expect(purge(key, false) == .success(.absent))
        }
        #expect(purge(running, true) == .success(.purged))
        #expect(purge(oldRunning, true) == .success(.purged))
    }

    /// The common claim is the one native command, with no script and no clock: the claim is
    /// on the key with PX lease + ttl, and its deadline field says the lease is the expiry.
    /// On a Redis of its own, so no other test's scripts are counted.
    @Test func aFreeKeyIsClaimedByOneNativeCommand() throws {
        let redis = try RedisServer()
        let f = try RedisStoreTests.Fixture(url: redis.url)
        let key = f.key()
        let scriptsRun = { () throws -> Int in
            // "cmdstat_evalsha:calls=12,usec=…"; no line for a command never called.
            try redis.command("INFO commandstats").split(whereSeparator: \.isNewline)
                .filter { $0.hasPrefix("cmdstat_eval:") || $0.hasPrefix("cmdstat_evalsha:") }
                .map { Int($0.drop { $0 != "=" }.dropFirst().prefix { $0.isNumber }) ?? -1 }
                .reduce(0, +)
        }
        let before = try scriptsRun()
        #expect(f.await { f.store.claim(key: key, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: $0) } == .success(.claimed))
        #expect(try scriptsRun() == before)
        let stored = f.await { f.store.get(key: key, completion: $0) }
        guard case .success(let record?)? = stored else { Issue.record("\(String(describing: stored))"); return }
        #expect(record.leaseDeadlineMillis == RecordCodec.leaseByExpiry | 60_000)
        let left = try redis.command("PTTL \(key)")
        let millis = Int(left.dropFirst().prefix { $0.isNumber }) ?? -1
        #expect(millis > 60_000 && millis <= 65_000, "PTTL \(left)")
    }
}
