import Config
import EventLoop
import RedisClient
import RedisStore

/// Where and how to reach Redis, from `store.redis`: the one way every part (proxy, startup
/// check, `records` CLI) connects. Hosts are resolved once, never on a loop, and TLS is set up
/// once; a TLS file that does not load is an error here, never a plaintext connection.
public struct RedisTarget: Sendable {
    /// The data connection: the URL's address, or (with Sentinel) a placeholder the Sentinels'
    /// answer replaces before every connect.
    public var connection: RedisConnection.Configuration
    public var sentinel: SentinelLocator.Settings?
    public var cluster: RedisCluster.Settings?
    /// `min_replicas_acked` and `replica_ack_timeout`: what every write (the proxy's, and a
    /// purge by the `records` CLI) waits for; nil when no WAIT is asked for.
    public var replicaAcknowledgement: ReplicaAcknowledgement?

    public init(_ redis: RedisConfig, commandTimeoutMillis: UInt64? = nil) throws {
        let timeout = commandTimeoutMillis ?? redis.commandTimeout.milliseconds
        if redis.minReplicasAcked > 0 {
            replicaAcknowledgement = ReplicaAcknowledgement(replicas: redis.minReplicasAcked, timeoutMillis: redis.replicaAckTimeout.milliseconds)
        }
        let tls = try redis.tls.map { settings in
            try RedisTLSContext(caFile: settings.caFile, certFile: settings.certFile, keyFile: settings.keyFile)
        }
        if let sentinel = redis.sentinel {
            self.sentinel = SentinelLocator.Settings(masterName: sentinel.master, nodes: try sentinel.nodes.map { node in
                let address = try Socket.Address.resolve(host: node.host, port: node.port)
                return RedisConnection.Configuration(
                    host: address.ipText, port: node.port, commandTimeoutMillis: timeout, tls: tls,
                    tlsServerName: redis.tls?.serverName ?? Self.bare(node.host))
            })
            // The primary's address comes from the Sentinels; its certificate is checked
            // against server_name, or else the address they name.
            connection = RedisConnection.Configuration(
                host: "0.0.0.0", port: 0, username: redis.username, password: redis.password, database: redis.database,
                commandTimeoutMillis: timeout, tls: tls, tlsServerName: redis.tls?.serverName)
        } else if let seeds = redis.clusterNodes {
            // Nodes are reached by the addresses the cluster gives out; a certificate is checked
            // against server_name, or else that address.
            connection = RedisConnection.Configuration(
                host: "0.0.0.0", port: 0, username: redis.username, password: redis.password,
                commandTimeoutMillis: timeout, tls: tls, tlsServerName: redis.tls?.serverName)
            cluster = RedisCluster.Settings(seeds: try seeds.map { seed in
                let address = try Socket.Address.resolve(host: seed.host, port: seed.port)
                var configuration = connection
                configuration.host = address.ipText
                configuration.port = seed.port
                return configuration
            }, node: connection)
        } else {
            let address = try Socket.Address.resolve(host: redis.host, port: redis.port)
            connection = RedisConnection.Configuration(
                host: address.ipText, port: redis.port, username: redis.username, password: redis.password,
                database: redis.database, commandTimeoutMillis: timeout, tls: tls,
                tlsServerName: redis.tls?.serverName ?? Self.bare(redis.host))
        }
    }

    /// The same target, its data connections reporting to `stats` (metrics by node).
    public func reporting(to stats: any RedisNodeStatsRegistry) -> RedisTarget {
        var target = self
        target.connection.stats = stats
        if var cluster = target.cluster {
            cluster.node.stats = stats
            cluster.seeds = cluster.seeds.map { seed in
                var seed = seed
                seed.stats = stats
                return seed
            }
            target.cluster = cluster
        }
        return target
    }

    /// The store's way to Redis on `loop` (not yet connecting): one connection to the primary,
    /// or a Cluster's connections.
    public func makeConnection(loop: EventLoop) -> any RedisChannel {
        if let cluster { return RedisCluster(settings: cluster, loop: loop) }
        return RedisConnection.toPrimary(connection, sentinel: sentinel, loop: loop)
    }

    /// For logs: the Redis address, the Sentinel master name, or the cluster's seeds.
    public var description: String {
        if let sentinel { return "sentinel master \(sentinel.masterName)" }
        if let cluster { return "cluster via " + cluster.seeds.map { "\($0.host):\($0.port)" }.joined(separator: ",") }
        return "\(connection.host):\(connection.port)"
    }

    private static func bare(_ host: String) -> String {
        host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
    }
}
