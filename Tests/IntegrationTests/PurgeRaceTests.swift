import Foundation
import Glibc
import Idempotency
import Synchronization
import Testing
import TestSupport

/// A purge without `force` never deletes a live claim, even one made while the purge is under
/// way: the store decides and deletes in one step (`IdempotencyStore.purge`).
@Suite(.serialized) struct PurgeRaceTests {
    /// The scope of `post(key:)`'s requests, form-encoded for `/records`.
    static let encodedScope = "Bearer+caller-1"

    /// A repeated purge of an absent key (what the CLI advises after "may or may not have been
    /// purged") reaches Redis first; the client's retry claims the key and runs upstream before
    /// the purge's reply arrives (a relay holds Redis' replies back, stretching what is one
    /// round trip in production). Were the purge a look followed by a `DEL`, the look would find
    /// nothing and the `DEL` would delete the live claim: a 204, and the next duplicate would
    /// run upstream beside the original.
    @Test func aPurgeWithoutForceNeverDeletesAClaimMadeWhileItRuns() throws {
        let prefix = StoreKind.uniquePrefix()
        let origin = CountingOrigin()
        origin.delay = 3
        let serving = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: StoreKind.redis.yaml(prefix: prefix) + "idempotency: { lease: 30s }\n")
        defer { serving.stop() }
        let relay = try FaultRelay(targetPort: StoreKind.redisPort)
        defer { relay.stop() }
        let operatorProxy = try proxyThrough(relay, prefix: prefix, commandTimeout: "4s")
        defer { operatorProxy.stop() }
        let key = uniqueKey()

        relay.withholdReplies = true
        let purgeStatus = Atomic<Int>(0)
        let purger = Thread {
            let status = (try? operatorProxy.admin("DELETE", "/records?key=\(key)&scope=\(Self.encodedScope)").status) ?? -1
            purgeStatus.store(status, ordering: .releasing)
        }
        purger.start()
        usleep(300_000)  // the purge ran in Redis (no record); its reply is held back
        let original = try startOriginal(serving, key: key, settle: 300_000)  // claims, runs upstream
        #expect(try serving.admin("/records?key=\(key)&scope=\(Self.encodedScope)").status == 200)
        relay.withholdReplies = false
        for _ in 0..<60 where purgeStatus.load(ordering: .acquiring) == 0 { usleep(50_000) }

        #expect(purgeStatus.load(ordering: .acquiring) == 404, "the purge found a record it should not have, or deleted the live claim")
        let duplicate = try serving.client()
        try duplicate.send(post(key: key))
        let second = try duplicate.readResponse()
        #expect(second.status == 409, "the duplicate got \(second.status) while the original still runs")
        #expect(try original.readResponse().status == 201)
        #expect(origin.count == 1, "the upstream executed the request \(origin.count) times")
    }

    /// The store's purge itself, on each store: a live claim is left alone and reported with
    /// its lease unless `evenInFlight`; a settled record and an absent one are purged and
    /// reported absent.
    @Test(arguments: [StoreKind.memory, .redis])
    func thePurgeLeavesALiveClaimAloneUnlessForced(_ kind: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 2
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: kind.yaml() + "idempotency: { lease: 30s }\n")
        defer { proxy.stop() }
        if kind == .redis { proxy.waitForRedis() }
        let key = uniqueKey()
        let path = "/records?key=\(key)&scope=\(Self.encodedScope)"
        #expect(try proxy.admin("DELETE", path).status == 404)
        let original = try startOriginal(proxy, key: key)
        let refused = try proxy.admin("DELETE", path)
        #expect(refused.status == 409)
        #expect(refused.bodyText.contains("\"lease_expires_in_ms\":"))
        #expect(try proxy.admin(path).status == 200, "the refused purge deleted the claim")
        #expect(try proxy.admin("DELETE", path + "&force=1").status == 204)
        #expect(try proxy.admin(path).status == 404)
        _ = try? original.readResponse()
    }
}
