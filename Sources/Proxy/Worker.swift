import EventLoop
import Glibc
import HTTP1
import Idempotency
import RedisClient
import RedisStore
import Upstream

/// What all workers of one process share: the memory store (when it is the backend), the
/// registry of same-instance waiters, and the metrics.
final class SharedState: Sendable {
    let memoryStore: MemoryStore?
    let waiters = InFlightWaiters()
    /// The access log's writer thread, shared by all loops (nil when access_log is off).
    let accessLogWriter: BackgroundWriter?
    let metrics: ProxyMetrics
    /// Notices a Redis that came back without its records, once for all loops.
    let resetDetector: StoreResetDetector?

    init(settings: ProxySettings, metrics: ProxyMetrics, memoryStore: MemoryStore?) {
        self.memoryStore = settings.storeBackend == .memory ? (memoryStore ?? MemoryStore(maxBytes: settings.memoryMaxBytes)) : nil
        if let store = self.memoryStore { metrics.watch(store) }
        accessLogWriter = settings.accessLog ? BackgroundWriter(fd: settings.accessLogFD) : nil
        self.metrics = metrics
        let log = settings.log
        resetDetector = settings.storeBackend == .redis ? StoreResetDetector { reason, detail in
            switch reason {
            case .runIDChanged: metrics.storeResetsRunID.add(1, ordering: .relaxed)
            case .recordsMissing: metrics.storeResetsRecordsMissing.add(1, ordering: .relaxed)
            }
            log.error("store reset detected", ["reason": reason.rawValue, "detail": detail])
        } : nil
    }
}

/// Everything one event loop owns: its listening socket (SO_REUSEPORT, so the kernel spreads
/// connections across workers), its client connections and its upstream pool. Nothing here is
/// touched from another thread except through `loop.execute`.
final class Worker: EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let settings: ProxySettings
    let pool: UpstreamPool
    private(set) var listenFD: Int32 = -1
    private var connections: [ObjectIdentifier: ClientConnection] = [:]
    private(set) var isShuttingDown = false
    private let maxConnections: Int
    private var acceptPaused = false
    /// Logged once per process run of descriptor exhaustion, not once per 100 ms.
    private var descriptorLog = false
    private lazy var acceptRetryTimer = Timer { [weak self] in self?.resumeAccepting() }
    /// Called on the loop thread once shutdown began and the last connection closed.
    var onDrained: (() -> Void)?
    let store: any IdempotencyStore
    /// This loop's Redis connection when the backend is Redis.
    let redis: (any RedisChannel)?
    let shared: SharedState
    var waiters: InFlightWaiters { shared.waiters }
    /// `shared.metrics`, kept here too: read on every request, and a stored `let` is read
    /// without reference counting where a chain through `shared` is not.
    let metrics: ProxyMetrics
    var guards: GuardTable { settings.guards }
    var log: Log { settings.log }
    /// Present when `logging.access_log` is on.
    let accessLog: AccessLog?
    /// Writes the end of every claim made on this loop, retrying through store faults.
    let settler: RecordSettler
    /// Owner tokens for claims made on this loop.
    var ownerTokens = OwnerTokenSource()
    /// Guarded exchanges whose connections moved on while a store write still held them.
    var retiredExchanges = RetiredExchanges<GuardedExchange>()
    private lazy var sweepTimer = Timer { [weak self] in self?.sweepMemoryStore() }
    private var nextShardToSweep = 0

    init(index: Int, settings: ProxySettings, listenFD: Int32, shared: SharedState) throws(IOError) {
        let loop = try EventLoop(index: index)
        self.loop = loop
        self.settings = settings
        self.shared = shared
        metrics = shared.metrics
        accessLog = shared.accessLogWriter.map { AccessLog(loop: loop, writer: $0, json: settings.accessLogJSON) }
        if let memory = shared.memoryStore {
            store = memory
            redis = nil
        } else {
            let connection = settings.redis!.reporting(to: shared.metrics.redisNodes).makeConnection(loop: loop)
            redis = connection
            let redisStore = RedisIdempotencyStore(
                connection: connection, keyPrefix: settings.keyPrefix, resetDetector: shared.resetDetector,
                replicaAcknowledgement: settings.replicaAcknowledgement, replayCacheBytes: settings.replayCacheBytesPerWorker)
            let metrics = shared.metrics
            redisStore.onReplayCacheHit = { metrics.replayCacheHits.add(1, ordering: .relaxed) }
            store = redisStore
            let log = settings.log
            // Weak: the connection owns this closure.
            connection.onStateChange = { [weak connection] old, new in
                if new == .ready {
                    metrics.redisConnectionsReady.add(1, ordering: .relaxed)
                    log.info("redis connected", ["loop": "\(index)"])
                } else if old == .ready {
                    metrics.redisConnectionsReady.subtract(1, ordering: .relaxed)
                    log.warning("redis connection lost", ["loop": "\(index)", "error": connection?.lastError ?? ""])
                }
            }
        }
        settler = RecordSettler(loop: loop, store: store, metrics: shared.metrics, waiters: shared.waiters, log: settings.log)
        self.listenFD = listenFD
        maxConnections = max(1, settings.maxConnections / max(1, settings.workers))
        pool = UpstreamPool(
            configuration: .init(
                address: settings.upstreamAddress, connectTimeoutMillis: settings.connectTimeoutMillis,
                maxIdle: settings.maxIdleUpstream, idleTimeoutMillis: settings.upstreamIdleTimeoutMillis),
            loop: loop)
        try loop.register(listenFD, handler: self, interest: [.read])
        settler.onIdle = { [unowned self] in self.drainedIfDone() }
        if let redis {
            // Writes waiting for the store go out as soon as it is back (see RecordSettler).
            let observe = redis.onStateChange
            redis.onStateChange = { [unowned self] old, new in
                observe?(old, new)
                if new == .ready { self.storeIsBack() }
            }
        }
    }

    /// The Redis connection is back: leases of live claims are refreshed and waiting writes
    /// retried now, not at their next timer, since a blip may have eaten into their leases.
    private func storeIsBack() {
        for connection in connections.values { connection.refreshLeaseIfClaimed() }
        settler.retryNow()
    }

    /// Shutdown completes when the last connection closed and every outcome was written.
    private func drainedIfDone() {
        if isShuttingDown && connections.isEmpty && settler.pendingCount == 0 { onDrained?() }
    }

    /// Runs on the loop thread before it serves: connects to Redis, schedules store upkeep.
    func startOnLoop() {
        redis?.connect()
        if shared.memoryStore != nil && loop.index == 0 { loop.arm(sweepTimer, after: 1000) }
    }

    /// Expired memory-store records are dropped lazily on access; this bounds the memory of
    /// keys that are never seen again.
    /// One shard per tick, every shard about once a second.
    private func sweepMemoryStore() {
        _ = shared.memoryStore?.sweep(shard: nextShardToSweep)
        nextShardToSweep = (nextShardToSweep + 1) % MemoryStore.shardCount
        loop.arm(sweepTimer, after: UInt64(max(1, 1000 / MemoryStore.shardCount)))
    }

    var connectionCount: Int { connections.count }

    /// Accepts a batch of connections; the batch bound keeps one busy listener from starving
    /// the connections already being served on this loop.
    func handleEvent(readable: Bool, writable: Bool) {
        for _ in 0..<64 {
            if connections.count >= maxConnections {
                // Leave the rest in the kernel's backlog until a connection closes.
                acceptPaused = true
                loop.setInterest(listenFD, [])
                return
            }
            let accepted: IOResult<(fd: Int32, peer: String)>
            do {
                accepted = try Socket.accept(listenFD)
            } catch {
                // Stop listening until a connection closes or a short back-off ends.
                if error.isOutOfDescriptors { pauseAcceptingForDescriptors() }
                // Aborted handshakes and the like: try again on the next event.
                return
            }
            guard case .processed(let (fd, peer)) = accepted else { return }
            Socket.setNoDelay(fd)
            let connection = ClientConnection(fd: fd, peer: peer, worker: self)
            do {
                try loop.register(fd, handler: connection, interest: [.read])
            } catch {
                Socket.close(fd)
                continue
            }
            connections[ObjectIdentifier(connection)] = connection
            metrics.activeConnections.add(1, ordering: .relaxed)
            connection.start()
        }
    }

    /// Accepting stopped for lack of descriptors; a closing connection or this back-off
    /// (100 ms) resumes it.
    private func pauseAcceptingForDescriptors() {
        guard !acceptPaused else { return }
        acceptPaused = true
        loop.setInterest(listenFD, [])
        if !descriptorLog { log.warning("out of file descriptors; pausing accept", ["open_connections": "\(connections.count)"]) }
        descriptorLog = true
        loop.arm(acceptRetryTimer, after: 100)
    }

    private func resumeAccepting() {
        guard acceptPaused, !isShuttingDown, listenFD >= 0, connections.count < maxConnections else { return }
        acceptPaused = false
        acceptRetryTimer.cancel()
        loop.setInterest(listenFD, [.read])
    }

    func connectionClosed(_ connection: ClientConnection) {
        forget(connection)
        if acceptPaused { resumeAccepting() }
        drainedIfDone()
    }

    /// Drops `connection` from the table (and the gauge), once.
    private func forget(_ connection: ClientConnection) {
        if connections.removeValue(forKey: ObjectIdentifier(connection)) != nil {
            metrics.activeConnections.subtract(1, ordering: .relaxed)
        }
    }

    /// Graceful shutdown, step one: stop accepting, close idle keep-alive connections, and let
    /// the others finish their current exchange (they close after it).
    func beginShutdown() {
        guard !isShuttingDown else { return }
        isShuttingDown = true
        closeListener()
        pool.shutdown()
        for connection in Array(connections.values) { connection.shutdownRequested() }
        drainedIfDone()
    }

    /// Stops accepting for good: the listener leaves the loop and is closed.
    func closeListener() {
        guard listenFD >= 0 else { return }
        loop.deregister(listenFD)
        Socket.close(listenFD)
        listenFD = -1
    }

    /// Graceful shutdown, last step after the grace period: close whatever is left.
    func forceClose() {
        let claimsHeld = connections.values.filter { $0.exchange.guarded?.ownsClaim == true }.count
        if claimsHeld > 0 {
            log.error("shutting down with requests still upstream; their records stay in flight until their leases expire", [
                "claims": "\(claimsHeld)",
            ])
        }
        for connection in Array(connections.values) {
            connection.abort()
            // A detached guarded exchange may still hold its upstream, whose delegate holds the
            // connection back: close it, or the pair outlives the worker.
            connection.upstreamAbandoned()
            // One that still owns its claim stays detached (`close` keeps it for the result), and
            // nothing will now settle it (its record stays in flight, logged above): let it go,
            // or it and this worker, which it holds, would keep each other and the loop alive.
            forget(connection)
        }
        settler.logAbandonedAtShutdown()
        // Fails the store commands still outstanding now, while this worker and its connections
        // are whole; left to the connections' deinit, their callbacks would run while the worker
        // itself is being torn down.
        for server in redis?.connections ?? [] { server.close() }
    }
}

/// Owner tokens: 8 random bytes drawn once per loop, then a counter. Tokens only have to be
/// unique among claims (they are compared, never shown to clients), so one getrandom(2) per
/// loop replaces one per request.
struct OwnerTokenSource {
    private let prefix = Array(OwnerToken.random().prefix(8))
    private var counter: UInt64 = 0

    mutating func next() -> [UInt8] {
        var token: [UInt8] = []
        next(into: &token)
        return token
    }

    /// The next token, written into `token`'s buffer when nothing else holds it (the previous
    /// request's token was never stored: a replay, a refused claim) instead of a new array.
    mutating func next(into token: inout [UInt8]) {
        counter &+= 1
        token.removeAll(keepingCapacity: true)  // a new buffer if a store or a callback holds the old one
        token.reserveCapacity(OwnerToken.length)
        token.append(contentsOf: prefix)
        withUnsafeBytes(of: counter.bigEndian) { token.append(contentsOf: $0) }
    }
}
