import EventLoop

/// Redis Cluster for one loop (Redis Cluster specification, "Redirection and resharding"): a
/// connection per master, a map from each of the 16384 slots to its owner learnt with
/// `CLUSTER SLOTS`, and each command sent to the owner of its key's slot.
///
/// - `-MOVED slot host:port`: the slot has a new owner. The command was not run: it goes to
///   the owner named, and the map is reloaded (slots move in bulk).
/// - `-ASK slot host:port`: the slot is migrating and this key is already on the target. The
///   command goes there once, right behind `ASKING` on the same connection; the map stays.
/// - `-TRYAGAIN`, `-CLUSTERDOWN`: retried shortly after (also not run).
/// At most `maxRedirects` hops per command, so a confused cluster fails a command instead of
/// bouncing it forever. A slot nobody owns yet holds its commands until the map is loaded, and
/// fails them (as never sent) if it cannot be.
public final class RedisCluster: RedisChannel {
    public struct Settings: Sendable {
        /// Where to ask for the map first.
        public var seeds: [RedisConnection.Configuration]
        /// Credentials, TLS and timeouts for every node (host and port come from the map).
        public var node: RedisConnection.Configuration

        public init(seeds: [RedisConnection.Configuration], node: RedisConnection.Configuration) {
            self.seeds = seeds
            self.node = node
        }
    }

    static let maxRedirects = 5

    public let loop: EventLoop
    private let settings: Settings
    /// Index into `nodes` per slot; -1: no owner known.
    private var slots = [Int32](repeating: -1, count: ClusterSlot.count)
    private var nodes: [RedisConnection] = []
    private var nodeIndex: [RedisConnection.Endpoint: Int] = [:]
    /// Commands whose slot has no known owner, waiting for the map.
    private var waitingForMap: [() -> Void] = []
    private var waitingFailures: [(String) -> Void] = []
    private var refreshing = false
    private var refreshAgain = false
    private lazy var refreshTimer = Timer { [weak self] in self?.refreshMap() }

    public var onStateChange: ((RedisConnection.State, RedisConnection.State) -> Void)?
    public var onReady: ((RedisConnection) -> Void)?
    public private(set) var state: RedisConnection.State = .disconnected {
        didSet { if state != oldValue { onStateChange?(oldValue, state) } }
    }
    public private(set) var lastError = "cluster map not loaded yet"
    public var commandTimeoutMillis: UInt64 { settings.node.commandTimeoutMillis }
    public var connections: [RedisConnection] { nodes }

    public init(settings: Settings, loop: EventLoop) {
        self.settings = settings
        self.loop = loop
    }

    public func connect() {
        for seed in settings.seeds { _ = node(RedisConnection.Endpoint(host: seed.host, port: seed.port)) }
        state = .connecting
        refreshMap()
    }

    // MARK: routing

    public func send(_ command: RedisCommand, key: String?, timeoutMillis: UInt64?, completion: @escaping RedisConnection.Completion) {
        route(command, key: key, timeoutMillis: timeoutMillis, redirects: 0, completion: completion)
    }

    public func connection(for key: String) -> RedisConnection? {
        let owner = slots[ClusterSlot.of(key)]
        return owner >= 0 ? nodes[Int(owner)] : nil
    }

    public func serverName(of connection: RedisConnection) -> String { connection.endpoint.description }

    private func route(
        _ command: RedisCommand, key: String?, timeoutMillis: UInt64?, redirects: Int, completion: @escaping RedisConnection.Completion
    ) {
        guard let target = key.map({ connection(for: $0) }) ?? nodes.first(where: { $0.state == .ready }) ?? nodes.first else {
            waitingForMap.append { [weak self] in self?.route(command, key: key, timeoutMillis: timeoutMillis, redirects: redirects, completion: completion) }
            waitingFailures.append { completion(.failure(.notConnected($0))) }
            refreshMap()
            return
        }
        target.send(command, timeoutMillis: timeoutMillis) { [weak self] result in
            guard let self else { return completion(result) }
            self.redirectIfAsked(result, command: command, key: key, timeoutMillis: timeoutMillis, redirects: redirects, completion: completion)
        }
    }

    private func redirectIfAsked(
        _ result: Result<RedisValue, RedisClientError>, command: RedisCommand, key: String?, timeoutMillis: UInt64?, redirects: Int,
        completion: @escaping RedisConnection.Completion
    ) {
        guard case .success(.error(let message)) = result, redirects < Self.maxRedirects else { return completion(result) }
        let words = message.split(separator: " ")
        switch words.first {
        case "MOVED":
            guard words.count >= 3, let slot = Int(words[1]), slot >= 0, slot < ClusterSlot.count,
                  let endpoint = Self.endpoint(words[2]) else { return completion(result) }
            slots[slot] = Int32(node(endpoint))
            refreshMap()
            route(command, key: key, timeoutMillis: timeoutMillis, redirects: redirects + 1, completion: completion)
        case "ASK":
            guard words.count >= 3, let endpoint = Self.endpoint(words[2]) else { return completion(result) }
            let target = nodes[node(endpoint)]
            // Queued back to back, written together: ASKING applies to the very next command.
            target.send(["ASKING"]) { _ in }
            target.send(command, timeoutMillis: timeoutMillis) { [weak self] result in
                guard let self else { return completion(result) }
                self.redirectIfAsked(result, command: command, key: key, timeoutMillis: timeoutMillis, redirects: redirects + 1, completion: completion)
            }
        case "TRYAGAIN", "CLUSTERDOWN":
            var retry: Timer?
            retry = Timer { [weak self] in
                _ = retry
                retry = nil
                guard let self else { return completion(result) }
                self.route(command, key: key, timeoutMillis: timeoutMillis, redirects: redirects + 1, completion: completion)
            }
            loop.arm(retry!, after: 100)
            if words.first == "CLUSTERDOWN" { refreshMap() }
        default:
            completion(result)
        }
    }

    /// `host:port` of a redirection; the host may be empty (the node we asked; not used by
    /// idemproxy's nodes) or an IPv6 literal, so the port follows the last colon.
    static func endpoint(_ text: Substring) -> RedisConnection.Endpoint? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        let host = String(text[..<colon])
        return host.isEmpty ? nil : RedisConnection.Endpoint(host: host, port: port)
    }

    /// The index of the node at `endpoint`, connecting to it the first time.
    private func node(_ endpoint: RedisConnection.Endpoint) -> Int {
        if let index = nodeIndex[endpoint] { return index }
        var configuration = settings.node
        configuration.host = endpoint.host
        configuration.port = endpoint.port
        let connection = RedisConnection(configuration: configuration, loop: loop)
        let index = nodes.count
        nodes.append(connection)
        nodeIndex[endpoint] = index
        connection.onReady = { [weak self] connection in self?.onReady?(connection) }
        connection.onStateChange = { [weak self] _, _ in self?.updateState() }
        connection.connect()
        return index
    }

    // MARK: the slot map

    /// Reloads the map from the first node that answers; coalesced: one load at a time, and
    /// at most one more after it.
    private func refreshMap() {
        guard !refreshing else {
            refreshAgain = true
            return
        }
        refreshing = true
        let candidates = nodes.filter { $0.state == .ready } + nodes.filter { $0.state != .ready }
        ask(candidates[...], problems: [])
    }

    private func ask(_ candidates: ArraySlice<RedisConnection>, problems: [String]) {
        guard let source = candidates.first else {
            refreshing = false
            lastError = "no cluster node gave the slot map: " + problems.joined(separator: "; ")
            let failures = waitingFailures
            waitingForMap = []
            waitingFailures = []
            for fail in failures { fail(lastError) }
            updateState()
            loop.arm(refreshTimer, after: 500)
            return
        }
        source.send(["CLUSTER", "SLOTS"]) { [weak self] result in
            guard let self else { return }
            guard case .success(.array(let ranges)) = result, self.apply(ranges) else {
                return self.ask(candidates.dropFirst(), problems: problems + ["\(source.endpoint): \(result)"])
            }
            self.refreshing = false
            let waiting = self.waitingForMap
            self.waitingForMap = []
            self.waitingFailures = []
            self.updateState()
            for retry in waiting { retry() }
            if self.refreshAgain {
                self.refreshAgain = false
                // Slots move in bulk: a burst of MOVED replies needs one more load, not one each.
                self.loop.arm(self.refreshTimer, after: 100)
            }
        }
    }

    /// `CLUSTER SLOTS`: `[start, end, [host, port, id, …], replicas…]` per range.
    private func apply(_ ranges: [RedisValue]) -> Bool {
        var map = [Int32](repeating: -1, count: ClusterSlot.count)
        for range in ranges {
            guard case .array(let fields) = range, fields.count >= 3,
                  let start = fields[0].integer, let end = fields[1].integer, start >= 0, end < ClusterSlot.count, start <= end,
                  case .array(let master) = fields[2], master.count >= 2,
                  let host = master[0].text, !host.isEmpty, let port = master[1].integer, let port16 = UInt16(exactly: port)
            else { return false }
            let index = Int32(node(RedisConnection.Endpoint(host: host, port: port16)))
            for slot in Int(start)...Int(end) { map[slot] = index }
        }
        slots = map
        return true
    }

    private func updateState() {
        let owners = Set(slots.filter { $0 >= 0 })
        if owners.isEmpty || slots.contains(-1) {
            state = refreshing || nodes.contains { $0.state != .disconnected } ? .connecting : .disconnected
            return
        }
        let down = owners.map { nodes[Int($0)] }.filter { $0.state != .ready }
        if down.isEmpty {
            state = .ready
            lastError = ""
        } else {
            lastError = down.map { "\($0.endpoint): \($0.lastError)" }.joined(separator: "; ")
            state = down.contains { $0.state == .disconnected } ? .disconnected : .connecting
        }
    }
}
