import Observability
import RedisClient
import Synchronization

/// Redis metrics by node (SPEC §8; Sentinel and Cluster mean more than one server): each
/// command's latency and failures, and how many connections to the node are ready. Entries
/// appear as connections reach nodes and stay (a node that left shows 0 ready).
final class RedisNodeMetrics: RedisNodeStatsRegistry {
    final class Node: RedisNodeStats {
        let duration = Histogram()
        let errors = Atomic<Int>(0)
        let ready = Atomic<Int>(0)

        func commandFinished(nanoseconds: UInt64, failed: Bool) {
            duration.observe(nanoseconds: nanoseconds)
            if failed { errors.add(1, ordering: .relaxed) }
        }

        func connectionReady(_ isReady: Bool) {
            ready.add(isReady ? 1 : -1, ordering: .relaxed)
        }
    }

    private let nodes = Mutex<[String: Node]>([:])

    func stats(forNode node: String) -> any RedisNodeStats {
        nodes.withLock { nodes in
            if let existing = nodes[node] { return existing }
            let created = Node()
            nodes[node] = created
            return created
        }
    }

    func write(to text: inout PrometheusText) {
        let snapshot = nodes.withLock { $0 }.sorted { $0.key < $1.key }
        guard !snapshot.isEmpty else { return }
        text.histogram(
            "idemproxy_redis_command_duration_seconds", help: "Redis commands by node, sent to answered (pipelined, so queueing included).",
            series: snapshot.map { ([("node", $0.key)], $0.value.duration) })
        text.counter(
            "idemproxy_redis_command_errors_total", help: "Redis commands by node that failed: timeouts, lost connections, error replies (redirections excluded).",
            samples: snapshot.map { ([("node", $0.key)], $0.value.errors.load(ordering: .relaxed)) })
        text.header("idemproxy_redis_connections_ready", type: "gauge", help: "Ready connections to each Redis node (one per worker loop and node).")
        for (node, entry) in snapshot {
            text.sample("idemproxy_redis_connections_ready", labels: [("node", node)], value: Double(entry.ready.load(ordering: .relaxed)))
        }
    }
}
