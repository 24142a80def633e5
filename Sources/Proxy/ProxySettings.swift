import Glibc
import Config
import EventLoop
import HTTP1
import Idempotency
import RedisClient
import RedisStore

/// The configuration values the hot path reads, converted once from `IdemproxyConfig`
/// (durations to milliseconds, the upstream address resolved) so no request pays for it.
///
/// A class: connections read these values on every request, and a reference costs nothing to
/// pass around where a large struct would be copied with all its references retained.
/// Configure it fully before handing it to `ProxyServer`; it is not mutated afterwards.
public final class ProxySettings: @unchecked Sendable {
    public var listen: Socket.Address
    public var workers: Int
    public var upstreamAddress: Socket.Address
    /// The upstream URL's path without a trailing slash, prepended to every forwarded target.
    public var upstreamPathPrefix: [UInt8]
    /// `host[:port]` of the upstream URL: the Host sent when the client sent none (HTTP/1.0).
    public var upstreamAuthority: String
    /// "Host: <upstreamAuthority>\r\n" (formatted when used: only HTTP/1.0 requests lack Host).
    var upstreamHostLine: [UInt8] { Array("Host: \(upstreamAuthority)\r\n".utf8) }
    public var connectTimeoutMillis: UInt64
    public var responseTimeoutMillis: UInt64
    public var maxIdleUpstream: Int
    public var upstreamIdleTimeoutMillis: UInt64
    public var parserLimits: HTTPParserLimits
    public var headerTimeoutMillis: UInt64
    public var bodyTimeoutMillis: UInt64
    public var idleTimeoutMillis: UInt64
    public var sendTimeoutMillis: UInt64
    public var maxConnections: Int
    public var shutdownGraceMillis: UInt64
    /// Which requests are guarded, and how (routes and global idempotency settings).
    var guards: GuardTable
    public var keyPrefix: String
    public var passThroughWhenStoreUnavailable: Bool
    public var storeBackend: StoreBackend
    /// `store.memory.max_bytes`.
    public var memoryMaxBytes: Int
    /// How each loop connects to Redis: addresses resolved once at startup, TLS set up.
    public var redis: RedisTarget?
    /// `store.redis.replay_cache_max_bytes` per worker.
    public var replayCacheBytesPerWorker = 0
    /// `min_replicas_acked` > 0: claims and completions wait for that many replicas.
    public var replicaAcknowledgement: ReplicaAcknowledgement?
    public var log: Log
    /// Where the admin endpoint listens (nil: disabled).
    public var adminListen: Socket.Address?
    /// `admin.token`: the bearer token `/records` requires when set.
    public var adminToken: String
    /// Whether `/records` may answer at all (a token, or a loopback listener; SPEC §8).
    public var adminRecordsEnabled: Bool
    /// Whether records carry a scope: `/records` with a scope that disagrees is a usage error.
    public var recordScoping: RecordScoping
    /// `indeterminate` for every guarded request (nil when routes differ): what `/records`
    /// says the next request makes of an expired lease.
    public var expiredLeasePolicy: IndeterminateMode?
    public var accessLog: Bool
    /// `logging.format` for the access log: JSON lines, or one readable line per request.
    public var accessLogJSON: Bool
    /// Where access-log lines go (stdout unless a test redirects them).
    public var accessLogFD: Int32 = 1

    /// Resolves addresses and loads TLS files; a failure here is a startup error, reported as
    /// one line.
    public init(config: IdemproxyConfig) throws {
        listen = try Socket.Address.resolve(host: config.listen.host, port: config.listen.port)
        workers = config.workers ?? ProxySettings.availableCores()
        upstreamAddress = try Socket.Address.resolve(host: config.upstream.host, port: config.upstream.port)
        var prefix = config.upstream.pathPrefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        upstreamPathPrefix = Array(prefix.utf8)
        upstreamAuthority = config.upstream.authority
        connectTimeoutMillis = config.upstream.connectTimeout.milliseconds
        responseTimeoutMillis = config.upstream.responseTimeout.milliseconds
        maxIdleUpstream = config.upstream.maxIdleConnections
        upstreamIdleTimeoutMillis = config.upstream.idleTimeout.milliseconds
        parserLimits = HTTPParserLimits(maxHeaderBytes: config.limits.maxHeaderBytes, maxHeaders: config.limits.maxHeaders)
        headerTimeoutMillis = config.limits.headerTimeout.milliseconds
        bodyTimeoutMillis = config.limits.bodyTimeout.milliseconds
        idleTimeoutMillis = config.limits.idleTimeout.milliseconds
        sendTimeoutMillis = config.limits.sendTimeout.milliseconds
        maxConnections = config.limits.maxConnections
        shutdownGraceMillis = config.shutdownGrace.milliseconds
        guards = GuardTable(config: config)
        keyPrefix = config.store.redis.keyPrefix
        passThroughWhenStoreUnavailable = config.store.unavailable == .passThrough
        storeBackend = config.store.backend
        memoryMaxBytes = config.store.memoryMaxBytes
        if config.store.backend == .redis {
            let target = try RedisTarget(config.store.redis)
            redis = target
            replayCacheBytesPerWorker = config.store.redis.replayCacheMaxBytes / max(1, workers)
            replicaAcknowledgement = target.replicaAcknowledgement
        }
        let level: Log.Level
        switch config.logging.level {
        case .debug: level = .debug
        case .info: level = .info
        case .warn: level = .warning
        case .error: level = .error
        }
        log = Log(minimum: level, json: config.logging.format == .json)
        if let admin = config.admin.listen {
            adminListen = try Socket.Address.resolve(host: admin.host, port: admin.port)
        }
        adminToken = config.admin.token
        adminRecordsEnabled = config.admin.recordsEnabled
        recordScoping = config.recordScoping
        expiredLeasePolicy = config.expiredLeasePolicy
        accessLog = config.logging.accessLog
        accessLogJSON = config.logging.format == .json
    }

    static func availableCores() -> Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
