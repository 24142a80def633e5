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
        // A refresh moves the expiry out to the new lease deadline + ttl when it would end first…
        #expect(f.await { f.store.refreshLease(key: other, owner: owner, lease: .seconds(20), ttl: .seconds(2), completion: $0) } == .success(true))
        #expect(try pttl(other) > 21_000)
        // …and keeps a longer TTL as it is.
        #expect(f.await { f.store.refreshLease(key: other, owner: owner, lease: .seconds(1), ttl: .seconds(2), completion: $0) } == .success(true))
        #expect(try pttl(other) > 20_000)
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
}
