import Foundation
import Glibc
import Testing
import TestSupport

/// A graceful shutdown treats an admin request it has taken as an in-flight exchange (SPEC §5:
/// "finish in-flight exchanges, up to shutdown_grace"). A purge against Redis takes at least its
/// settle wait (about 850 ms); cut without an answer, it would leave the operator not knowing
/// whether the record went.
@Suite(.serialized) struct AdminShutdownTests {
    /// Sends a DELETE to `/records` and waits until the purge is in its settle wait.
    static func purgeUnderWay(_ proxy: ProxyHarness) throws -> TestClient {
        for _ in 0..<100 where proxy.server.metrics.redisConnectionsReady.load(ordering: .relaxed) < 1 { usleep(20_000) }
        let client = try TestClient(port: try #require(proxy.server.adminPort), timeoutSeconds: 10)
        try client.send("DELETE /records?key=k&scope=Bearer+x HTTP/1.1\r\nHost: admin\r\n\r\n")
        usleep(150_000)
        #expect(proxy.server.adminConnections == 1)
        return client
    }

    /// Within the grace, the purge finishes and answers before the proxy stops.
    @Test func aShutdownWhileAPurgeWaitsOnTheStoreLetsItAnswer() throws {
        let proxy = try ProxyHarness(yaml: StoreKind.redis.yaml() + "shutdown_grace: 5s\n")
        let client = try Self.purgeUnderWay(proxy)
        let shutdown = proxy.shutdownInBackground()
        var failure = ""
        let response: TestClient.Response?
        do { response = try client.readResponse(requestMethod: "DELETE") } catch { failure = "\(error)"; response = nil }
        #expect(response?.status == 404, "the DELETE got \(response.map { "\($0.status) \($0.bodyText)" } ?? "no answer: \(failure)")")
        shutdown.wait(seconds: 10)
        #expect(shutdown.isDone)
        proxy.upstream.stop()
    }

    /// A grace shorter than the purge: at its end the operator is told the outcome is unknown,
    /// not cut off.
    @Test func aPurgeStillWaitingWhenTheGraceEndsIsAnswered503() throws {
        let proxy = try ProxyHarness(yaml: StoreKind.redis.yaml() + "shutdown_grace: 200ms\n")
        let client = try Self.purgeUnderWay(proxy)
        let shutdown = proxy.shutdownInBackground()
        var failure = ""
        let response: TestClient.Response?
        do { response = try client.readResponse(requestMethod: "DELETE") } catch { failure = "\(error)"; response = nil }
        #expect(response?.status == 503, "the DELETE got \(response.map { "\($0.status) \($0.bodyText)" } ?? "no answer: \(failure)")")
        #expect(response?.bodyText.contains("\"outcome\":\"unknown\"") == true)
        shutdown.wait(seconds: 10)
        #expect(shutdown.isDone)
        proxy.upstream.stop()
    }
}
