import Foundation
import Testing
import TestSupport

/// deploy/grafana/idemproxy-dashboard.json queries only metrics a running proxy exposes, and
/// covers the families an operator needs.
@Suite struct DashboardTests {
    static let path = "deploy/grafana/idemproxy-dashboard.json"

    /// Every string under a key named `key`, anywhere in a JSON tree.
    static func strings(_ key: String, in value: Any) -> [String] {
        if let object = value as? [String: Any] {
            return object.flatMap { name, item in
                (name == key ? [item as? String].compactMap { $0 } : []) + strings(key, in: item)
            }
        }
        if let array = value as? [Any] { return array.flatMap { strings(key, in: $0) } }
        return []
    }

    static func dashboard() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(try repositoryFile(path).utf8))
    }

    /// The PromQL of every panel target.
    static func expressions() throws -> [String] {
        strings("expr", in: try dashboard())
    }

    static func metricNames(in text: String) throws -> Set<String> {
        let pattern = try Regex("idemproxy_[a-z_]+")
        return Set(text.matches(of: pattern).map { String(text[$0.range]) })
    }

    /// The series names `/metrics` of a running proxy exposes, from its `# TYPE` lines (a
    /// histogram `x` is `x_bucket`, `x_sum` and `x_count`), and the family of each.
    static func exposedNames() throws -> [String: String] {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let client = try TestClient(port: try #require(proxy.server.adminPort))
        try client.send("GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 200)
        var names: [String: String] = [:]
        for line in response.bodyText.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let fields = line.split(separator: " ")
            guard fields.count == 4 else { Issue.record("malformed: \(line)"); continue }
            let family = String(fields[2])
            if fields[3] == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] { names[family + suffix] = family }
            } else {
                names[family] = family
            }
        }
        return names
    }

    @Test func dashboardIsAGrafanaDashboard() throws {
        let dashboard = try #require(try Self.dashboard() as? [String: Any])
        #expect(dashboard["title"] as? String == "idemproxy")
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let graphs = panels.filter { $0["type"] as? String != "row" }
        #expect(graphs.count >= 10)
        for panel in graphs {
            let title = panel["title"] as? String ?? "?"
            let targets = panel["targets"] as? [[String: Any]] ?? []
            #expect(!targets.isEmpty, "\(title) has no query")
            #expect(panel["gridPos"] is [String: Any], "\(title) has no position")
        }
    }

    @Test func everyQueriedMetricIsExposed() throws {
        let exposed = try Self.exposedNames()
        #expect(exposed.count > 10, "\(exposed)")
        // Panel queries and the template variable's label_values query.
        let queries = try Self.expressions() + Self.strings("definition", in: try Self.dashboard())
        for query in queries {
            for name in try Self.metricNames(in: query) {
                #expect(exposed[name] != nil, "\(name) is not in /metrics (query: \(query))")
            }
        }
    }

    @Test func dashboardCoversTheMetricFamilies() throws {
        let exposed = try Self.exposedNames()
        let expressions = try Self.expressions()
        var families: Set<String> = []
        for expression in expressions {
            for name in try Self.metricNames(in: expression) { families.insert(exposed[name] ?? name) }
        }
        let required: Set<String> = [
            "idemproxy_requests_total",
            "idemproxy_request_duration_seconds",
            "idemproxy_upstream_duration_seconds",
            "idemproxy_store_duration_seconds",
            "idemproxy_lost_leases_total",
            "idemproxy_store_write_retries_total",
            "idemproxy_store_pending_writes",
            "idemproxy_store_resets_total",
            "idemproxy_connections_active",
        ]
        #expect(required.subtracting(families).isEmpty, "not on the dashboard: \(required.subtracting(families).sorted())")

        // Replays, the store's failure outcomes and latency quantiles by outcome and operation.
        #expect(expressions.contains { $0.contains("outcome=\"replayed\"") })
        #expect(expressions.contains { $0.contains("store_unavailable") })
        for (quantile, label) in [("0.5", "outcome"), ("0.99", "outcome"), ("0.5", "operation"), ("0.99", "operation")] {
            #expect(expressions.contains {
                $0.hasPrefix("histogram_quantile(\(quantile),") && $0.contains("by (\(label), le)")
            }, "p\(quantile) by \(label)")
        }
    }
}
