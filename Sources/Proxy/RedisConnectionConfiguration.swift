import Config
import EventLoop
import RedisClient

extension RedisConnection.Configuration {
    /// From `store.redis`, the one way every part (proxy, startup check, `records` CLI)
    /// connects: the host resolved once, never on a loop, and TLS set up once. A TLS setting
    /// that does not load is an error here, never a plaintext connection instead.
    public init(_ redis: RedisConfig, commandTimeoutMillis: UInt64? = nil) throws {
        let address = try Socket.Address.resolve(host: redis.host, port: redis.port)
        var tls: RedisTLSContext?
        if let settings = redis.tls {
            let bareHost = redis.host.hasPrefix("[") ? String(redis.host.dropFirst().dropLast()) : redis.host
            tls = try RedisTLSContext(
                caFile: settings.caFile, certFile: settings.certFile, keyFile: settings.keyFile,
                serverName: settings.serverName ?? bareHost)
        }
        self.init(
            host: address.ipText, port: redis.port, username: redis.username, password: redis.password,
            database: redis.database, commandTimeoutMillis: commandTimeoutMillis ?? redis.commandTimeout.milliseconds, tls: tls)
    }
}
