/// The keep-alive pool's bookkeeping as a value type that returns actions; `UpstreamPool`
/// executes them on sockets. Keeping the decisions here lets tests drive every path (reuse,
/// expiry, overflow, shutdown) with plain numbers.
///
/// Idle connections are reused most-recently-parked first: the warmest connection is the
/// least likely to have been closed by the upstream, and the coldest ones age out.
public struct PoolStateMachine: Sendable {
    public struct Configuration: Sendable {
        /// Idle connections kept at most; more are closed when released.
        public var maxIdle: Int
        /// How long a connection may sit idle. This must be below the upstream's own keep-alive
        /// timeout, or the upstream may close a connection just as we reuse it.
        public var idleTimeoutMillis: UInt64

        public init(maxIdle: Int, idleTimeoutMillis: UInt64) {
            self.maxIdle = maxIdle
            self.idleTimeoutMillis = idleTimeoutMillis
        }
    }

    public enum LeaseAction: Equatable, Sendable {
        /// Reuse this idle connection; `check` asks the executor to verify it is still alive
        /// first (a non-blocking peek for EOF or stray bytes).
        case reuse(id: Int, check: Bool)
        case connect
    }

    public enum ReleaseAction: Equatable, Sendable {
        case park(deadline: UInt64)
        case close
    }

    private struct Idle: Sendable {
        var id: Int
        var deadline: UInt64
    }

    public let configuration: Configuration
    private var idle: [Idle] = []
    public private(set) var isShuttingDown = false

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    public var idleCount: Int { idle.count }
    public var idleIDs: [Int] { idle.map(\.id) }

    /// Connections parked for less than this are reused without the peek: while parked they
    /// are registered for reads, so a close that happened before the current loop tick has
    /// already been seen, and upstream keep-alive timeouts are seconds, not milliseconds.
    /// Skipping the peek saves one syscall per request under load.
    public static let livenessCheckAfterMillis: UInt64 = 50

    /// Chooses a connection for a new request. Expired idle connections met on the way are
    /// returned in `expired` for the executor to close.
    public mutating func lease(now: UInt64, expired: inout [Int]) -> LeaseAction {
        while let last = idle.popLast() {
            if last.deadline > now {
                let parkedAt = last.deadline - configuration.idleTimeoutMillis
                return .reuse(id: last.id, check: now >= parkedAt + Self.livenessCheckAfterMillis)
            }
            expired.append(last.id)
        }
        return .connect
    }

    /// A connection finished an exchange. It is parked only if the exchange left it reusable.
    public mutating func release(id: Int, reusable: Bool, now: UInt64) -> ReleaseAction {
        guard reusable, !isShuttingDown, configuration.maxIdle > 0, configuration.idleTimeoutMillis > 0 else { return .close }
        if idle.count >= configuration.maxIdle { return .close }
        let deadline = now + configuration.idleTimeoutMillis
        idle.append(Idle(id: id, deadline: deadline))
        return .park(deadline: deadline)
    }

    /// The earliest idle deadline, for the executor's sweep timer.
    public var nextDeadline: UInt64? { idle.map(\.deadline).min() }

    /// An idle connection went away by itself (upstream closed it, or it sent unsolicited bytes).
    public mutating func idleConnectionLost(id: Int) {
        idle.removeAll { $0.id == id }
    }

    /// Idle connections whose deadline has passed, removed from the pool.
    public mutating func expire(now: UInt64) -> [Int] {
        var gone: [Int] = []
        idle.removeAll { entry in
            if entry.deadline <= now { gone.append(entry.id); return true }
            return false
        }
        return gone
    }

    /// Stops parking connections and hands back every idle one for closing.
    public mutating func shutdown() -> [Int] {
        isShuttingDown = true
        let all = idle.map(\.id)
        idle.removeAll()
        return all
    }
}
