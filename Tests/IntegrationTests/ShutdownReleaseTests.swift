import EventLoop
import Foundation
import Glibc
@testable import Proxy
import Testing
import TestSupport

/// A server that shut down leaves nothing behind in the process: each worker's loop (its
/// epoll and wake-up descriptors and its buffers) is freed once the server is, whatever its
/// connections were doing when the grace period ended. An embedding, or a test run, starts
/// and stops many servers in one process.
@Suite(.serialized) struct ShutdownReleaseTests {
    /// Runs a server through `body`, stops it, and returns weak references to its loops.
    func loopsAfterShutdown(upstream: TestUpstream, yaml: String, _ body: (ProxyHarness) throws -> Void) throws -> [() -> EventLoop?] {
        let harness = try ProxyHarness(upstream: upstream, yaml: yaml)
        let weakLoops = harness.server.loops.map { loop in { [weak loop] in loop } }
        try body(harness)
        harness.stop()
        return weakLoops
    }

    /// Sends a guarded POST on `client` and waits until the upstream has it.
    func sendGuardedRequestUpstream(_ client: TestClient, _ upstream: TestUpstream) throws {
        try client.send(post(key: uniqueKey()))
        #expect(eventually(seconds: 5) { upstream.requests.count == 1 }, "the request never reached the upstream")
    }

    func expectFreed(_ loops: [() -> EventLoop?], _ comment: Comment) {
        // The loop threads ended in `stop()`; what is left are references, released at once
        // or never, so a short wait only covers the harness's own last release.
        let freed = eventually(seconds: 2) { loops.allSatisfy { $0() == nil } }
        #expect(freed, comment)
    }

    /// The stores a worker can hold: each brings its own connections and timers.
    static let stores = [
        "store: { backend: memory }\n",
        "store: { backend: redis, redis: { url: \"\(StoreKind.redisURL)\", key_prefix: \"\(StoreKind.uniquePrefix())\" } }\n",
        "store: { backend: redis, redis: { url: \"\(StoreKind.redisURL)\", key_prefix: \"\(StoreKind.uniquePrefix())\", replay_cache_max_bytes: 1048576 } }\n",
    ]

    @Test(arguments: ["hold", "release"], stores)
    func aGuardedRequestStillUpstreamAtShutdownDoesNotKeepTheLoop(indeterminate: String, store: String) throws {
        let upstream = TestUpstream { _ in .silent }
        defer { upstream.stop() }
        let yaml = "shutdown_grace: 200ms\nidempotency: { indeterminate: \(indeterminate) }\n" + store
        let loops = try loopsAfterShutdown(upstream: upstream, yaml: yaml) { harness in
            let client = try harness.client()
            try sendGuardedRequestUpstream(client, upstream)
        }
        expectFreed(loops, "a worker's loop outlived its server")
    }

    @Test(arguments: stores)
    func aClientThatLeftWhileItsGuardedRequestIsUpstreamDoesNotKeepTheLoop(store: String) throws {
        let upstream = TestUpstream { _ in .silent }
        defer { upstream.stop() }
        let loops = try loopsAfterShutdown(upstream: upstream, yaml: "shutdown_grace: 200ms\n" + store) { harness in
            do {
                try sendGuardedRequestUpstream(try harness.client(), upstream)
            }  // the client's socket closes here: the exchange goes on detached
            usleep(100_000)
        }
        expectFreed(loops, "a worker's loop outlived its server after its client left")
    }

    @Test(arguments: stores)
    func anIdleAndAPassThroughConnectionDoNotKeepTheLoop(store: String) throws {
        let upstream = TestUpstream { _ in .silent }
        defer { upstream.stop() }
        let loops = try loopsAfterShutdown(upstream: upstream, yaml: "shutdown_grace: 200ms\n" + store) { harness in
            _ = try harness.client()
            let client = try harness.client()
            try client.send("GET /v1/p HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(eventually(seconds: 5) { upstream.requests.count == 1 }, "the request never reached the upstream")
        }
        expectFreed(loops, "a worker's loop outlived its server")
    }

    /// Redis replies withheld, so the claim is still outstanding when `shutdown_grace` ends.
    /// Force-close lets the client go and fails the claim (`.disconnected`); even under
    /// `store.unavailable: pass_through` nothing is forwarded then (nobody waits for the answer,
    /// and the loop is stopping), and the worker and its loop are freed.
    @Test(arguments: ["reject", "pass_through"])
    func aClaimOutstandingAtForcedShutdownIsNotForwardedAndLeavesNothingBehind(unavailable: String) throws {
        let relay = try FaultRelay(targetPort: StoreKind.redisPort)
        defer { relay.stop() }
        let upstream = TestUpstream { _ in .respond(status: 200, headers: [], body: Array("ok".utf8)) }
        defer { upstream.stop() }
        let yaml = "shutdown_grace: 200ms\n"
            + "store: { backend: redis, unavailable: \(unavailable), redis: { url: \"\(relay.url)\", key_prefix: \"\(StoreKind.uniquePrefix())\", command_timeout: 5s } }\n"
        var weakLoops: [() -> EventLoop?] = []
        var connectionsBefore = 0
        do {
            let harness = try ProxyHarness(upstream: upstream, yaml: yaml)
            weakLoops = harness.server.loops.map { loop in { [weak loop] in loop } }
            // Wait for the proxy's Redis connection (readiness through the admin endpoint).
            #expect(eventually(seconds: 5) { (try? harness.admin("/readyz"))?.status == 200 }, "never ready")
            relay.withholdReplies = true
            let before = relay.commandsRelayed
            let client = try harness.client()
            try client.send(post(key: uniqueKey()))
            #expect(eventually(seconds: 5) { relay.commandsRelayed > before }, "the claim never reached Redis")
            connectionsBefore = upstream.connectionCount
            harness.server.shutdown()
            withExtendedLifetime(client) {}
        }
        // Every loop thread has ended; give the upstream's accept thread a moment.
        usleep(300_000)
        #expect(upstream.connectionCount == connectionsBefore, "a connection to the upstream was opened after the grace period ended (pass_through forward during force-close)")
        let freed = eventually(seconds: 2) { weakLoops.allSatisfy { $0() == nil } }
        #expect(freed, "a worker's loop outlived its server")
    }

    static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            return comm.trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }

    /// With `logging.access_log` on, each server starts a writer thread for the access log
    /// (`BackgroundWriter`); shutdown ends it.
    @Test func aServerThatShutDownLeavesNoAccessLogThread() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let before = Self.threads(named: "idemproxy-log")
        for _ in 0..<3 {
            let harness = try ProxyHarness(accessLogFD: fds[1])
            _ = try harness.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
            harness.stop()
        }
        usleep(200_000)
        let after = Self.threads(named: "idemproxy-log")
        #expect(after == before, "access-log writer threads left running: \(before) before, \(after) after three servers shut down")
    }
}
