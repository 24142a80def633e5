import EventLoop
import Idempotency
import RedisClient

/// `IdempotencyStore` on Redis, one instance per event loop over one `RedisChannel` (a
/// connection, or a Cluster's connection per node). Scripts are loaded on every connection
/// (`SCRIPT LOAD`) and called with `EVALSHA`; a `NOSCRIPT` reply (Redis restarted, failed
/// over, or a slot moved to a node that never loaded them) falls back to `EVAL`, which loads
/// the script there again.
///
/// The callbacks of a request's commands hold the store strongly: a weak reference gives the
/// store a side table, which makes every retain and release of it take the slow path, on every
/// request. A command's callback is dropped once it has run; until then it keeps the store (and
/// so its connection) alive. Whoever discards a store with commands outstanding closes its
/// connection, which fails them: a worker's forced shutdown does.
public final class RedisIdempotencyStore: IdempotencyStore, @unchecked Sendable {
    public let connection: any RedisChannel
    private var shas: [String?] = Array(repeating: nil, count: RedisScripts.all.count)

    enum Script: Int { case claimContended, complete, release, markUnknown, refresh, inspect, announcePurge, purgeUnlessInFlight }

    /// Watches for a Redis that came back without its records (shared by every loop's store).
    public let resetDetector: StoreResetDetector?
    private let markerKey: String
    /// Servers this store reported to the detector before (a first report sets no alarm).
    private var reportedBefore: Set<String> = []
    /// Also checked every few seconds, so a FLUSHALL without a reconnect is noticed too.
    /// Unretained: `deinit` cancels it, so it never fires for a freed store (see the type's
    /// comment for why the store is never referenced weakly).
    private lazy var resetCheckTimer = Timer { [unowned(unsafe) self] in
        let store = self
        withExtendedLifetime(store) { store.periodicResetCheck() }
    }
    static let resetCheckIntervalMillis: UInt64 = 5000

    /// `min_replicas_acked` and `replica_ack_timeout`; nil when 0 (no WAIT).
    public let replicaAcknowledgement: ReplicaAcknowledgement?
    /// Per connection: writes waiting for its outstanding WAIT's answer (see `awaitReplicas`).
    private var replicaWaiters: [ObjectIdentifier: [(Result<Void, StoreError>) -> Void]] = [:]

    /// Completed records served without a round trip (nil: `replay_cache_max_bytes: 0`).
    public let replayCache: ReplayCache?
    /// Carries purges to every replica's cache (and reads the others' into this one).
    let purgeLog: RedisPurgeLog
    /// Replays served from `replayCache`.
    public private(set) var replayCacheHits = 0
    /// Told of each replay served from `replayCache` (the metrics' counter).
    public var onReplayCacheHit: (() -> Void)?

    /// Per server: the run_id seen last, to tell a restart from a first report.
    private var runIDs: [String: String] = [:]

    public init(
        connection: any RedisChannel, keyPrefix: String = "idem:", resetDetector: StoreResetDetector? = nil,
        replicaAcknowledgement: ReplicaAcknowledgement? = nil, replayCacheBytes: Int = 0
    ) {
        self.connection = connection
        replayCache = replayCacheBytes > 0 ? ReplayCache(maxBytes: replayCacheBytes) : nil
        purgeLog = RedisPurgeLog(keyPrefix: keyPrefix, connection: connection, cache: replayCache)
        self.replicaAcknowledgement = replicaAcknowledgement.flatMap { $0.replicas > 0 ? $0 : nil }
        self.resetDetector = resetDetector
        markerKey = keyPrefix + "{marker}"
        // Unretained: the connection is this store's, and `deinit` takes the callback back.
        connection.onReady = { [unowned(unsafe) self] connection in
            self.loadScripts(connection)
            self.checkForReset(connection)
        }
    }

    deinit {
        resetCheckTimer.cancel()
        connection.onReady = nil
    }

    /// On every (re)connect of every connection: the server's `run_id`, and a marker key this
    /// store writes once and never expires. A new run_id means the server restarted (or a
    /// replica took over); a missing marker means the data set lost what it held (restart
    /// without persistence, FLUSHALL). Either way records may be gone, and with them the
    /// guarantee for their keys. In a Cluster the marker lives on one node: only that node's
    /// data set is checked for it; every node's run_id is.
    private func checkForReset(_ server: RedisConnection) {
        guard let resetDetector else { return }
        if !resetCheckTimer.isArmed { connection.loop.arm(resetCheckTimer, after: Self.resetCheckIntervalMillis) }
        let name = connection.serverName(of: server)
        server.send(["INFO", "server"]) { info in
            guard case .success(let value) = info, let text = value.text else { return }
            let runID = Self.infoField("run_id", in: text) ?? ""
            let report = { (markerMissing: Bool) in
                if markerMissing || self.runIDs[name].map({ $0 != runID }) == true { self.purgeLog.restart() }
                self.runIDs[name] = runID
                resetDetector.observe(server: name, runID: runID, markerMissing: markerMissing, firstReport: !self.reportedBefore.contains(name))
                self.reportedBefore.insert(name)
            }
            guard self.connection.connection(for: self.markerKey) === server else { return report(false) }
            // SET NX answers OK when the marker was missing (and writes it), nil when present.
            server.send([Array("SET".utf8), Array(self.markerKey.utf8), Array("1".utf8), Array("NX".utf8)]) { marker in
                guard case .success(let reply) = marker else { return }
                switch reply {
                case .null: report(false)
                case .error: return
                default: report(true)
                }
            }
        }
    }

    private func periodicResetCheck() {
        for server in connection.connections where server.state == .ready { checkForReset(server) }
        connection.loop.arm(resetCheckTimer, after: Self.resetCheckIntervalMillis)
    }

    static func infoField(_ name: String, in info: String) -> String? {
        // "\r\n" is one Character in Swift: split on newlines, not on "\r" or "\n".
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix(name + ":") {
            return String(line.dropFirst(name.count + 1))
        }
        return nil
    }

    public var isReady: Bool { connection.state == .ready }

    private func loadScripts(_ server: RedisConnection) {
        for (index, source) in RedisScripts.all.enumerated() {
            server.send(["SCRIPT", "LOAD", source]) { result in
                if case .success(let value) = result, let sha = value.text { self.shas[index] = sha }
            }
        }
    }

    /// Runs a script by SHA (or by source until the SHA is known, or after NOSCRIPT).
    /// `argumentCount` and `appendArguments` describe ARGV; KEYS is always the one key.
    /// The arguments are framed once: a NOSCRIPT retry re-sends the same framed bytes behind
    /// `EVAL` and the source, so nothing but the reply's callback is kept for it (one closure
    /// allocation per call, where keeping the argument closure cost two more).
    func run(
        _ script: Script, key: String, argumentCount: Int, timeoutMillis: UInt64? = nil, payloadBytes: Int = 0,
        _ appendArguments: (inout RedisCommand) -> Void,
        completion: @escaping (Result<RedisValue, StoreError>, RedisConnection?) -> Void
    ) {
        let source = RedisScripts.all[script.rawValue]
        let sha = shas[script.rawValue]
        let verb = sha == nil ? "EVAL" : "EVALSHA"
        let body = sha ?? source
        // Sized for the whole command, so it is built in one allocation.
        var command = RedisCommand(argumentCount: 4 + argumentCount, capacity: 256 + key.utf8.count + payloadBytes + body.utf8.count)
        command.append(verb)
        command.append(body)
        let framedFrom = command.bytes.count  // numkeys, the key and ARGV, as framed
        command.append("1")
        command.append(key)
        appendArguments(&command)
        connection.send(command, key: key, timeoutMillis: timeoutMillis) { result, server in
            if sha != nil, case .success(.error(let message)) = result, message.hasPrefix("NOSCRIPT") {
                self.shas[script.rawValue] = nil
                var retry = RedisCommand(
                    argumentCount: 4 + argumentCount, capacity: command.bytes.count + source.utf8.count)
                retry.append("EVAL")
                retry.append(source)
                retry.appendFramed(command.bytes[framedFrom...], count: 2 + argumentCount)
                self.connection.send(retry, key: key, timeoutMillis: timeoutMillis) { result, server in
                    completion(Self.storeResult(result), server)
                }
                // On the node that lacked it (in a Cluster, maybe not the one the map names).
                if let server { self.loadScripts(server) }
                return
            }
            completion(Self.storeResult(result), server)
        }
    }

    /// Maps a client result to the store's terms, keeping what matters to the caller: whether
    /// the command may have been applied (timeout, connection lost after queueing) or surely
    /// was not (never sent, an error reply), and whether Redis is out of memory.
    static func storeResult(_ result: Result<RedisValue, RedisClientError>) -> Result<RedisValue, StoreError> {
        switch result {
        case .success(.error(let message)):
            // Redis refuses writes past maxmemory under noeviction ("OOM command not allowed
            // when used memory > 'maxmemory'"); from a script the text is wrapped, so search it.
            if message.hasPrefix("OOM") || message.contains("OOM command not allowed") {
                return .failure(.full("redis: \(message)"))
            }
            return .failure(.unavailable("redis: \(message)"))
        case .success(let value):
            return .success(value)
        case .failure(.timeout):
            return .failure(.timeout)
        case .failure(.disconnected(let why)):
            return .failure(.connectionLost(why))
        case .failure(let error):
            return .failure(.unavailable(error.description))
        }
    }

    /// A completion's deadline grows with its payload: `command_timeout` plus 1 ms per 8 KiB
    /// (8 MB/s, slow for any network Redis runs on), so a 1 MiB response gets 128 ms more
    /// instead of timing out on a link that is merely busy.
    func completionTimeoutMillis(payloadBytes: Int) -> UInt64 {
        connection.commandTimeoutMillis + UInt64(payloadBytes / 8192)
    }

    /// A stored value, or `.corrupt` saying why this version cannot read it.
    static func decode(_ bytes: [UInt8]) -> Result<IdempotencyRecord, StoreError> {
        Result { try RecordCodec.decode(bytes) }.mapError { .corrupt("\($0)") }
    }

    private static func flag(_ completion: @escaping (Result<Bool, StoreError>) -> Void) -> (Result<RedisValue, StoreError>, RedisConnection?) -> Void {
        { result, _ in completion(result.map { $0.integer == 1 }) }
    }

    // MARK: IdempotencyStore

    /// A replay this loop's replay cache holds, answered at once from the key's bytes (no String,
    /// no closure); anything else is nil, and the proxy then asks `claim`.
    public func claimNow(
        storageKey: UnsafeRawBufferPointer, text: () -> String, owner: [UInt8], fingerprint: [UInt8], lease: Duration,
        ttl: Duration, expiredLease: IndeterminatePolicy
    ) -> Result<ClaimOutcome, StoreError>? {
        guard let replayCache else { return nil }
        // As in `claim`: the clock read now, and the purge log fresh at that time.
        let now = connection.loop.refreshNow()
        guard purgeLog.isFresh(nowMillis: now), let record = replayCache.lookup(storageKey: storageKey, nowMillis: now) else { return nil }
        replayCacheHits += 1
        onReplayCacheHit?()
        return .success(.existing(record))
    }

    /// One native command in the common case: `SET key claim NX PX lease+ttl GET` creates the
    /// claim when the key is free (nil reply) and otherwise returns the record without touching
    /// it (Redis 7.0 and later accept `NX` with `GET`). A completed or unknown record ends the
    /// claim there: a replay costs this one command. Only an in-flight record needs to know
    /// whether its lease still runs; `claimContended` decides that, and what follows, atomically.
    public func claim(
        key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration, ttl: Duration,
        expiredLease: IndeterminatePolicy, completion: @escaping (Result<ClaimOutcome, StoreError>) -> Void
    ) {
        if let replayCache {
            // The clock read now, not the iteration's cached one: a loop held up since its
            // iteration began must not judge the purge log fresher than it is (the bound a
            // purge's answer relies on, `RedisPurgeLog.settleMillis`).
            let now = connection.loop.refreshNow()
            if purgeLog.isFresh(nowMillis: now), let record = replayCache.lookup(key, nowMillis: now) {
                replayCacheHits += 1
                onReplayCacheHit?()
                return completion(.success(.existing(record)))
            }
        }
        let ttlMillis = ttl.milliseconds
        let expiryMillis = lease.milliseconds &+ ttlMillis
        let epoch = purgeLog.epoch
        let record = RecordCodec.encode(IdempotencyRecord(
            state: .inFlight, fingerprint: fingerprint, owner: owner,
            leaseDeadlineMillis: RecordCodec.leaseByExpiry | min(ttlMillis, ~RecordCodec.leaseByExpiry),
            createdAtMillis: MonotonicClock.unixMillis()))
        var command = RedisCommand(argumentCount: 7, capacity: 128 + key.utf8.count + record.count)
        command.append("SET")
        command.append(key)
        command.append(record)
        command.append("NX")
        command.append("PX")
        command.append(expiryMillis)
        command.append("GET")
        connection.send(command, key: key, timeoutMillis: nil) { result, server in
            switch Self.storeResult(result) {
            case .success(.null):
                self.afterReplicas(on: server, .claimed, completion)
            case .success(.string(let bytes)) where bytes.count > RecordCodec.Offset.state && bytes[RecordCodec.Offset.state] == RecordState.inFlight.rawValue:
                self.claimContended(key: key, record: record, expiryMillis: expiryMillis, ttlMillis: ttlMillis, expiredLease: expiredLease, completion: completion)
            case .success(.string(let bytes)):
                let decoded = Self.decode(bytes)
                if case .success(let record) = decoded { self.cacheIfCompleted(key, record, epoch: epoch) }
                completion(decoded.map(ClaimOutcome.existing))
            case .success(let other):
                completion(.failure(.corrupt("unexpected claim reply \(other)")))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// Caches a completed record the claim found, for as long as its key lives: `PTTL`, asked
    /// now, bounds that on the loop's own clock (no wall clock is compared). Not when a purge
    /// was applied since the claim was sent (see `RedisPurgeLog.epoch`).
    private func cacheIfCompleted(_ key: String, _ record: IdempotencyRecord, epoch: UInt64) {
        guard let replayCache, record.state == .completed, purgeLog.hasStarted, purgeLog.epoch == epoch else { return }
        let sentAt = connection.loop.now
        connection.send([Array("PTTL".utf8), Array(key.utf8)], key: key) { result in
            guard case .success(.integer(let left)) = result, left > 0, self.purgeLog.epoch == epoch else { return }
            replayCache.insert(key, record: record, remainingMillis: UInt64(left), nowMillis: sentAt)
        }
    }

    private func claimContended(
        key: String, record: [UInt8], expiryMillis: UInt64, ttlMillis: UInt64, expiredLease: IndeterminatePolicy,
        completion: @escaping (Result<ClaimOutcome, StoreError>) -> Void
    ) {
        run(.claimContended, key: key, argumentCount: 4, { command in
            command.append(record)
            command.append(expiryMillis)
            command.append(ttlMillis)
            command.append(expiredLease == .hold ? "hold" : "release")
        }) { result, server in
            switch result {
            case .success(.integer(1)):
                self.afterReplicas(on: server, .claimed, completion)
            case .success(.string(let bytes)):
                completion(Self.decode(bytes).map(ClaimOutcome.existing))
            case .success(let other):
                completion(.failure(.corrupt("unexpected claim reply \(other)")))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    public func complete(key: String, owner: [UInt8], response: StoredResponse, ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void) {
        // Only the response section travels; the script keeps the stored fingerprint and owner.
        let section = RecordCodec.encodeResponseSection(response)
        let ttlMillis = ttl.milliseconds
        run(.complete, key: key, argumentCount: 3, timeoutMillis: completionTimeoutMillis(payloadBytes: section.count), payloadBytes: section.count, { command in
            command.append(owner)
            command.append(section)
            command.append(ttlMillis)
        }) { result, server in
            let stored = result.map { $0.integer == 1 }
            guard case .success(true) = stored else { return completion(stored) }
            self.afterReplicas(on: server, true, completion)
        }
    }

    /// With `min_replicas_acked`, a claim or completion counts only once that many replicas
    /// hold it (`WAIT`), so a failover cannot lose it. Anything short of that is
    /// `.notReplicated`: a claim is then released and answered 503, a completion retried (its
    /// script rewrites the record's TTL on a retry, so the retry's WAIT covers it again).
    ///
    /// `WAIT` blocks the connection it is sent on, so at most one is outstanding: every write
    /// whose reply arrives before the WAIT's reply was sent before it (replies come in command
    /// order) and shares its answer; a write answered later starts the next WAIT.
    /// In a Cluster, per node, and on the node that answered the write (after an ASK, not the
    /// one the slot map names): WAIT counts the replicas of the node it is sent to.
    /// `completion(.success(value))` once replicas hold the write (`awaitReplicas`); at once, with
    /// no closure built, when no WAIT is asked for (every claim and completion passes here).
    /// Inlined into each caller, so `completion` is passed on as it is, never wrapped to fit a
    /// generic signature (malloc stacks of the unique-key path show no allocation from here).
    @inline(__always)
    func afterReplicas<Value>(
        on server: RedisConnection?, _ value: Value, _ completion: @escaping (Result<Value, StoreError>) -> Void
    ) {
        guard replicaAcknowledgement != nil else { return completion(.success(value)) }
        awaitReplicas(on: server) { completion($0.map { value }) }
    }

    func awaitReplicas(on server: RedisConnection?, _ then: @escaping (Result<Void, StoreError>) -> Void) {
        guard let wanted = replicaAcknowledgement else { return then(.success(())) }
        guard let server else {
            return then(.failure(.notReplicated("no connection answered the write to WAIT on")))
        }
        let id = ObjectIdentifier(server)
        if replicaWaiters[id] != nil {
            replicaWaiters[id]!.append(then)
            return
        }
        replicaWaiters[id] = [then]
        var command = RedisCommand(argumentCount: 3)
        command.append("WAIT")
        command.append(UInt64(wanted.replicas))
        command.append(wanted.timeoutMillis)
        // WAIT answers after its own timeout at the latest; the command deadline comes after.
        server.send(command, timeoutMillis: wanted.timeoutMillis + connection.commandTimeoutMillis) { result in
            let outcome: Result<Void, StoreError>
            switch result {
            case .success(.integer(let acknowledged)) where acknowledged >= Int64(wanted.replicas):
                outcome = .success(())
            case .success(.integer(let acknowledged)):
                outcome = .failure(.notReplicated("\(acknowledged) of \(wanted.replicas) replicas acknowledged within \(wanted.timeoutMillis) ms"))
            case .success(let other):
                outcome = .failure(.notReplicated("WAIT answered \(other)"))
            case .failure(let error):
                // The writes themselves were applied: whatever happened to WAIT, they are not
                // known to be replicated.
                outcome = .failure(.notReplicated("WAIT failed: \(error)"))
            }
            let waiters = self.replicaWaiters.removeValue(forKey: id) ?? []
            for waiter in waiters { waiter(outcome) }
        }
    }

    public func release(key: String, owner: [UInt8], completion: @escaping (Result<Bool, StoreError>) -> Void) {
        run(.release, key: key, argumentCount: 1, { $0.append(owner) }, completion: Self.flag(completion))
    }

    public func markUnknown(key: String, owner: [UInt8], ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void) {
        let ttlMillis = ttl.milliseconds
        run(.markUnknown, key: key, argumentCount: 2, { $0.append(owner); $0.append(ttlMillis) }, completion: Self.flag(completion))
    }

    public func refreshLease(
        key: String, owner: [UInt8], lease: Duration, ttl: Duration, completion: @escaping (Result<Bool, StoreError>) -> Void
    ) {
        let leaseMillis = lease.milliseconds, ttlMillis = ttl.milliseconds
        run(.refresh, key: key, argumentCount: 3, { $0.append(owner); $0.append(leaseMillis); $0.append(ttlMillis) }, completion: Self.flag(completion))
    }
}

/// `store.redis.min_replicas_acked` and `replica_ack_timeout` (SPEC §6).
public struct ReplicaAcknowledgement: Sendable, Equatable {
    public var replicas: Int
    public var timeoutMillis: UInt64
    public init(replicas: Int, timeoutMillis: UInt64) {
        self.replicas = replicas
        self.timeoutMillis = timeoutMillis
    }
}
