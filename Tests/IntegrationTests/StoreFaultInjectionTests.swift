import Foundation
import Glibc
import Testing
import TestSupport

/// SPEC §4 under faults injected on real sockets: a `FaultRelay` sits between the proxy and a
/// real redis-server and drops connections, withholds replies or resets after a command. The
/// proxy is never told; what it does is read back from the origin's log, the client's
/// responses, Redis itself and the metrics.
@Suite(.serialized) struct StoreFaultInjectionTests {
    /// A private Redis behind a relay, and a proxy that talks to Redis through the relay.
    struct Rig {
        let redis: RedisServer
        let relay: FaultRelay
        let origin: CountingOrigin
        let proxy: ProxyHarness
        let prefix: String

        init(indeterminate: String = "hold", lease: String = "2s", delay: Double = 0) throws {
            redis = try RedisServer()
            relay = try FaultRelay(targetPort: redis.port)
            origin = CountingOrigin()
            origin.delay = delay
            prefix = StoreKind.uniquePrefix()
            proxy = try ProxyHarness(
                upstream: TestUpstream(behaviour: origin.responder),
                yaml: """
                store: { backend: redis, redis: { url: "\(relay.url)", key_prefix: "\(prefix)", command_timeout: 200ms } }
                idempotency: { lease: \(lease), indeterminate: \(indeterminate) }

                """)
            // Faults are injected into an established connection, not into the first connect.
            proxy.waitForRedis()
            usleep(100_000)
        }

        func stop() {
            proxy.stop()
            relay.stop()
        }

        /// Idempotency records in Redis (the store's marker key is not one).
        func recordCount() throws -> Int {
            let reply = try redis.command("KEYS \(prefix)*")
            return reply.components(separatedBy: "\r\n").filter { $0.hasPrefix(prefix) && !$0.hasSuffix("{marker}") }.count
        }

        /// Retries `key` until the proxy replays it (409 in-flight while the write is retried).
        func replayEventually(_ key: String, within seconds: Double = 5) throws -> TestClient.Response? {
            let started = Date()
            while Date().timeIntervalSince(started) < seconds {
                let response = try proxy.request(post(key: key))
                if response.value("idempotent-replayed") == "true" { return response }
                // While the write is retried a retry finds the claim (409) or, during a blip,
                // no store at all (503); never a second execution and never outcome-unknown.
                #expect(response.status == 409 || response.status == 503, "got \(response.status)")
                #expect(!response.bodyText.contains("outcome-unknown"), "a store blip turned a completed request unknown")
                usleep(100_000)
            }
            return nil
        }
    }

    @Test(arguments: ["hold", "release"])
    func aCompletionWhoseConnectionIsCutIsRetriedAndStored(_ indeterminate: String) throws {
        let rig = try Rig(indeterminate: indeterminate, delay: 0.6)
        defer { rig.stop() }
        let key = uniqueKey()
        let original = try startOriginal(rig.proxy, key: key, settle: 250_000)
        // The claim is in; the store goes away before the origin answers and stays away
        // while the completion is first tried.
        rig.relay.refuseNew = true
        rig.relay.cutAll()
        let response = try original.readResponse()
        #expect(response.status == 201)
        usleep(400_000)
        rig.relay.refuseNew = false
        let replay = try rig.replayEventually(key)
        #expect(replay?.bodyText == response.bodyText)
        #expect(rig.origin.count == 1)
        #expect(rig.proxy.server.metrics.storeWriteRetries.load(ordering: .relaxed) >= 1)
        #expect(rig.proxy.server.metrics.lostLeases.load(ordering: .relaxed) == 0)
    }

    @Test func aClaimWhoseReplyIsWithheldAndWhoseConnectionResetsIsReleased() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let key = uniqueKey()
        rig.relay.withholdReplies = true
        let lost = try rig.proxy.request(post(key: key))
        #expect(lost.status == 503)
        #expect(lost.bodyText.contains("store-unavailable"))
        // The claim reached Redis although its reply never came back.
        // The claim reached Redis although its reply never came back. The release sent right
        // after the timeout reaches Redis too, but its reply is withheld as well: the proxy
        // cannot know it worked, so the release stays pending until Redis answers again.
        usleep(300_000)  // past the release's own deadline
        #expect(rig.proxy.server.metrics.pendingStoreWrites.load(ordering: .relaxed) == 1)
        rig.relay.cutAll()
        rig.relay.withholdReplies = false
        // Once the proxy reconnects, its compare-and-set release removes the claim.
        var released = false
        for _ in 0..<60 where !released {
            usleep(50_000)
            released = try rig.recordCount() == 0
        }
        #expect(released, "the possibly-written claim was not released")
        for _ in 0..<40 where rig.proxy.server.metrics.pendingStoreWrites.load(ordering: .relaxed) != 0 { usleep(50_000) }
        #expect(rig.proxy.server.metrics.pendingStoreWrites.load(ordering: .relaxed) == 0)
        let retry = try rig.proxy.request(post(key: key))
        #expect(retry.status == 201)
        #expect(rig.origin.count == 1)
        #expect(rig.proxy.server.metrics.deferredReleases.load(ordering: .relaxed) >= 1)
    }

    @Test func aClaimFollowedByAResetIsReleased() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let key = uniqueKey()
        // Let the connection settle (scripts loaded, reset check done) before arming.
        #expect(try rig.proxy.request(post(key: uniqueKey())).status == 201)
        usleep(200_000)  // its completion is written after the client has the response
        let before = try rig.recordCount()
        rig.relay.resetAfterCommands(1)
        rig.relay.refuseNew = true
        let lost = try rig.proxy.request(post(key: key))
        #expect(lost.status == 503)
        // The claim was written (the reset came after it), and only the deferred release can
        // remove it once the proxy is connected again.
        usleep(200_000)
        #expect(try rig.recordCount() == before + 1)
        rig.relay.refuseNew = false
        var executed = false
        for _ in 0..<40 where !executed {
            usleep(50_000)
            let retry = try rig.proxy.request(post(key: key))
            #expect(retry.status == 201 || retry.status == 409 || retry.status == 503, "got \(retry.status)")
            executed = retry.status == 201
        }
        #expect(executed, "the retry never executed: the claim stayed in flight")
        #expect(rig.origin.count == 2)
    }

    @Test func aRefreshDuringBlipsKeepsTheClaim() throws {
        let rig = try Rig(lease: "1s", delay: 3.0)
        defer { rig.stop() }
        let key = uniqueKey()
        let original = try startOriginal(rig.proxy, key: key, settle: 200_000)
        for _ in 0..<4 {
            usleep(400_000)
            rig.relay.refuseNew = true
            rig.relay.cutAll()
            usleep(150_000)
            rig.relay.refuseNew = false
        }
        // 2.4 s in: well past two leases, the claim must still be held by its owner (a retry
        // may find the store reconnecting first: 503, then 409).
        var during = try rig.proxy.request(post(key: key))
        for _ in 0..<20 where during.status == 503 {
            usleep(50_000)
            during = try rig.proxy.request(post(key: key))
        }
        #expect(during.status == 409)
        #expect(during.bodyText.contains("in-flight"))
        #expect(try original.readResponse().status == 201)
        #expect(try rig.replayEventually(key) != nil)
        #expect(rig.origin.count == 1)
        #expect(rig.proxy.server.metrics.lostLeases.load(ordering: .relaxed) == 0)
    }
}
