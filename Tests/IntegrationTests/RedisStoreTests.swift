import EventLoop
import Foundation
import Idempotency
import RedisClient
import RedisStore
import Testing
import TestSupport

/// The Redis store and its hiredis connection against a real redis-server, driven by an
/// event loop on the test thread.
@Suite(.serialized) struct RedisStoreTests {
    /// A loop plus a connected store on the shared test Redis.
    final class Fixture {
        let loop: EventLoop
        let connection: RedisConnection
        let store: RedisIdempotencyStore
        let prefix = "st\(UInt32.random(in: 0...UInt32.max)):"

        init(url: String = StoreKind.redisURL, commandTimeoutMillis: UInt64 = 500, replayCacheBytes: Int = 0) throws {
            let parts = url.replacingOccurrences(of: "redis://", with: "").split(separator: "/")[0].split(separator: ":")
            loop = try EventLoop()
            connection = RedisConnection(configuration: .init(host: String(parts[0]), port: UInt16(parts[1])!, commandTimeoutMillis: commandTimeoutMillis), loop: loop)
            store = RedisIdempotencyStore(connection: connection, replayCacheBytes: replayCacheBytes)
            connection.connect()
            try #require(run(until: { self.connection.state == .ready }))
            _ = run(seconds: 0.1)  // let SCRIPT LOAD replies arrive
        }

        /// Runs the loop until `done` or the deadline; true if `done` became true.
        @discardableResult
        func run(seconds: Double = 3, until done: () -> Bool = { false }) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if done() { return true }
                loop.runOnce(maxWaitMillis: 20)
            }
            return done()
        }

        func await<T>(_ start: (@escaping (T) -> Void) -> Void) -> T? {
            var value: T?
            start { value = $0 }
            run(until: { value != nil })
            return value
        }

        func key() -> String { storageKey(prefix: prefix, scope: nil, key: uniqueKey()) }

        /// A command still outstanding holds the store, which holds the connection: closing it
        /// fails what is left and lets all of it go.
        deinit { connection.close() }
    }

    let fingerprint = [UInt8](repeating: 7, count: 32)

    @Test func claimCompleteAndReadBack() throws {
        let f = try Fixture()
        let key = f.key()
        let owner = OwnerToken.random()
        let claim = f.await { done in f.store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done) }
        #expect(claim == .success(.claimed))
        let response = StoredResponse(status: 201, headers: [HeaderPair(name: "Content-Type", value: "application/json")], body: Array("{}".utf8))
        let completed = f.await { done in f.store.complete(key: key, owner: owner, response: response, ttl: .seconds(60), completion: done) }
        #expect(completed == .success(true))
        let again = f.await { done in f.store.claim(key: key, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done) }
        guard case .success(.existing(let record))? = again else { Issue.record("expected the stored record, got \(String(describing: again))"); return }
        #expect(record.state == .completed)
        #expect(record.fingerprint == fingerprint)
        #expect(record.response == response)
    }

    @Test func staleOwnersCompleteIsRefused() throws {
        let f = try Fixture()
        let key = f.key()
        let stale = OwnerToken.random()
        _ = f.await { done in f.store.claim(key: key, owner: stale, fingerprint: fingerprint, lease: .milliseconds(100), ttl: .seconds(60), expiredLease: .release, completion: done) }
        usleep(200_000)
        // The lease ran out and a new owner took the key over.
        let fresh = OwnerToken.random()
        let takeover = f.await { done in f.store.claim(key: key, owner: fresh, fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .release, completion: done) }
        #expect(takeover == .success(.claimed))
        let late = f.await { done in f.store.complete(key: key, owner: stale, response: StoredResponse(status: 500), ttl: .seconds(60), completion: done) }
        #expect(late == .success(false))
        #expect(f.await { done in f.store.release(key: key, owner: stale, completion: done) } == .success(false))
        #expect(f.await { done in f.store.complete(key: key, owner: fresh, response: StoredResponse(status: 201), ttl: .seconds(60), completion: done) } == .success(true))
    }

    @Test func expiredLeaseBecomesUnknownUnderHold() throws {
        let f = try Fixture()
        let key = f.key()
        _ = f.await { done in f.store.claim(key: key, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .milliseconds(50), ttl: .seconds(60), expiredLease: .hold, completion: done) }
        usleep(120_000)
        let next = f.await { done in f.store.claim(key: key, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done) }
        guard case .success(.existing(let record))? = next else { Issue.record("expected the existing record"); return }
        #expect(record.state == .unknown)
    }

    @Test func refreshExtendsTheLease() throws {
        let f = try Fixture()
        let key = f.key()
        let owner = OwnerToken.random()
        _ = f.await { done in f.store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: .milliseconds(150), ttl: .seconds(60), expiredLease: .hold, completion: done) }
        for _ in 0..<4 {
            usleep(80_000)
            #expect(f.await { done in f.store.refreshLease(key: key, owner: owner, lease: .milliseconds(150), ttl: .seconds(60), completion: done) } == .success(true))
        }
        let next = f.await { done in f.store.claim(key: key, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done) }
        guard case .success(.existing(let record))? = next else { Issue.record("expected the existing record"); return }
        #expect(record.state == .inFlight, "a refreshed lease must not expire")
    }

    @Test func oneKibibyteResponseCostsLessThan1Point4KibibytesInRedis() throws {
        let f = try Fixture()
        let key = f.key()
        let owner = OwnerToken.random()
        _ = f.await { done in f.store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done) }
        let response = StoredResponse(status: 201, headers: [HeaderPair(name: "Content-Type", value: "application/json"), HeaderPair(name: "Date", value: "Sun, 29 Nov 2026 16:00:00 GMT")], body: [UInt8](repeating: 0x61, count: 1024))
        _ = f.await { done in f.store.complete(key: key, owner: owner, response: response, ttl: .seconds(60), completion: done) }
        let usage = f.await { done in f.connection.send(["MEMORY", "USAGE", key]) { done($0) } }
        guard case .success(.integer(let bytes))? = usage else { Issue.record("MEMORY USAGE failed: \(String(describing: usage))"); return }
        // 1.4 KiB = 1433 bytes, including Redis' own per-key overhead.
        #expect(bytes < 1434, "record costs \(bytes) bytes")
    }

    @Test func scriptsAreReloadedAfterTheCacheIsFlushed() throws {
        let f = try Fixture()
        _ = f.await { done in f.connection.send(["SCRIPT", "FLUSH"]) { done($0) } }
        let claim = f.await { done in f.store.claim(key: f.key(), owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done) }
        #expect(claim == .success(.claimed))
    }

    /// A script called by SHA after Redis lost its script cache answers NOSCRIPT; the store
    /// re-sends the same arguments behind EVAL and the source. Each script (owner, response
    /// section, TTL) must arrive intact, so the record read back is the one written, and the
    /// next calls go by SHA again once the scripts are loaded.
    @Test func aScriptCalledAfterTheCacheIsFlushedRunsFromItsSource() throws {
        let f = try Fixture()
        let response = StoredResponse(
            status: 201, headers: [HeaderPair(name: "Content-Type", value: "application/json"), HeaderPair(name: "X-Big", value: String(repeating: "v", count: 700))],
            body: Array(repeating: 0x7B, count: 3000))
        for round in 0..<3 {
            let key = f.key()
            let owner = OwnerToken.random()
            let claim = f.await { done in f.store.claim(key: key, owner: owner, fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done) }
            #expect(claim == .success(.claimed))
            if round < 2 { _ = f.await { done in f.connection.send(["SCRIPT", "FLUSH"]) { done($0) } } }
            let refreshed = f.await { done in f.store.refreshLease(key: key, owner: owner, lease: .seconds(9), ttl: .seconds(60), completion: done) }
            #expect(refreshed == .success(true), "round \(round)")
            if round < 2 { _ = f.await { done in f.connection.send(["SCRIPT", "FLUSH"]) { done($0) } } }
            let completed = f.await { done in f.store.complete(key: key, owner: owner, response: response, ttl: .seconds(60), completion: done) }
            #expect(completed == .success(true), "round \(round)")
            let read = f.await { done in f.store.claim(key: key, owner: OwnerToken.random(), fingerprint: fingerprint, lease: .seconds(5), ttl: .seconds(60), expiredLease: .hold, completion: done) }
            guard case .success(.existing(let record))? = read else { Issue.record("round \(round): \(String(describing: read))"); continue }
            #expect(record.state == .completed)
            #expect(record.owner == owner)
            #expect(record.response == response)
            _ = f.run(seconds: 0.1)  // the SCRIPT LOAD replies
        }
    }

    @Test func commandsFailFastWhileDisconnectedAndRecoverAfterRestart() throws {
        let redis = try RedisServer()
        let f = try Fixture(url: redis.url, commandTimeoutMillis: 300)
        redis.kill()
        let down = f.await { done in f.store.get(key: f.key(), completion: done) }
        guard case .failure? = down else { Issue.record("expected a failure with Redis down"); return }
        #expect(f.connection.state == .disconnected)
        try redis.start()
        let started = Date()
        #expect(f.run(seconds: 3, until: { f.connection.state == .ready }))
        #expect(Date().timeIntervalSince(started) < 2)
        let up = f.await { done in f.store.get(key: f.key(), completion: done) }
        #expect(up == .success(nil))
    }

    @Test func selectAndAuthComeFromTheURL() throws {
        let redis = try RedisServer()
        _ = try redis.command("CONFIG SET requirepass s3cret")
        let loop = try EventLoop()
        let connection = RedisConnection(configuration: .init(host: "127.0.0.1", port: redis.port, password: "s3cret", database: 3), loop: loop)
        connection.connect()
        var reply: Result<RedisValue, RedisClientError>?
        connection.send(["SET", "marker", "1"]) { reply = $0 }
        let deadline = Date().addingTimeInterval(3)
        while reply == nil && Date() < deadline { loop.runOnce(maxWaitMillis: 20) }
        #expect(reply == .success(.status("OK")))
        let check = try redis.command("AUTH s3cret\r\nSELECT 3\r\nEXISTS marker")
        #expect(check.hasSuffix(":1\r\n"))
    }
}
