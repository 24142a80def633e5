import Foundation
import Testing
import TestSupport

/// `min_replicas_acked` (SPEC §6) against a real primary, with and without a real replica: a
/// claim too few replicas confirmed is released and answered 503 with nothing forwarded,
/// whatever `store.unavailable` says; with the replica attached, records reach it before the
/// request goes upstream.
@Suite(.serialized) struct ReplicaAcknowledgementTests {
    func yaml(_ redis: RedisServer, unavailable: String, prefix: String, ackTimeout: String = "50ms", commandTimeout: String = "500ms") -> String {
        "store: { backend: redis, unavailable: \(unavailable), redis: { url: \"\(redis.url)\", key_prefix: \"\(prefix)\", command_timeout: \(commandTimeout), min_replicas_acked: 1, replica_ack_timeout: \(ackTimeout) } }\n"
    }

    /// A replica of `primary` that acknowledges writes. For a while after the sync a replica is
    /// listed online but acknowledges no new write (WAIT answers 0, and claims would rightly get
    /// 503): this waits until a write is confirmed.
    func attachedReplica(of primary: RedisServer) throws -> RedisServer {
        let replica = try RedisServer(replicaOf: primary.port)
        var linked = false
        for _ in 0..<60 {
            if try replica.command("INFO replication").contains("master_link_status:up"),
               try primary.command("SET link-probe 1\r\nWAIT 1 100").contains(":1") { linked = true; break }
            usleep(50_000)
        }
        try #require(linked)
        return replica
    }

    /// Record keys under `prefix` (`prefix{sha256}`), not the store's `prefix{marker}`.
    func recordPattern(_ prefix: String) -> String { prefix + "{[0-9a-f]*" }

    @Test(arguments: ["reject", "pass_through"])
    func aClaimNoReplicaConfirmedIsReleasedAndNothingIsForwarded(_ unavailable: String) throws {
        let primary = try RedisServer()
        let origin = CountingOrigin()
        let prefix = StoreKind.uniquePrefix()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: yaml(primary, unavailable: unavailable, prefix: prefix))
        defer { proxy.stop() }
        let response = try proxy.request(post(key: uniqueKey()))
        #expect(response.status == 503)
        #expect(response.bodyText.contains("store-unavailable"))
        #expect(origin.count == 0)
        // The claim was written on the primary, then released: nothing is left to block a retry.
        var keys = ""
        for _ in 0..<40 {
            keys = try primary.command("KEYS \(recordPattern(prefix))")
            if keys.hasPrefix("*0") { break }
            usleep(50_000)
        }
        #expect(keys.hasPrefix("*0"), "\(keys)")
    }

    @Test func withAReplicaAttachedRecordsReachItFirst() throws {
        let primary = try RedisServer()
        let replica = try attachedReplica(of: primary)
        let origin = CountingOrigin()
        let prefix = StoreKind.uniquePrefix()
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: yaml(primary, unavailable: "reject", prefix: prefix))
        defer { proxy.stop() }
        let key = uniqueKey()
        let first = try proxy.request(post(key: key))
        #expect(first.status == 201, "\(first.bodyText)")
        let retry = try proxy.request(post(key: key))
        #expect(retry.value("idempotent-replayed") == "true")
        #expect(origin.count == 1)
        #expect(try replica.command("KEYS \(recordPattern(prefix))").hasPrefix("*1"))
    }

    /// A purge, like a claim, counts only once replicas hold it: with no replica to confirm the
    /// delete and its announcement, `DELETE /records` does not answer 204 (a failover could
    /// bring the record back); with the replica attached it does, and the replica holds neither
    /// the record nor a purge log without the announcement.
    @Test func aPurgeIsDoneOnlyOnceReplicasHoldIt() throws {
        let primary = try RedisServer()
        let replica = try attachedReplica(of: primary)
        let origin = CountingOrigin()
        let prefix = StoreKind.uniquePrefix()
        // A generous WAIT: six of them must succeed on a busy machine before the replica leaves.
        // The completion of the last request below is written after its answer is sent, so its
        // WAIT may still be out when the replica leaves; WAIT blocks the connection, and the
        // purge's commands then queue behind it for up to one replica_ack_timeout before their
        // own WAIT runs its full one. The command timeout covers both, so the purge is refused
        // for the missing replica (what this test is about), not for the store's slowness.
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: yaml(primary, unavailable: "reject", prefix: prefix, ackTimeout: "400ms", commandTimeout: "3s"))
        defer { proxy.stop() }
        let key = uniqueKey()
        #expect(try proxy.request(post(key: key)).status == 201)
        #expect(try proxy.admin("DELETE", "/records?key=\(key)&scope=Bearer+caller-1").status == 204)
        #expect(try replica.command("KEYS \(recordPattern(prefix))").hasPrefix("*0"))
        #expect(try replica.command("XLEN \(prefix){purges}") == ":1\r\n")
        #expect(try proxy.request(post(key: key)).value("idempotent-replayed") == nil)
        #expect(origin.count == 2)

        // The replica gone: the delete is applied on the primary but not confirmed.
        _ = try replica.command("REPLICAOF NO ONE")
        var detached = false
        for _ in 0..<60 {
            if try primary.command("INFO replication").contains("connected_slaves:0") { detached = true; break }
            usleep(50_000)
        }
        try #require(detached)
        let refused = try proxy.admin("DELETE", "/records?key=\(key)&scope=Bearer+caller-1")
        #expect(refused.status == 503)
        #expect(refused.bodyText.contains("may or may not have been purged"), "\(refused.bodyText)")
        #expect(refused.bodyText.contains("failover"), "\(refused.bodyText)")
        #expect(try primary.command("KEYS \(recordPattern(prefix))").hasPrefix("*0"))
        // Announced all the same: every replay cache drops the record.
        #expect(try primary.command("XLEN \(prefix){purges}") == ":2\r\n")
    }

    /// WAIT blocks the connection it is sent on: with replicas missing, one outstanding WAIT
    /// at a time answers every claim made meanwhile, so a burst gets its 503s within a few
    /// replica_ack_timeouts instead of queueing one full timeout per claim behind each other.
    @Test func oneOutstandingWaitAnswersABurstOfClaims() throws {
        let primary = try RedisServer()
        let origin = CountingOrigin()
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder), yaml: yaml(primary, unavailable: "reject", prefix: StoreKind.uniquePrefix()))
        defer { proxy.stop() }
        _ = try primary.command("CONFIG RESETSTAT")
        let started = Date()
        let statuses = concurrently(12) { _ in (try? proxy.request(post(key: uniqueKey())).status) ?? 0 }
        let elapsed = Date().timeIntervalSince(started)
        #expect(statuses.allSatisfy { $0 == 503 }, "\(statuses)")
        #expect(origin.count == 0)
        #expect(elapsed < 1.5, "\(elapsed) s")
        let stats = try primary.command("INFO commandstats")
        let waits = stats.split(separator: "\r\n").first { $0.hasPrefix("cmdstat_wait:") }.flatMap { line in
            line.split(separator: ",").first?.split(separator: "=").last.flatMap { Int($0) }
        }
        #expect((waits ?? 99) <= 6, "\(stats)")
    }
}
