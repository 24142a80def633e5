import EventLoop

/// The per-loop keep-alive pool to one upstream address. It executes `PoolStateMachine`'s
/// decisions: parks, checks and closes sockets. While parked, a connection's delegate is the
/// pool itself, so an upstream that closes an idle connection is noticed at once. That is a
/// strong reference each way; `shutdown()` closes every parked connection and so breaks it.
public final class UpstreamPool {
    public struct Configuration: Sendable {
        public var address: Socket.Address
        public var connectTimeoutMillis: UInt64
        public var maxIdle: Int
        public var idleTimeoutMillis: UInt64

        public init(address: Socket.Address, connectTimeoutMillis: UInt64, maxIdle: Int, idleTimeoutMillis: UInt64) {
            self.address = address
            self.connectTimeoutMillis = connectTimeoutMillis
            self.maxIdle = maxIdle
            self.idleTimeoutMillis = idleTimeoutMillis
        }
    }

    public let configuration: Configuration
    /// Strong: calls through it need no reference counting (see `ClientConnection.worker`).
    private let loop: EventLoop
    private var state: PoolStateMachine
    private var parked: [ParkedID: UpstreamConnection] = [:]
    private var nextID = 1
    /// `unowned(unsafe)`, cancelled in deinit: a weak capture would give the pool a side table
    /// and slow the retain of every park and reuse (parked connections' delegate is the pool).
    private lazy var sweepTimer = Timer { [unowned(unsafe) self] in
        let pool = self
        withExtendedLifetime(pool) { pool.sweep() }
    }
    private var expired: [Int] = []

    public init(configuration: Configuration, loop: EventLoop) {
        self.configuration = configuration
        self.loop = loop
        self.state = PoolStateMachine(configuration: .init(maxIdle: configuration.maxIdle, idleTimeoutMillis: configuration.idleTimeoutMillis))
    }

    deinit {
        sweepTimer.cancel()
    }

    public var idleCount: Int { state.idleCount }

    /// Returns a connection for a new exchange: a parked one that passes the liveness check,
    /// or a new one whose connect is in progress (the delegate hears if it fails).
    /// `fresh` skips parked connections (used to re-send a request after a reused one failed).
    public func acquire(delegate: any UpstreamConnectionDelegate, fresh: Bool = false) throws(IOError) -> UpstreamConnection {
        while true {
            let action = fresh ? .connect : state.lease(now: loop.now, expired: &expired)
            closeExpired()
            switch action {
            case .reuse(let id, let check):
                guard let connection = parked.removeValue(forKey: ParkedID(id)) else { continue }
                // An upstream may close an idle connection at any moment; a peek that sees EOF
                // or stray bytes retires it before a request is written into it.
                guard connection.state == .open, !check || Socket.isIdleConnectionAlive(connection.fd) else {
                    connection.close()
                    continue
                }
                connection.cancelTimer()
                connection.delegate = delegate
                connection.beginExchange()
                return connection
            case .connect:
                let fd = try Socket.connect(to: configuration.address)
                let connection: UpstreamConnection
                do {
                    connection = try UpstreamConnection(id: nextID, fd: fd, loop: loop)
                } catch {
                    Socket.close(fd)
                    throw error
                }
                nextID += 1
                connection.delegate = delegate
                connection.armTimer(afterMillis: configuration.connectTimeoutMillis)
                return connection
            }
        }
    }

    /// Gives a connection back after an exchange. `reusable` is the exchange's verdict: the
    /// response was complete, framed by length or chunks, and nobody asked to close.
    public func release(_ connection: UpstreamConnection, reusable: Bool) {
        connection.exchangesServed += 1
        guard connection.state == .open else { return }
        switch state.release(id: connection.id, reusable: reusable && connection.outbound.isEmpty, now: loop.now) {
        case .close:
            connection.close()
        case .park(let deadline):
            connection.outbound.reset()
            connection.activityTimeoutMillis = 0
            connection.delegate = self
            connection.cancelTimer()
            connection.setReading(true)
            parked[ParkedID(connection.id)] = connection
            if !sweepTimer.isArmed || sweepTimer.deadline > deadline { loop.arm(sweepTimer, at: deadline) }
        }
    }

    /// Closes every idle connection and stops parking new ones (graceful shutdown).
    public func shutdown() {
        for id in state.shutdown() { parked.removeValue(forKey: ParkedID(id))?.close() }
    }

    private func sweep() {
        for id in state.expire(now: loop.now) { parked.removeValue(forKey: ParkedID(id))?.close() }
        if let next = state.nextDeadline { loop.arm(sweepTimer, at: next) }
    }

    private func closeExpired() {
        for id in expired { parked.removeValue(forKey: ParkedID(id))?.close() }
        expired.removeAll(keepingCapacity: true)
    }

    private func lost(_ connection: UpstreamConnection) {
        state.idleConnectionLost(id: connection.id)
        parked.removeValue(forKey: ParkedID(connection.id))
        connection.close()
    }
}

extension UpstreamPool: UpstreamConnectionDelegate {
    public func upstreamConnectFailed(_ connection: UpstreamConnection, error: IOError) { lost(connection) }
    public func upstream(_ connection: UpstreamConnection, didRead bytes: UnsafeRawBufferPointer) -> Int {
        // An idle upstream connection has no request outstanding: any byte is unsolicited
        // (often a 408 before the upstream closes), so the connection cannot be trusted.
        lost(connection)
        return bytes.count
    }
    public func upstreamDidClose(_ connection: UpstreamConnection, error: IOError?) { lost(connection) }
    public func upstreamDidDrain(_ connection: UpstreamConnection) {}
    public func upstreamTimedOut(_ connection: UpstreamConnection) {}
}

/// A parked connection's id as a dictionary key. Every exchange parks and takes back a
/// connection, and an `Int` key is hashed by SipHash each time; the ids are the pool's own
/// counter, never input, so one multiply-xorshift round with the table's seed spreads them.
struct ParkedID: Hashable {
    let value: Int

    init(_ value: Int) { self.value = value }

    func hash(into hasher: inout Hasher) { hasher.combine(value) }

    func _rawHashValue(seed: Int) -> Int {
        var h = UInt64(UInt(bitPattern: value)) ^ UInt64(UInt(bitPattern: seed))
        h &*= 0x9e37_79b9_7f4a_7c15
        h ^= h >> 32
        return Int(truncatingIfNeeded: h)
    }
}
