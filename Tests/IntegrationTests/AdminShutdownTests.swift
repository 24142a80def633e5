import Foundation
import Glibc
import Testing
import TestSupport

/// A graceful shutdown treats an admin request it has taken as an in-flight exchange (SPEC §5:
/// "finish in-flight exchanges, up to shutdown_grace"). A purge against Redis takes at least its
/// settle wait (about 850 ms); cut without an answer, it would leave the operator not knowing
/// whether the record went.
@Suite(.serialized) struct AdminShutdownTests {
    /// Sends a DELETE to `/records`, shuts the proxy down (grace `grace`) once the purge is in
    /// its settle wait, and returns what the operator got: the answer, or why there was none.
    static func purgeDuringAShutdown(grace: String) throws -> (response: TestClient.Response?, failure: String) {
        let proxy = try ProxyHarness(yaml: StoreKind.redis.yaml() + "shutdown_grace: \(grace)\n")
        defer { proxy.upstream.stop() }
        proxy.waitForRedis()
        let client = try TestClient(port: try #require(proxy.server.adminPort), timeoutSeconds: 10)
        try client.send("DELETE /records?key=k&scope=Bearer+x HTTP/1.1\r\nHost: admin\r\n\r\n")
        usleep(150_000)
        #expect(proxy.server.adminConnections == 1)
        let shutdown = proxy.shutdownInBackground()
        defer {
            shutdown.wait(seconds: 10)
            #expect(shutdown.isDone)
        }
        do { return (try client.readResponse(requestMethod: "DELETE"), "") } catch { return (nil, "\(error)") }
    }

    /// Within the grace, the purge finishes and answers before the proxy stops.
    @Test func aShutdownWhileAPurgeWaitsOnTheStoreLetsItAnswer() throws {
        let (response, failure) = try Self.purgeDuringAShutdown(grace: "5s")
        #expect(response?.status == 404, "the DELETE got \(response.map { "\($0.status) \($0.bodyText)" } ?? "no answer: \(failure)")")
    }

    /// A grace shorter than the purge: at its end the operator is told the outcome is unknown,
    /// not cut off.
    @Test func aPurgeStillWaitingWhenTheGraceEndsIsAnswered503() throws {
        let (response, failure) = try Self.purgeDuringAShutdown(grace: "200ms")
        #expect(response?.status == 503, "the DELETE got \(response.map { "\($0.status) \($0.bodyText)" } ?? "no answer: \(failure)")")
        #expect(response?.bodyText.contains("\"outcome\":\"unknown\"") == true)
    }
}
