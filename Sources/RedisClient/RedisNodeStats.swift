/// Where connections report what each Redis server did for them, for metrics by node: the
/// proxy keeps one registry, and every connection of every loop reports to the entry of the
/// server it is connected to (a Sentinel failover or a Cluster node is a different entry).
public protocol RedisNodeStatsRegistry: AnyObject, Sendable {
    /// The entry for `node` (`host:port`), made on first use; looked up once per connect.
    func stats(forNode node: String) -> any RedisNodeStats
}

public protocol RedisNodeStats: AnyObject, Sendable {
    /// A command got its answer (or failed: a timeout, a lost connection, an error reply
    /// other than a Cluster redirection) after `nanoseconds`.
    func commandFinished(nanoseconds: UInt64, failed: Bool)
    /// A connection to this node became ready (`true`) or stopped being ready.
    func connectionReady(_ ready: Bool)
}
