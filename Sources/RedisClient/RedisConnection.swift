import EventLoop
import Glibc

/// One connection to Redis, owned end to end: the socket, its `EventLoop` registration, the
/// transport (plain TCP or TLS, `RedisTransport`), the output buffer and the FIFO of commands
/// awaiting replies. hiredis is only the reply parser (`ReplyReader`); its 0.14 connection
/// layer has no TLS, no timeouts and resolves names with a blocking call.
///
/// - Commands are appended to one output buffer and written once per loop iteration
///   (`DeferredFlush`): every claim and completion a loop made in one iteration shares a
///   syscall, and Redis reads them as one pipeline.
/// - Redis answers each connection in command order (RESP), so each reply completes the
///   oldest command still owed one.
/// - A command whose last byte never left this process was surely not executed: when the
///   connection breaks, such commands fail `.notConnected` (safe to treat as not applied),
///   the others `.disconnected` (they may have run).
///
/// What a command timeout means. Each command has its own deadline (`command_timeout`, or a
/// longer one the caller sizes for a large payload). Past it, that command alone fails with
/// `.timeout` and its late reply is discarded; the connection and every other command on it
/// stay. Dropping the connection on one slow reply would fail every exchange of the loop at
/// once (each of them then has to be retried or released) for what is often one slow command
/// or a short stall. The connection is dropped only when the server is truly unresponsive:
/// the oldest unanswered command is `unresponsiveGraceMillis` past its own deadline.
public final class RedisConnection: EventHandler, DeferredFlush {
    public enum State: Sendable, Equatable { case disconnected, connecting, ready }

    public typealias Completion = (Result<RedisValue, RedisClientError>) -> Void

    /// Where the connection is; `State` is the public summary.
    enum Phase { case idle, locating, connectingTCP, handshaking, ready }

    public let configuration: Configuration
    /// Strong: the connection may outlive its owner's reference to the loop.
    public let loop: EventLoop
    public private(set) var state: State = .disconnected {
        didSet {
            guard state != oldValue else { return }
            if state == .ready || oldValue == .ready { nodeStats?.connectionReady(state == .ready) }
            onStateChange?(oldValue, state)
        }
    }
    /// This node's entry in `configuration.stats` (looked up on each connect).
    var nodeStats: (any RedisNodeStats)?
    /// Observes every state change (old, new), e.g. for readiness and logs.
    public var onStateChange: ((State, State) -> Void)?
    /// Why the last connection attempt or connection failed (for logs and readiness).
    public private(set) var lastError = "not connected yet"
    /// Runs after every successful (re)connect, before queued user commands are answered;
    /// the store uses it to load its Lua scripts.
    public var onReady: ((RedisConnection) -> Void)?
    /// Where to connect, asked before every connect (Sentinel); nil: the configured address.
    public var locatePrimary: ((@escaping (Result<Endpoint, LocateError>) -> Void) -> Void)?
    /// Replies no command asked for (a subscribed connection's messages); nil: such a reply
    /// breaks the connection, as it means the replies no longer match the commands.
    public var onPush: ((RedisValue) -> Void)?
    /// Keeps what this connection needs alive (e.g. its Sentinel locator).
    public var companion: AnyObject?
    /// The address of the current or last connection.
    public private(set) var endpoint: Endpoint

    var phase = Phase.idle
    /// `close()` was called: no reconnect.
    var closedForGood = false
    var fd: Int32 = -1
    var transport: (any RedisTransport)?
    var reader: ReplyReader?
    /// Counts connections: a completion that tore this one down (and maybe opened the next)
    /// must stop the loop that called it.
    var generation: UInt64 = 0
    /// Bytes not yet written start at `out[outStart]`; stream offsets count from the
    /// connection's first byte (`queuedBytes` appended, `writtenBytes` written).
    var out: [UInt8] = []
    var outStart = 0
    var queuedBytes: UInt64 = 0
    var writtenBytes: UInt64 = 0
    var flushScheduled = false
    /// TLS: a write that needs the socket readable, or a read that needs it writable.
    var writeWaitsForReadable = false
    var readWaitsForWritable = false
    var pending: [PendingCommand] = []
    var pendingHead = 0
    var backoffMillis: UInt64 = 50
    /// Setup commands (AUTH, SELECT, ROLE) of this connection still unanswered, and the stream
    /// offset where they end.
    var setupOutstanding = 0
    var setupEnd: UInt64 = 0
    var connectDeadline: UInt64 = 0
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    lazy var timeoutTimer = Timer { [weak self] in self?.checkTimeouts() }
    lazy var reconnectTimer = Timer { [weak self] in self?.connect() }

    public init(configuration: Configuration, loop: EventLoop) {
        self.configuration = configuration
        self.loop = loop
        endpoint = Endpoint(host: configuration.host, port: configuration.port)
    }

    deinit {
        if fd >= 0 {
            loop.deregister(fd)
            transport?.shutdown()
            Socket.close(fd)
        }
        readBuffer.deallocate()
        // Not `complete`: nothing may use this connection now, so no callback is told it answered.
        for command in pending[pendingHead...] { command.finish(.failure(.disconnected("connection closed")), from: nil) }
    }

    // MARK: commands

    /// Sends one command given as arguments (binary-safe), formatted through `RedisCommand`.
    public func send(_ arguments: [[UInt8]], completion: @escaping Completion) {
        var command = RedisCommand(argumentCount: arguments.count, capacity: arguments.reduce(16) { $0 + $1.count + 16 })
        for argument in arguments { command.append(argument) }
        send(command, completion: completion)
    }

    public func send(_ arguments: [String], completion: @escaping Completion) {
        send(arguments.map { Array($0.utf8) }, completion: completion)
    }

    /// Sends a command already formatted as RESP (see `RedisCommand`). The completion runs on
    /// the loop thread, exactly once. Fails at once while disconnected, so callers can apply
    /// their fail mode without waiting for a timeout; while connecting it waits for the
    /// connection. `timeoutMillis` overrides `command_timeout` for this command (a large
    /// payload needs longer to travel).
    public func send(_ command: RedisCommand, timeoutMillis: UInt64? = nil, completion: @escaping Completion) {
        enqueue(command, timeoutMillis: timeoutMillis, .plain(completion))
    }

    func enqueue(_ command: RedisCommand, timeoutMillis: UInt64?, _ callback: Callback) {
        precondition(command.isComplete, "RedisCommand: argument count does not match")
        guard phase != .idle else {
            // Never queued, so nothing was sent on this connection.
            switch callback {
            case .plain(let completion): completion(.failure(.notConnected(lastError)))
            case .answered(let answered): answered(.failure(.notConnected(lastError)), self)
            }
            return
        }
        let start = queuedBytes
        out.append(contentsOf: command.bytes)
        queuedBytes += UInt64(command.bytes.count)
        let pending = PendingCommand(
            callback: callback, deadline: loop.now + (timeoutMillis ?? configuration.commandTimeoutMillis),
            streamStart: start, streamEnd: queuedBytes, startNanos: nodeStats == nil ? 0 : EventLoop.monotonicNanos())
        self.pending.append(pending)
        // Only ever earlier: a later deadline would postpone the connect timeout or another
        // command's deadline.
        if !timeoutTimer.isArmed || pending.deadline < timeoutTimer.deadline { loop.arm(timeoutTimer, at: pending.deadline) }
        scheduleFlush()
    }

    func scheduleFlush() {
        guard phase == .ready, !flushScheduled else { return }
        flushScheduled = true
        loop.flushBeforeWait(self)
    }

    public func flushBeforeWait() {
        flushScheduled = false
        if phase == .ready { writeOut() }
    }

    // MARK: connection lifecycle

    /// Starts connecting now (and again after every failure, with back-off).
    public func connect() {
        guard phase == .idle, !closedForGood else { return }
        reconnectTimer.cancel()
        guard let locatePrimary else {
            open(endpoint)
            return
        }
        phase = .locating
        state = .connecting
        let generation = self.generation
        locatePrimary { [weak self] result in
            guard let self, self.generation == generation, self.phase == .locating else { return }
            switch result {
            case .success(let endpoint):
                self.phase = .idle
                self.open(endpoint)
            case .failure(let error):
                self.teardown(error.description)
            }
        }
    }

    /// Ends the connection for good: outstanding commands fail, and it never reconnects.
    public func close() {
        closedForGood = true
        reconnectTimer.cancel()
        teardown("connection closed")
    }

    /// Drops the connection (if any) and connects again at once, e.g. when Sentinel announced
    /// a new primary.
    public func reconnect(_ reason: String) {
        guard !closedForGood else { return }
        teardown(reason)
        backoffMillis = 50
        connect()
    }

    /// Connects to `endpoint` now, dropping the current connection unless it is already to
    /// that address (a Sentinel announced the new primary: no need to ask again).
    public func move(to endpoint: Endpoint, _ reason: String) {
        guard !closedForGood else { return }
        if endpoint == self.endpoint && (phase == .connectingTCP || phase == .handshaking || phase == .ready) { return }
        teardown(reason)
        reconnectTimer.cancel()
        backoffMillis = 50
        open(endpoint)
    }

    func open(_ endpoint: Endpoint) {
        self.endpoint = endpoint
        // Names are resolved once, at startup, never on the loop (getaddrinfo blocks): an
        // address a Sentinel or a Cluster hands out must be one.
        guard RedisTLSContext.isIPLiteral(endpoint.host) else {
            openFailed("\(endpoint) is a host name, not an address: make Sentinel and Cluster announce IP addresses")
            return
        }
        nodeStats = configuration.stats?.stats(forNode: endpoint.description)
        do {
            let address = try Socket.Address.resolve(host: endpoint.host, port: endpoint.port)
            fd = try Socket.connect(to: address)
        } catch {
            openFailed("\(error)")
            return
        }
        do {
            if let context = configuration.tls {
                transport = try TLSTransport(fd: fd, context: context, serverName: configuration.tlsServerName ?? endpoint.host)
            } else {
                transport = PlainTransport(fd: fd)
            }
        } catch {
            Socket.close(fd)
            fd = -1
            openFailed("\(error)")
            return
        }
        do {
            try loop.register(fd, handler: self, interest: [.write])
        } catch {
            Socket.close(fd)
            fd = -1
            transport = nil
            openFailed("\(error)")
            return
        }
        reader = ReplyReader()
        phase = .connectingTCP
        state = .connecting
        // A blackholed Redis would leave the connect pending for minutes.
        connectDeadline = loop.now + max(configuration.commandTimeoutMillis, 1000)
        // Commands queued while locating keep their own (maybe earlier) deadlines.
        let earliest = pending[pendingHead...].lazy.filter { !$0.completed }.map(\.deadline).min() ?? .max
        loop.arm(timeoutTimer, at: max(min(connectDeadline, earliest), loop.now + 1))
        // Sent first once connected, before anything queued meanwhile: AUTH and SELECT from
        // the URL, and ROLE where only a primary will do.
        if !pending.isEmpty { moveQueuedBehindSetup { self.queueSetupCommands() } } else { queueSetupCommands() }
        setupEnd = pending.isEmpty ? 0 : pending[..<setupOutstanding].last?.streamEnd ?? 0
    }

    /// No socket came of it: what was queued while locating fails as never sent.
    func openFailed(_ why: String) {
        let commands = pending[pendingHead...]
        pending = []
        pendingHead = 0
        out = []
        outStart = 0
        queuedBytes = 0
        connectionLost(why)
        for command in commands { complete(command, .failure(.notConnected(why))) }
    }

    func queueSetupCommands() {
        if let password = configuration.password {
            var auth = ["AUTH"]
            if let username = configuration.username { auth.append(username) }
            auth.append(password)
            sendSetup(auth)
        }
        if configuration.database != 0 { sendSetup(["SELECT", String(configuration.database)]) }
        if configuration.requirePrimary {
            sendSetup(["ROLE"]) { reply in
                guard case .array(let items) = reply, let role = items.first?.text else { return "ROLE answered \(reply)" }
                return role == "master" ? nil : "\(self.endpoint) is a \(role), not the primary"
            }
        }
    }

    /// Commands queued while the address was being located go out after the setup commands:
    /// their bytes are moved behind what `queue` appends (nothing was written yet).
    func moveQueuedBehindSetup(_ queue: () -> Void) {
        let queued = pending
        let queuedBytes = out
        pending = []
        pendingHead = 0
        out = []
        self.queuedBytes = 0
        queue()
        let shift = self.queuedBytes
        out.append(contentsOf: queuedBytes)
        self.queuedBytes += UInt64(queuedBytes.count)
        for command in queued {
            command.streamStart += shift
            command.streamEnd += shift
        }
        pending.append(contentsOf: queued)
    }

    /// A command that must precede every other on the connection. It may wait as long as the
    /// connect itself: dropped as expired, it would leave the connection unauthenticated. Any
    /// answer but success ends the connection (a late `-ERR` would otherwise go unseen), and
    /// only once every setup command succeeded does the reconnect back-off start over, so a
    /// wrong password keeps backing off instead of reconnecting at once, forever.
    /// `problem` tells a success reply that is still unacceptable (a replica's ROLE).
    func sendSetup(_ arguments: [String], problem: @escaping (RedisValue) -> String? = { _ in nil }) {
        var command = RedisCommand(argumentCount: arguments.count)
        for argument in arguments { command.append(argument) }
        setupOutstanding += 1
        send(command, timeoutMillis: connectDeadline - loop.now + configuration.commandTimeoutMillis) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(.error(let message)):
                self.teardown("\(arguments[0]) failed: \(message)")
            case .success(let reply):
                if let why = problem(reply) {
                    self.teardown(why)
                    return
                }
                self.setupOutstanding -= 1
                if self.setupOutstanding == 0 { self.setupSucceeded() }
            case .failure(let error):
                self.teardown("\(arguments[0]) failed: \(error)")
            }
        }
    }

    /// The socket (and TLS) is up: the setup commands go out, and the rest once they
    /// succeeded (`setupSucceeded`), so nothing reaches a server that refused AUTH or turned out
    /// to be a replica.
    func becameReady() {
        phase = .ready
        // Commands that expired while connecting were answered `.notConnected`: they must
        // never reach the server now.
        if pending[pendingHead...].contains(where: \.completed) { dropExpiredUnsent() }
        lastError = ""
        updateInterest()
        if setupOutstanding == 0 {
            setupSucceeded()
        } else {
            writeOut()
        }
        guard phase == .ready else { return }
        if pendingHead == pending.count { timeoutTimer.cancel() } else { checkTimeouts() }
    }

    /// Every setup command answered as it should: the connection is usable.
    func setupSucceeded() {
        guard phase == .ready else { return }
        backoffMillis = 50
        state = .ready
        onReady?(self)
        guard phase == .ready else { return }
        writeOut()
    }

    /// The stream offset of `out[0]`.
    var streamBase: UInt64 { writtenBytes - UInt64(outStart) }

    /// Where writing must stop for now: after the setup commands while any is unanswered.
    var writableEnd: Int {
        guard setupOutstanding > 0 else { return out.count }
        return setupEnd > streamBase ? min(out.count, Int(setupEnd - streamBase)) : outStart
    }

    /// Rebuilds the (wholly unwritten) output without the commands already completed.
    func dropExpiredUnsent() {
        var kept: [PendingCommand] = []
        var bytes: [UInt8] = []
        bytes.reserveCapacity(out.count)
        for command in pending[pendingHead...] where !command.completed {
            let length = command.streamEnd - command.streamStart
            bytes.append(contentsOf: out[Int(command.streamStart)..<Int(command.streamEnd)])
            command.streamStart = UInt64(bytes.count) - length
            command.streamEnd = UInt64(bytes.count)
            kept.append(command)
        }
        out = bytes
        outStart = 0
        queuedBytes = UInt64(bytes.count)
        pending = kept
        pendingHead = 0
    }

    func updateInterest() {
        guard fd >= 0 else { return }
        var interest: Interest
        switch phase {
        case .idle, .locating: return
        case .connectingTCP: interest = [.write]
        case .handshaking: return  // set by each handshake step
        case .ready:
            interest = [.read]
            if (outStart < writableEnd && !writeWaitsForReadable) || readWaitsForWritable { interest.insert(.write) }
        }
        loop.setInterest(fd, interest)
    }

    /// Closes the socket, fails what is outstanding and schedules a reconnect.
    func teardown(_ reason: String) {
        guard phase != .idle else { return }
        generation &+= 1
        if fd >= 0 {
            loop.deregister(fd)
            if phase == .ready { transport?.shutdown() }
            Socket.close(fd)
            fd = -1
        }
        transport = nil
        reader = nil
        out = []
        outStart = 0
        writeWaitsForReadable = false
        readWaitsForWritable = false
        setupOutstanding = 0
        let written = writtenBytes
        queuedBytes = 0
        writtenBytes = 0
        phase = .idle
        let commands = pending[pendingHead...]
        pending = []
        pendingHead = 0
        connectionLost(reason)
        for command in commands {
            complete(command, .failure(command.streamEnd > written ? .notConnected(reason) : .disconnected(reason)))
        }
    }

    func connectionLost(_ why: String) {
        lastError = why
        state = .disconnected
        timeoutTimer.cancel()
        guard !closedForGood else { return }
        loop.arm(reconnectTimer, after: backoffMillis)
        backoffMillis = min(backoffMillis * 2, configuration.maxBackoffMillis)
    }
}
