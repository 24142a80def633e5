import Foundation
import Glibc
import Testing
import TestSupport

/// Sentinel (SPEC §6 `store.redis.sentinel`) against real processes: a primary, two replicas
/// and a Sentinel. A client keeps sending requests with new keys, retrying each one until it
/// succeeds, while the primary fails over (`SENTINEL FAILOVER`, or `kill -9`). Traffic must
/// resume on the new primary within 10 s without a restart, and with `min_replicas_acked: 1`
/// no key may execute twice.
@Suite(.serialized) struct SentinelFailoverTests {
    /// The servers of one test.
    final class Topology: @unchecked Sendable {
        let primary: RedisServer
        let replicas: [RedisServer]
        let sentinels: [RedisSentinel]
        var sentinel: RedisSentinel { sentinels[0] }

        init(sentinels count: Int = 1) throws {
            primary = try RedisServer()
            replicas = [try RedisServer(replicaOf: primary.port), try RedisServer(replicaOf: primary.port)]
            for replica in replicas {
                try #require(eventually(seconds: 10) { (try? replica.command("INFO replication"))?.contains("master_link_status:up") == true })
            }
            // Started after the replicas are attached, so its first look at the primary finds them.
            let primaryPort = primary.port
            sentinels = try (0..<count).map { _ in try RedisSentinel(monitoring: primaryPort) }
            for sentinel in sentinels {
                try #require(eventually(seconds: 15) {
                    guard let text = try? sentinel.command("SENTINEL replicas \(RedisSentinel.masterName)") else { return false }
                    return self.replicas.allSatisfy { text.contains("\($0.port)") } && !text.contains("disconnected")
                }, "a Sentinel never saw both replicas")
            }
        }

        func server(on port: UInt16) -> RedisServer? {
            ([primary] + replicas).first { $0.port == port }
        }

    }

    func proxy(_ topology: Topology, origin: PerKeyOrigin) throws -> ProxyHarness {
        try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: """
            store:
              backend: redis
              redis:
                url: redis://ignored.invalid:6379/0
                sentinel: { master: \(RedisSentinel.masterName), nodes: [\(topology.sentinels.map { "\"127.0.0.1:\($0.port)\"" }.joined(separator: ", "))] }
                min_replicas_acked: 1
                replica_ack_timeout: 200ms
                command_timeout: 500ms
                key_prefix: "\(StoreKind.uniquePrefix())"

            """)
    }

    @Test(arguments: ["SENTINEL FAILOVER", "kill -9 of the primary"])
    func trafficResumesOnTheNewPrimaryAndNoKeyRunsTwice(_ fault: String) throws {
        let topology = try Topology()
        let origin = PerKeyOrigin()
        let proxy = try proxy(topology, origin: origin)
        defer { proxy.stop() }
        let client = RetryingClient(proxy: proxy)
        defer { client.stop() }
        try #require(eventually(seconds: 10) { client.keys.count >= 5 }, "no traffic before the failover")

        let faultAt = Date()
        if fault == "SENTINEL FAILOVER" {
            #expect(try topology.sentinel.command("SENTINEL FAILOVER \(RedisSentinel.masterName)").hasPrefix("+OK"))
        } else {
            topology.primary.kill()
        }
        // The Sentinel names another server...
        #expect(eventually(seconds: 10) { (try? topology.sentinel.primaryPort()).flatMap { $0 } != topology.primary.port },
                "no failover happened")
        let newPrimaryPort = try #require(try topology.sentinel.primaryPort())
        let newPrimary = try #require(topology.server(on: newPrimaryPort))
        #expect(newPrimaryPort != topology.primary.port)
        // ...and requests succeed again through it, without restarting the proxy: claims run
        // there (a replica never runs a client's EVALSHA).
        #expect(eventually(seconds: 10) {
            (try? newPrimary.command("INFO commandstats"))?.contains("cmdstat_evalsha") == true
        }, "no claim ran on the new primary")
        // A planned failover is followed on Sentinel's announcement, not when the old primary
        // is demoted (about 10 s later).
        let switchedAfter = Date().timeIntervalSince(faultAt)
        if fault == "SENTINEL FAILOVER" { #expect(switchedAfter < 5, "claims reached the new primary \(switchedAfter) s after the failover") }
        let switched = client.keys.count
        #expect(eventually(seconds: 10) { client.keys.count >= switched + 5 }, "no traffic after the failover")
        let recovery = client.longestPause(since: faultAt)
        #expect(recovery < 10, "traffic paused for \(recovery) s around the failover")
        #expect(try newPrimary.command("ROLE").contains("master"))
        // Metrics by node follow the move.
        let metrics = try proxy.admin("/metrics").bodyText
        #expect(metrics.contains("idemproxy_redis_connections_ready{node=\"127.0.0.1:\(newPrimaryPort)\"} 1\n"), "\(metrics)")
        #expect(metrics.contains("idemproxy_redis_connections_ready{node=\"127.0.0.1:\(topology.primary.port)\"} 0\n"), "\(metrics)")
        client.stop()

        // Exactly once: every key the client saw succeed ran once, and none ran twice.
        #expect(origin.duplicated.isEmpty, "executed more than once: \(origin.duplicated)")
        for key in client.keys { #expect(origin.count(key) == 1, "\(key) ran \(origin.count(key)) times") }
        print("sentinel failover (\(fault)): longest pause in traffic \(String(format: "%.3f", recovery)) s; \(client.keys.count) keys, none twice")
    }

    /// The Sentinel the proxy listens to dies; a failover then announced by another one is
    /// still followed within seconds (the watcher moved on), well before the old primary is
    /// demoted.
    @Test func aFailoverAnnouncedByAnotherSentinelIsFollowed() throws {
        let topology = try Topology(sentinels: 2)
        let origin = PerKeyOrigin()
        let proxy = try proxy(topology, origin: origin)
        defer { proxy.stop() }
        let client = RetryingClient(proxy: proxy)
        defer { client.stop() }
        try #require(eventually(seconds: 10) { client.keys.count >= 5 }, "no traffic before the failover")
        topology.sentinels[0].kill()
        usleep(1_500_000)  // the watcher notices (PING every second) and moves to the other
        let faultAt = Date()
        #expect(try topology.sentinels[1].command("SENTINEL FAILOVER \(RedisSentinel.masterName)").hasPrefix("+OK"))
        var newPrimaryPort: UInt16?
        #expect(eventually(seconds: 10) {
            newPrimaryPort = (try? topology.sentinels[1].primaryPort()).flatMap { $0 }
            return newPrimaryPort != nil && newPrimaryPort != topology.primary.port
        }, "no failover happened")
        let newPrimary = try #require(newPrimaryPort.flatMap { topology.server(on: $0) })
        #expect(eventually(seconds: 10) {
            (try? newPrimary.command("INFO commandstats"))?.contains("cmdstat_evalsha") == true
        }, "no claim ran on the new primary")
        let switchedAfter = Date().timeIntervalSince(faultAt)
        #expect(switchedAfter < 5, "claims reached the new primary \(switchedAfter) s after the failover")
        client.stop()
        #expect(origin.duplicated.isEmpty, "executed more than once: \(origin.duplicated)")
    }
}
