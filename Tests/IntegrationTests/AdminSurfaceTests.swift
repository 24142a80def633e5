import Foundation
import Glibc
import Idempotency
import Testing
import TestSupport

/// The operator's surface at its edges: a scope of raw bytes reached through percent-encoding,
/// pipelined admin requests, and the whole /metrics text against the Prometheus format.
@Suite(.serialized) struct AdminSurfaceTests {
    /// The scope is hashed from the exact bytes received, obs-text included (SPEC §3); a
    /// percent-encoded byte in `scope=` reaches the same record.
    @Test func aPercentEncodedObsTextScopeFindsItsRecord() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let key = uniqueKey()
        var request = Array("POST /p HTTP/1.1\r\nHost: a\r\nIdempotency-Key: \(key)\r\nAuthorization: Bearer ".utf8)
        request += [0xFF, 0xFE]
        request += Array("\r\nContent-Length: 2\r\n\r\n{}".utf8)
        let client = try proxy.client()
        try client.send(request)
        #expect(try client.readResponse(requestMethod: "POST").status == 200)
        #expect(try proxy.admin("/records?key=\(key)&scope=Bearer+%FF%FE").status == 200)
    }

    /// Pipelined admin requests: the first is answered, then the connection closes (every answer
    /// closes its connection). Neither hangs.
    @Test func pipelinedAdminRequestsGetOneAnswerThenClose() throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let client = try TestClient(port: try #require(proxy.server.adminPort), timeoutSeconds: 3)
        try client.send("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\nGET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        let first = try client.readResponse()
        #expect(first.status == 200)
        #expect(first.value("connection") == "close")
        #expect(client.isClosedByPeer())
    }

    /// The whole /metrics text parsed as Prometheus text format 0.0.4: every sample belongs to
    /// the family its HELP and TYPE announced, each family announced once, names and label
    /// syntax valid, values parse as floats, histogram buckets cumulative and ending in +Inf.
    @Test func theMetricsTextIsWellFormed() throws {
        let proxy = try ProxyHarness(yaml: "store: { backend: memory }\n")
        defer { proxy.stop() }
        _ = try proxy.request(post(key: uniqueKey()))
        _ = try proxy.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET")
        let text = try proxy.admin("/metrics").bodyText
        #expect(text.hasSuffix("\n"))
        var announced: [String: String] = [:]
        var current: String?
        var seenFamilies = Set<String>()
        let name = try Regex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if line.hasPrefix("# HELP ") {
                let family = String(line.dropFirst(7).prefix { $0 != " " })
                #expect(!seenFamilies.contains(family), "family \(family) announced twice")
                seenFamilies.insert(family)
                current = family
                continue
            }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                #expect(parts.count == 4)
                #expect(String(parts[2]) == current)
                announced[String(parts[2])] = String(parts[3])
                continue
            }
            #expect(!line.hasPrefix("#"), "\(line)")
            let metric = String(line.prefix { $0 != "{" && $0 != " " })
            #expect(metric.wholeMatch(of: name) != nil, "\(line)")
            let family = try #require(current)
            let type = announced[family]
            let ok = metric == family || (type == "histogram" && [family + "_bucket", family + "_sum", family + "_count"].contains(metric))
            #expect(ok, "sample \(metric) under family \(family)")
            let value = String(line.split(separator: " ").last ?? "")
            #expect(Double(value) != nil || ["+Inf", "-Inf", "NaN"].contains(value), "\(line)")
        }
    }
}
