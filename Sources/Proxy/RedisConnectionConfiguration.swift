import Config
import EventLoop
import RedisClient

/// Where and how to reach Redis, from `store.redis`: the one way every part (proxy, startup
/// check, `records` CLI) connects. Hosts are resolved once, never on a loop, and TLS is set up
/// once; a TLS file that does not load is an error here, never a plaintext connection.
public struct RedisTarget: Sendable {
    /// The data connection: the URL's address, or (with Sentinel) a placeholder the Sentinels'
    /// answer replaces before every connect.
    public var connection: RedisConnection.Configuration
    public var sentinel: SentinelLocator.Settings?

    public init(_ redis: RedisConfig, commandTimeoutMillis: UInt64? = nil) throws {
        let timeout = commandTimeoutMillis ?? redis.commandTimeout.milliseconds
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
        } else {
            let address = try Socket.Address.resolve(host: redis.host, port: redis.port)
            connection = RedisConnection.Configuration(
                host: address.ipText, port: redis.port, username: redis.username, password: redis.password,
                database: redis.database, commandTimeoutMillis: timeout, tls: tls,
                tlsServerName: redis.tls?.serverName ?? Self.bare(redis.host))
        }
    }

    /// A connection to the primary on `loop` (not yet connecting).
    public func makeConnection(loop: EventLoop) -> RedisConnection {
        RedisConnection.toPrimary(connection, sentinel: sentinel, loop: loop)
    }

    /// For logs: the Redis address, or the Sentinel master name.
    public var description: String {
        sentinel.map { "sentinel master \($0.masterName)" } ?? "\(connection.host):\(connection.port)"
    }

    private static func bare(_ host: String) -> String {
        host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
    }
}
