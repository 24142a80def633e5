import CHiredis
import EventLoop

/// One hiredis async context driven by an `EventLoop` (the epoll adapter hiredis 0.14 lacks).
///
/// How the adapter follows hiredis' rules (see hiredis `async.c` and `adapters/libuv.h`):
/// - One level-triggered registration with a combined mask: `redisAsyncHandleRead/Write` do
///   exactly one read(2)/write(2) each, so edge-triggering would strand buffered bytes.
/// - `cleanup` may run inside `redisAsyncHandleRead`; the write handler is skipped when the
///   context vanished meanwhile, and hiredis — not us — closes the fd after `cleanup`.
/// - Every command callback runs exactly once (with NULL on teardown), except when queuing
///   fails, where the caller is completed directly.
/// - 0.14 has no timer hook: command and connect timeouts are this class's own loop timers.
///
/// What a command timeout means. Each command has its own deadline (`command_timeout`, or a
/// longer one the caller sizes for a large payload). Past it, that command alone fails with
/// `.timeout` and its late reply is discarded; the connection and every other command on it
/// stay. Dropping the connection on one slow reply would fail every exchange of the loop at
/// once (each of them then has to be retried or released) for what is often one slow command
/// or a short stall. The connection is dropped only when the server is truly unresponsive:
/// the oldest unanswered command is `unresponsiveGraceMillis` past its own deadline. Replies
/// arrive in command order (RESP), so an unanswered oldest command means no reply at all has
/// come for that long.
/// - Redis is addressed by IP: `redisAsyncConnect` resolves names with a blocking getaddrinfo.
public final class RedisConnection: EventHandler {
    public struct Configuration: Sendable {
        /// An IP literal (resolve names once at startup).
        public var host: String
        public var port: UInt16
        public var username: String?
        public var password: String?
        public var database: Int
        public var commandTimeoutMillis: UInt64
        /// Reconnect back-off starts at 50 ms and doubles up to this cap.
        public var maxBackoffMillis: UInt64

        /// How long past its deadline the oldest unanswered command may stay unanswered before
        /// the server counts as unresponsive and the connection is dropped.
        public var unresponsiveGraceMillis: UInt64 { max(commandTimeoutMillis * 2, 1000) }

        public init(host: String, port: UInt16, username: String? = nil, password: String? = nil, database: Int = 0,
                    commandTimeoutMillis: UInt64 = 250, maxBackoffMillis: UInt64 = 500) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.commandTimeoutMillis = commandTimeoutMillis
            self.maxBackoffMillis = maxBackoffMillis
        }
    }

    public enum State: Sendable, Equatable { case disconnected, connecting, ready }

    public typealias Completion = (Result<RedisValue, RedisClientError>) -> Void

    final class PendingCommand {
        let completion: Completion
        let deadline: UInt64
        /// The completion ran (reply, timeout or teardown).
        var completed = false
        /// hiredis is done with it (a reply arrived, or teardown). Only answered commands leave
        /// the FIFO, so its head is always the oldest command the server still owes a reply.
        var answered = false
        init(completion: @escaping Completion, deadline: UInt64) {
            self.completion = completion
            self.deadline = deadline
        }
    }

    public let configuration: Configuration
    /// Strong: the connection may outlive its owner's reference to the loop (hiredis calls
    /// back into it during teardown).
    public let loop: EventLoop
    public private(set) var state: State = .disconnected {
        didSet { if state != oldValue { onStateChange?(oldValue, state) } }
    }
    /// Observes every state change (old, new), e.g. for readiness and logs.
    public var onStateChange: ((State, State) -> Void)?
    /// Why the last connection attempt or connection failed (for logs and readiness).
    public private(set) var lastError = "not connected yet"
    /// Runs after every successful (re)connect, before queued user commands are answered;
    /// the store uses it to load its Lua scripts.
    public var onReady: ((RedisConnection) -> Void)?

    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var fd: Int32 = -1
    private var wantRead = false
    private var wantWrite = false
    private var registered = false
    private var pending: [PendingCommand] = []
    private var pendingHead = 0
    private var backoffMillis: UInt64 = 50
    private var connectDeadline: UInt64 = 0
    private lazy var timeoutTimer = Timer { [weak self] in self?.checkTimeouts() }
    private lazy var reconnectTimer = Timer { [weak self] in self?.connect() }

    public init(configuration: Configuration, loop: EventLoop) {
        self.configuration = configuration
        self.loop = loop
    }

    deinit {
        guard let context else { return }
        // Hooks and callbacks must not reach an object being deinitialised: detach them first.
        context.pointee.data = nil
        context.pointee.ev.data = nil
        if registered { loop.deregister(fd) }
        redisAsyncFree(context)
    }

    // MARK: commands

    /// Sends one command given as arguments (binary-safe); formatted through `RedisCommand`,
    /// so there is one path into hiredis.
    public func send(_ arguments: [[UInt8]], completion: @escaping Completion) {
        var command = RedisCommand(argumentCount: arguments.count, capacity: arguments.reduce(16) { $0 + $1.count + 16 })
        for argument in arguments { command.append(argument) }
        send(command, completion: completion)
    }

    /// Sends a command already formatted as RESP (see `RedisCommand`). The completion runs on
    /// the loop thread, exactly once. Fails at once while disconnected, so callers can apply
    /// their fail mode without waiting for a timeout. `timeoutMillis` overrides
    /// `command_timeout` for this command (a large payload needs longer to travel).
    public func send(_ command: RedisCommand, timeoutMillis: UInt64? = nil, completion: @escaping Completion) {
        precondition(command.isComplete, "RedisCommand: argument count does not match")
        guard let context, state != .disconnected else {
            completion(.failure(.notConnected(lastError)))
            return
        }
        let pending = PendingCommand(completion: completion, deadline: loop.now + (timeoutMillis ?? configuration.commandTimeoutMillis))
        let privdata = Unmanaged.passRetained(pending).toOpaque()
        let status = command.bytes.withUnsafeBufferPointer { raw in
            raw.withMemoryRebound(to: CChar.self) {
                redisAsyncFormattedCommand(context, RedisConnection.replyCallback, privdata, $0.baseAddress, $0.count)
            }
        }
        guard status == REDIS_OK else {
            Unmanaged<PendingCommand>.fromOpaque(privdata).release()
            completion(.failure(.notQueued))
            return
        }
        self.pending.append(pending)
        // Only ever earlier: a later deadline would postpone the connect timeout or another
        // command's deadline.
        if !timeoutTimer.isArmed || pending.deadline < timeoutTimer.deadline { loop.arm(timeoutTimer, at: pending.deadline) }
    }

    public func send(_ arguments: [String], completion: @escaping Completion) {
        send(arguments.map { Array($0.utf8) }, completion: completion)
    }

    private static let replyCallback: @convention(c) (UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { context, reply, privdata in
        guard let privdata else { return }
        let command = Unmanaged<PendingCommand>.fromOpaque(privdata).takeRetainedValue()
        let owner = context?.pointee.data.map { Unmanaged<RedisConnection>.fromOpaque($0).takeUnretainedValue() }
        command.answered = true
        guard !command.completed else {
            // It timed out earlier; the late reply is discarded.
            owner?.dropCompleted()
            return
        }
        command.completed = true
        if let reply {
            command.completion(.success(RedisValue(copying: reply.assumingMemoryBound(to: redisReply.self))))
        } else {
            let why = context.flatMap { $0.pointee.errstr.map { String(cString: $0) } } ?? "connection closed"
            command.completion(.failure(.disconnected(why)))
        }
        owner?.dropCompleted()
    }

    /// Pops answered commands off the FIFO. The timer is left armed: when it fires it finds
    /// the next deadline itself, which keeps this (per reply) path free of a scan.
    private func dropCompleted() {
        while pendingHead < pending.count && pending[pendingHead].answered { pendingHead += 1 }
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
            if state != .connecting { timeoutTimer.cancel() }
        } else if pendingHead > 64 {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
    }

    private func failAllPending(_ error: RedisClientError) {
        let commands = pending[pendingHead...]
        pending.removeAll()
        pendingHead = 0
        for command in commands where !command.completed {
            command.completed = true
            command.answered = true
            command.completion(.failure(error))
        }
    }

    // MARK: connection lifecycle

    /// Starts connecting now (and again after every failure, with back-off).
    public func connect() {
        guard context == nil else { return }
        reconnectTimer.cancel()
        guard let context = redisAsyncConnect(configuration.host, Int32(configuration.port)) else {
            connectionLost("out of memory")
            return
        }
        if context.pointee.err != 0 {
            let why = context.pointee.errstr.map { String(cString: $0) } ?? "connect failed"
            redisAsyncFree(context)
            connectionLost(why)
            return
        }
        self.context = context
        fd = context.pointee.c.fd
        state = .connecting
        context.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        context.pointee.ev.data = Unmanaged.passUnretained(self).toOpaque()
        context.pointee.ev.addRead = { RedisConnection.adapter($0) { $0.wantRead = true } }
        context.pointee.ev.delRead = { RedisConnection.adapter($0) { $0.wantRead = false } }
        context.pointee.ev.addWrite = { RedisConnection.adapter($0) { $0.wantWrite = true } }
        context.pointee.ev.delWrite = { RedisConnection.adapter($0) { $0.wantWrite = false } }
        context.pointee.ev.cleanup = { privdata in
            guard let privdata else { return }
            Unmanaged<RedisConnection>.fromOpaque(privdata).takeUnretainedValue().contextCleanedUp()
        }
        redisAsyncSetConnectCallback(context, { context, status in
            guard let raw = context?.pointee.data else { return }
            Unmanaged<RedisConnection>.fromOpaque(raw).takeUnretainedValue().connected(status == REDIS_OK, context: context)
        })
        redisAsyncSetDisconnectCallback(context, { context, _ in
            guard let raw = context?.pointee.data else { return }
            let me = Unmanaged<RedisConnection>.fromOpaque(raw).takeUnretainedValue()
            let why = context.flatMap { $0.pointee.errstr.map { String(cString: $0) } } ?? "closed"
            me.connectionLost(why.isEmpty ? "connection closed by server" : why)
        })
        // hiredis connects without a deadline; a blackholed Redis would hang here forever.
        connectDeadline = loop.now + max(configuration.commandTimeoutMillis, 1000)
        loop.arm(timeoutTimer, at: connectDeadline)
        // Queued now, sent first once the socket connects: AUTH and SELECT from the URL.
        if let password = configuration.password {
            var auth = ["AUTH"]
            if let username = configuration.username { auth.append(username) }
            auth.append(password)
            sendSetup(auth)
        }
        if configuration.database != 0 { sendSetup(["SELECT", String(configuration.database)]) }
    }

    private func sendSetup(_ arguments: [String]) {
        send(arguments) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(.error(let message)):
                self.lastError = "\(arguments[0]) failed: \(message)"
                self.drop(reason: self.lastError)
            default:
                break
            }
        }
    }

    private static func adapter(_ privdata: UnsafeMutableRawPointer?, _ change: (RedisConnection) -> Void) {
        guard let privdata else { return }
        let me = Unmanaged<RedisConnection>.fromOpaque(privdata).takeUnretainedValue()
        change(me)
        me.updateInterest()
    }

    private func updateInterest() {
        guard context != nil, fd >= 0 else { return }
        var interest: Interest = []
        if wantRead { interest.insert(.read) }
        if wantWrite { interest.insert(.write) }
        if !registered {
            do {
                try loop.register(fd, handler: self, interest: interest)
                registered = true
            } catch {
                lastError = "\(error)"
            }
        } else {
            loop.setInterest(fd, interest)
        }
    }

    /// hiredis is tearing the context down; it closes the fd itself right after this.
    private func contextCleanedUp() {
        if registered { loop.deregister(fd) }
        registered = false
        wantRead = false
        wantWrite = false
        fd = -1
        context = nil
    }

    private func connected(_ ok: Bool, context: UnsafePointer<redisAsyncContext>?) {
        if ok {
            state = .ready
            backoffMillis = 50
            lastError = ""
            if pendingHead == pending.count { timeoutTimer.cancel() } else { checkTimeouts() }
            onReady?(self)
        } else {
            // hiredis frees the context after this callback returns.
            let why = context.flatMap { $0.pointee.errstr.map { String(cString: $0) } } ?? "connect failed"
            connectionLost(why)
        }
    }

    private func connectionLost(_ why: String) {
        // Both the disconnect callback and `drop` may report one loss: back off once.
        if state == .disconnected && reconnectTimer.isArmed { return }
        // hiredis sends nothing before the connect completes: commands queued while connecting
        // were never sent, and saying so spares callers undoing what never happened.
        let neverSent = state == .connecting
        lastError = why
        state = .disconnected
        failAllPending(neverSent ? .notConnected(why) : .disconnected(why))
        timeoutTimer.cancel()
        loop.arm(reconnectTimer, after: backoffMillis)
        backoffMillis = min(backoffMillis * 2, configuration.maxBackoffMillis)
    }

    /// Frees the context (outside hiredis callbacks only) and schedules a reconnect.
    private func drop(reason: String) {
        let context = self.context
        failAllPending(.disconnected(reason))
        if let context {
            // Pending callbacks get NULL (already completed above), then cleanup runs; the
            // disconnect callback fires only if the context had connected.
            redisAsyncFree(context)
        }
        self.context = nil
        if state != .disconnected { connectionLost(reason) }
    }

    private func checkTimeouts() {
        let now = loop.now
        if state == .connecting && now >= connectDeadline {
            lastError = "connect timed out"
            failAllPending(.notConnected("connect timed out"))
            drop(reason: "connect timed out")
            return
        }
        guard pendingHead < pending.count else {
            if state == .connecting { loop.arm(timeoutTimer, at: connectDeadline) }
            return
        }
        // Truly unresponsive: nothing answered long past the oldest command's deadline (only
        // a connected server owes replies; a connect has its own deadline).
        if state == .ready && now >= pending[pendingHead].deadline + configuration.unresponsiveGraceMillis {
            failAllPending(.timeout)
            drop(reason: "redis stopped answering (no reply for \(configuration.unresponsiveGraceMillis) ms past a command's deadline)")
            return
        }
        // Otherwise each command past its own deadline fails alone; the others keep waiting.
        // While connecting nothing was sent yet, so such a command surely was not applied.
        let expired: RedisClientError = state == .connecting ? .notConnected("still connecting") : .timeout
        var next = pending[pendingHead].deadline + configuration.unresponsiveGraceMillis
        var index = pendingHead
        while index < pending.count {
            let command = pending[index]
            index += 1
            guard !command.completed else { continue }
            if command.deadline <= now {
                command.completed = true
                command.completion(.failure(expired))
            } else {
                next = min(next, command.deadline)
            }
        }
        // The completions above may have sent commands or dropped the connection.
        guard context != nil else { return }
        if state == .connecting { next = min(next, connectDeadline) }
        guard pendingHead < pending.count || state == .connecting else { return }
        if pendingHead < pending.count { next = min(next, pending[pendingHead].deadline + configuration.unresponsiveGraceMillis) }
        loop.arm(timeoutTimer, at: next)
    }

    // MARK: EventHandler

    public func handleEvent(readable: Bool, writable: Bool) {
        guard let context else { return }
        if readable { redisAsyncHandleRead(context) }
        // The read may have torn the context down (EOF, error): then there is nothing to write.
        if writable, let context = self.context { redisAsyncHandleWrite(context) }
    }
}
