import EventLoop

/// Where a store's commands go: one connection (a server, or the primary Sentinel names), or
/// a Redis Cluster, which sends each command to the node owning its key's slot.
public protocol RedisChannel: AnyObject {
    var loop: EventLoop { get }
    var commandTimeoutMillis: UInt64 { get }
    /// `.ready` when every command can be sent (Cluster: every slot's owner is connected).
    var state: RedisConnection.State { get }
    var lastError: String { get }
    var onStateChange: ((RedisConnection.State, RedisConnection.State) -> Void)? { get set }
    /// Runs after each (re)connect of each underlying connection, before commands queued for
    /// it are answered: load scripts there, check it.
    var onReady: ((RedisConnection) -> Void)? { get set }
    /// Every connection the channel holds now.
    var connections: [RedisConnection] { get }
    func connect()
    /// `key` routes the command (Cluster); nil: any connection will do. The completion also
    /// gets the connection whose reply it is (after any Cluster redirection): what followed
    /// the command there (WAIT, loading scripts) must go to that one.
    func send(
        _ command: RedisCommand, key: String?, timeoutMillis: UInt64?,
        answered: @escaping (Result<RedisValue, RedisClientError>, RedisConnection?) -> Void)
    /// The connection a command for `key` goes to now (nil: not known yet).
    func connection(for key: String) -> RedisConnection?
    /// A name for per-server bookkeeping that survives reconnects: one name for a single
    /// logical server (across Sentinel failovers too), the node's address in a Cluster.
    func serverName(of connection: RedisConnection) -> String
}

extension RedisChannel {
    public func send(_ command: RedisCommand, key: String?, timeoutMillis: UInt64?, completion: @escaping RedisConnection.Completion) {
        send(command, key: key, timeoutMillis: timeoutMillis) { result, _ in completion(result) }
    }

    public func send(_ arguments: [[UInt8]], key: String?, completion: @escaping RedisConnection.Completion) {
        var command = RedisCommand(argumentCount: arguments.count, capacity: arguments.reduce(16) { $0 + $1.count + 16 })
        for argument in arguments { command.append(argument) }
        send(command, key: key, timeoutMillis: nil, completion: completion)
    }
}

extension RedisConnection: RedisChannel {
    public var commandTimeoutMillis: UInt64 { configuration.commandTimeoutMillis }
    public var connections: [RedisConnection] { [self] }

    public func send(
        _ command: RedisCommand, key: String?, timeoutMillis: UInt64?,
        answered: @escaping (Result<RedisValue, RedisClientError>, RedisConnection?) -> Void
    ) {
        enqueue(command, timeoutMillis: timeoutMillis, .answered(answered))
    }

    public func connection(for key: String) -> RedisConnection? { self }

    public func serverName(of connection: RedisConnection) -> String { "primary" }
}
