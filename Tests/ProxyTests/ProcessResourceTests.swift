import Foundation
import Glibc
import Testing
import TestSupport

/// Resource bounds of the real binary in its own process: running out of file descriptors
/// backs off accepting instead of spinning (SPEC §5), and the memory store's bound keeps the
/// process's memory bounded (SPEC §6 `store.memory.max_bytes`).
@Suite(.serialized) struct ProcessResourceTests {
    /// The real binary with 64 descriptors, and 80 idle clients on its port: more than it
    /// has descriptors for, so the rest wait in the backlog.
    func proxyOutOfDescriptors(upstream: TestUpstream, admin: String) throws -> (proxy: ProxyProcess, clients: [TestClient]) {
        try #require(FileManager.default.isExecutableFile(atPath: ProxyProcess.binary), "build the idemproxy executable first (swift build)")
        let proxy = try ProxyProcess(inFrontOf: upstream, admin: admin, openFiles: 64)
        try #require(proxy.waitUntilServing(), "the proxy did not start")
        var clients: [TestClient] = []
        for _ in 0..<80 { clients.append(try TestClient(port: proxy.port, timeoutSeconds: 2)) }
        usleep(500_000)
        return (proxy, clients)
    }

    /// CPU ticks the proxy uses over the next 2 s, and whether that is under 20% of one core.
    func ticksOverTwoSeconds(_ proxy: ProxyProcess) -> (used: Int, underAFifth: Bool) {
        let before = proxy.cpuTicks
        usleep(2_000_000)
        let used = proxy.cpuTicks - before
        return (used, used * 100 < Int(sysconf(Int32(_SC_CLK_TCK))) * 2 * 20)
    }

    @Test func outOfDescriptorsTheProxyWaitsInsteadOfSpinning() throws {
        let upstream = TestUpstream()
        defer { upstream.stop() }
        // The idle clients hold the descriptors until they are dropped from `setup`.
        var setup = try proxyOutOfDescriptors(upstream: upstream, admin: "")
        let proxy = setup.proxy
        defer { proxy.stop() }
        let (used, underAFifth) = ticksOverTwoSeconds(proxy)
        #expect(underAFifth, "the proxy used \(used) ticks in 2 s with its descriptors exhausted")
        setup.clients.removeAll()
        #expect(proxy.waitUntilServing(seconds: 4), "the proxy did not serve again once the clients left")
    }

    /// SPEC §5 for the admin listener too: with the descriptors exhausted, a probe waiting in
    /// its backlog does not make the loop spin, and it is served once descriptors are free.
    @Test func outOfDescriptorsAnAdminConnectionInTheBacklogDoesNotSpinTheLoop() throws {
        let upstream = TestUpstream()
        defer { upstream.stop() }
        let adminPort = RedisServer.freePort()
        // The idle clients hold the descriptors until they are dropped from `setup`.
        var setup = try proxyOutOfDescriptors(upstream: upstream, admin: "127.0.0.1:\(adminPort)")
        let proxy = setup.proxy
        defer { proxy.stop() }
        let quiet = ticksOverTwoSeconds(proxy).used
        // One admin probe (a readiness check) while the descriptors are exhausted.
        let probe = try TestClient(port: adminPort, timeoutSeconds: 2)
        usleep(500_000)
        let (used, underAFifth) = ticksOverTwoSeconds(proxy)
        #expect(underAFifth, "with an admin connection in the backlog the proxy used \(used) ticks in 2 s (\(quiet) without it)")
        setup.clients.removeAll()
        // Descriptors free again: the waiting probe is accepted and answered.
        try probe.send("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        #expect(try probe.readResponse().status == 200)
    }

    @Test func theMemoryStoreBoundKeepsTheProcessSmall() throws {
        try #require(FileManager.default.isExecutableFile(atPath: ProxyProcess.binary), "build the idemproxy executable first (swift build)")
        let body = [UInt8](repeating: 0x72, count: 8 << 10)
        let upstream = TestUpstream(recordBodies: false) { _ in .respond(status: 201, headers: [], body: body) }
        defer { upstream.stop() }
        let proxy = try ProxyProcess(inFrontOf: upstream, extraYAML: """
            store: { backend: memory, memory: { max_bytes: 16MiB } }
            idempotency: { scope: { header: "" } }
            """)
        defer { proxy.stop() }
        try #require(proxy.waitUntilServing())
        let before = proxy.residentKiB
        // 20,000 unique keys with 8 KiB responses: 160 MiB of responses if nothing bounded them.
        let client = try TestClient(port: proxy.port, timeoutSeconds: 5)
        var full = 0, stored = 0
        for index in 0..<20_000 {
            try client.send("POST /v1/p HTTP/1.1\r\nHost: a\r\nIdempotency-Key: rss-\(index)\r\nContent-Length: 2\r\n\r\n{}")
            let response = try client.readResponse(requestMethod: "POST", discardBody: true)
            if response.status == 503 { full += 1 } else if response.status == 201 { stored += 1 }
        }
        let growth = proxy.residentKiB - before
        #expect(stored > 1000 && stored < 2100, "stored \(stored)")
        #expect(full == 20_000 - stored)
        #expect(growth < 48 << 10, "RSS grew by \(growth) KiB with a 16 MiB store bound")
    }
}
