import Foundation
import Glibc
import Testing
import TestSupport

/// `/records` against a store that answers slowly: the operator gets the store's own answer,
/// however long its timeouts allow, never a connection closed with nothing said.
@Suite(.serialized) struct AdminSlowStoreTests {
    /// A `command_timeout` longer than the admin connection's head-read bound (5 s): the
    /// inspection times out in the store, which says so with a `503`, rather than the
    /// connection being closed first with no answer at all.
    @Test func aStoreSlowerThanTheHeadReadBoundStillAnswersTheOperator() throws {
        let relay = try FaultRelay(targetPort: StoreKind.redisPort)
        defer { relay.stop() }
        let proxy = try proxyThrough(relay, commandTimeout: "6s")
        defer { proxy.stop() }
        relay.withholdReplies = true
        defer { relay.withholdReplies = false }
        let client = try TestClient(port: try #require(proxy.server.adminPort), timeoutSeconds: 10)
        try client.send("GET /records?key=k&scope=Bearer+caller-1 HTTP/1.1\r\nHost: admin\r\n\r\n")
        let started = Date()
        var response: TestClient.Response?
        var failure = ""
        do { response = try client.readResponse() } catch { failure = "\(error)" }
        #expect(response?.status == 503, "no answer after \(Date().timeIntervalSince(started)) s: \(failure)")
        #expect(response?.bodyText.contains("the store did not answer") == true, "\(response?.bodyText ?? "")")
    }
}
