// `store`: which store keeps the records and how it is reached (memory, or Redis: one
// server, Sentinel, Cluster, TLS).

public enum StoreBackend: String, Sendable, Equatable, CaseIterable {
    case memory
    case redis
}

public enum UnavailableMode: String, Sendable, Equatable, CaseIterable {
    /// Answer `503` with `Retry-After`.
    case reject
    /// Forward unguarded (logged and counted).
    case passThrough = "pass_through"
}

public struct StoreConfig: Sendable, Equatable {
    public var backend: StoreBackend
    /// Bytes the memory store may hold (records, in-flight ones too, plus stored bodies and a
    /// fixed per-record overhead); when full, new claims get `503 store-full`.
    public var memoryMaxBytes: Int
    /// Always present and validated, even with the memory backend.
    public var redis: RedisConfig
    public var unavailable: UnavailableMode

    public init(
        backend: StoreBackend = .memory,
        memoryMaxBytes: Int = 256 << 20,
        redis: RedisConfig = RedisConfig(),
        unavailable: UnavailableMode = .reject
    ) {
        self.backend = backend
        self.memoryMaxBytes = memoryMaxBytes
        self.redis = redis
        self.unavailable = unavailable
    }
}

public struct RedisConfig: Sendable, Equatable {
    /// The URL as written (after environment expansion).
    public var url: String
    public var host: String
    public var port: UInt16
    /// Percent-decoded password, if the URL has one.
    public var password: String?
    /// Percent-decoded ACL user name, if the URL has one.
    public var username: String?
    public var database: Int
    public var keyPrefix: String
    public var commandTimeout: Duration
    /// Present for `rediss://`: TLS to Redis, always verified (SPEC §6).
    public var tls: RedisTLSConfig?
    /// `min_replicas_acked`: after a claim and a completion, `WAIT` for this many replicas.
    public var minReplicasAcked: Int = 0
    /// `replica_ack_timeout`: how long that `WAIT` may take.
    public var replicaAckTimeout: Duration = .milliseconds(100)
    /// `replay_cache_max_bytes`: completed records each process keeps in memory, shared out
    /// among its workers; 0 turns the replay cache off.
    public var replayCacheMaxBytes: Int = 64 << 20
    /// `sentinel`: find the primary through these Sentinels instead of the URL's host.
    public var sentinel: RedisSentinelConfig?
    /// `cluster.nodes`: Redis Cluster seed nodes; nil: not a cluster.
    public var clusterNodes: [SocketAddressSpec]?

    public init(
        url: String = "redis://127.0.0.1:6379/0",
        host: String = "127.0.0.1",
        port: UInt16 = 6379,
        password: String? = nil,
        username: String? = nil,
        database: Int = 0,
        keyPrefix: String = "idem:",
        commandTimeout: Duration = .milliseconds(250)
    ) {
        self.url = url
        self.host = host
        self.port = port
        self.password = password
        self.username = username
        self.database = database
        self.keyPrefix = keyPrefix
        self.commandTimeout = commandTimeout
    }
}

/// `store.redis.sentinel`: the monitored master's name and where its Sentinels listen.
public struct RedisSentinelConfig: Sendable, Equatable {
    public var master: String
    public var nodes: [SocketAddressSpec]

    public init(master: String, nodes: [SocketAddressSpec]) {
        self.master = master
        self.nodes = nodes
    }
}

/// `store.redis.tls`: files in PEM; nil where not given.
public struct RedisTLSConfig: Sendable, Equatable {
    /// Trusted CAs; nil: the system store.
    public var caFile: String?
    /// A client certificate (chain) and its key, for servers that require one.
    public var certFile: String?
    public var keyFile: String?
    /// The name the server's certificate must carry (also sent as SNI); nil: the URL's host.
    public var serverName: String?

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.serverName = serverName
    }
}
