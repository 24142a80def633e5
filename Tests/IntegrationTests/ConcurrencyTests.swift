import Foundation
import Proxy
import Glibc
import Idempotency
import Testing
import TestSupport

/// Many identical requests at once, on one instance and on two instances sharing Redis.
@Suite(.serialized) struct ConcurrencyTests {
    static func fire(_ count: Int, ports: [UInt16], request: String) -> [TestClient.Response?] {
        let results = concurrently(count) { index -> Result<TestClient.Response, TestClient.ClientError> in
            do {
                let client = try TestClient(port: ports[index % ports.count], timeoutSeconds: 20)
                try client.send(request)
                return .success(try client.readResponse())
            } catch {
                return .failure(error as? TestClient.ClientError ?? .closed)
            }
        }
        for case .failure(let error) in results { Issue.record("a client failed: \(error)") }
        return results.map { try? $0.get() }
    }

    @Test(arguments: StoreKind.allCases)
    func hundredDuplicatesUnderRejectExecuteOnce(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 0.5
        let proxy = try ProxyHarness(upstream: TestUpstream(behaviour: origin.responder), yaml: store.yaml(), workers: 2)
        defer { proxy.stop() }
        let responses = Self.fire(100, ports: [proxy.port], request: post(key: uniqueKey()))
        let statuses = responses.map { $0?.status ?? 0 }
        if statuses.contains(0) {
            // Say where a lost request stood, from the proxy's own counters.
            let counts = RequestOutcomeSummary.of(proxy)
            Issue.record("a request got no answer; proxy outcomes: \(counts), open connections: \(proxy.server.metrics.activeConnections.load(ordering: .relaxed))")
        }
        #expect(origin.count == 1)
        #expect(statuses.filter { $0 == 201 }.count == 1)
        #expect(statuses.filter { $0 == 409 }.count == 99, "statuses: \(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")
    }

    @Test(arguments: StoreKind.allCases)
    func hundredDuplicatesUnderWaitAllGetTheSameResponse(_ store: StoreKind) throws {
        let origin = CountingOrigin()
        origin.delay = 0.5
        let proxy = try ProxyHarness(
            upstream: TestUpstream(behaviour: origin.responder),
            yaml: store.yaml() + "idempotency: { concurrent: wait, wait_timeout: 10s }\n", workers: 2)
        defer { proxy.stop() }
        let responses = Self.fire(100, ports: [proxy.port], request: post(key: uniqueKey()))
        #expect(origin.count == 1)
        #expect(responses.allSatisfy { $0?.status == 201 })
        #expect(Set(responses.map { $0?.bodyText ?? "" }).count == 1)
        #expect(responses.filter { $0?.value("idempotent-replayed") == "true" }.count == 99)
    }

    @Test func twoInstancesOnOneRedisExecuteOnce() throws {
        let origin = CountingOrigin()
        origin.delay = 0.5
        let upstream = TestUpstream(behaviour: origin.responder)
        let yaml = StoreKind.redis.yaml() + "idempotency: { concurrent: wait, wait_timeout: 10s }\n"
        let a = try ProxyHarness(upstream: upstream, yaml: yaml)
        let b = try ProxyHarness(upstream: upstream, yaml: yaml)
        defer { a.server.shutdown(); b.server.shutdown(); upstream.stop() }
        let responses = Self.fire(40, ports: [a.port, b.port], request: post(key: uniqueKey()))
        #expect(origin.count == 1)
        #expect(responses.allSatisfy { $0?.status == 201 })
        #expect(Set(responses.map { $0?.bodyText ?? "" }).count == 1)
    }

    /// An owner that dies mid-request leaves an in-flight record whose lease runs out; the next
    /// claim turns it into `unknown` (hold) instead of executing again.
    @Test func expiredLeaseOfADeadOwnerBecomesUnknown() throws {
        let origin = CountingOrigin()
        origin.delay = 5
        let upstream = TestUpstream(behaviour: origin.responder)
        let yaml = StoreKind.redis.yaml() + "idempotency: { lease: 1s }\nshutdown_grace: 0s\n"
        let owner = try ProxyHarness(upstream: upstream, yaml: yaml)
        let key = uniqueKey()
        // Kept open to the end: the original client does not disconnect.
        let client = try startOriginal(owner, key: key, settle: 300_000)
        defer { withExtendedLifetime(client) {} }
        // The owner's loops stop without settling: from the store's view the process died.
        owner.server.shutdown()
        usleep(1_300_000)
        let survivor = try ProxyHarness(upstream: upstream, yaml: yaml)
        defer { survivor.server.shutdown(); upstream.stop() }
        let retry = try survivor.request(post(key: key))
        #expect(retry.status == 409)
        #expect(retry.bodyText.contains("outcome-unknown"))
        #expect(origin.count == 1)
    }

    @Test func expiredLeaseUnderReleaseIsClaimedAgain() throws {
        let store = MemoryStore()
        let origin = CountingOrigin()
        origin.delay = 5
        let upstream = TestUpstream(behaviour: origin.responder)
        let yaml = "idempotency: { lease: 1s, indeterminate: release }\nshutdown_grace: 0s\n"
        let owner = try ProxyHarness(upstream: upstream, yaml: yaml, memoryStore: store)
        let key = uniqueKey()
        // Kept open to the end: the original client does not disconnect.
        let client = try startOriginal(owner, key: key, settle: 300_000)
        defer { withExtendedLifetime(client) {} }
        owner.server.shutdown()
        usleep(1_300_000)
        origin.delay = 0
        let survivor = try ProxyHarness(upstream: upstream, yaml: yaml, memoryStore: store)
        defer { survivor.server.shutdown(); upstream.stop() }
        let retry = try survivor.request(post(key: key))
        #expect(retry.status == 201)
        #expect(origin.count == 2)
    }
}

enum RequestOutcomeSummary {
    static func of(_ proxy: ProxyHarness) -> String {
        RequestOutcome.allCases.map { "\($0.label)=\(proxy.server.metrics.value($0))" }.joined(separator: " ")
    }
}
