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
        loop.arm(periodicTimer, after: 1000)
    }

    /// The map is also reloaded on a timer: every second while some slot has no connected
    /// owner (a master died: its replica takes over, and only the map says where), every
    /// 30 s otherwise.
    private lazy var periodicTimer = Timer { [weak self] in self?.periodicRefresh() }

    private func periodicRefresh() {
        refreshMap()
        loop.arm(periodicTimer, after: state == .ready ? 30_000 : 1000)
    }

    // MARK: routing

    public func send(
        _ command: RedisCommand, key: String?, timeoutMillis: UInt64?,
        answered: @escaping (Result<RedisValue, RedisClientError>, RedisConnection?) -> Void
    ) {
        route(command, key: key, timeoutMillis: timeoutMillis, redirects: 0, completion: answered)
    }

    /// Where a command ends: its result, and the node that gave it.
    typealias Answered = (Result<RedisValue, RedisClientError>, RedisConnection?) -> Void

    public func connection(for key: String) -> RedisConnection? {
        let owner = slots[ClusterSlot.of(key)]
        return owner >= 0 ? nodes[Int(owner)] : nil
    }

    public func serverName(of connection: RedisConnection) -> String { connection.endpoint.description }

    private func route(
        _ command: RedisCommand, key: String?, timeoutMillis: UInt64?, redirects: Int, afterReload: Bool = false,
        completion: @escaping Answered
    ) {
        guard let target = key.map({ connection(for: $0) }) ?? nodes.first(where: { $0.state == .ready }) ?? nodes.first else {
            // Once: a slot still without an owner after a reload fails its command (never sent).
            guard !afterReload else {
                return completion(.failure(.notConnected("no cluster node owns the key's slot")), nil)
            }
            waitingForMap.append { [weak self] in
                self?.route(command, key: key, timeoutMillis: timeoutMillis, redirects: redirects, afterReload: true, completion: completion)
            }
            waitingFailures.append { completion(.failure(.notConnected($0)), nil) }
            refreshMap()
            return
        }
        target.send(command, timeoutMillis: timeoutMillis) { [weak self] result in
            guard let self else { return completion(result, target) }
            self.redirectIfAsked(result, from: target, command: command, key: key, timeoutMillis: timeoutMillis, redirects: redirects, completion: completion)
        }
    }

    private func redirectIfAsked(
        _ result: Result<RedisValue, RedisClientError>, from server: RedisConnection, command: RedisCommand, key: String?,
        timeoutMillis: UInt64?, redirects: Int, completion: @escaping Answered
    ) {
        guard case .success(.error(let message)) = result, redirects < Self.maxRedirects else { return completion(result, server) }
        let words = message.split(separator: " ")
        switch words.first {
        case "MOVED":
            guard words.count >= 3, let slot = Int(words[1]), slot >= 0, slot < ClusterSlot.count,
                  let endpoint = Self.endpoint(words[2], asked: server) else { return completion(result, server) }
            slots[slot] = Int32(node(endpoint))
            refreshMap()
            route(command, key: key, timeoutMillis: timeoutMillis, redirects: redirects + 1, completion: completion)
        case "ASK":
            guard words.count >= 3, let endpoint = Self.endpoint(words[2], asked: server) else { return completion(result, server) }
            let target = nodes[node(endpoint)]
            // Queued back to back, written together: ASKING applies to the very next command.
            target.send(["ASKING"]) { _ in }
            target.send(command, timeoutMillis: timeoutMillis) { [weak self] result in
                guard let self else { return completion(result, target) }
                self.redirectIfAsked(result, from: target, command: command, key: key, timeoutMillis: timeoutMillis, redirects: redirects + 1, completion: completion)
            }
        case "TRYAGAIN", "CLUSTERDOWN":
            // Only the loop's timer heap holds the timer, until it fires: a timer that held
            // itself (through its own action) would keep the completion, and whatever it holds,
            // alive for good if the loop stopped first.
            let retry = Timer { [weak self] in
                guard let self else { return completion(result, server) }
                self.route(command, key: key, timeoutMillis: timeoutMillis, redirects: redirects + 1, completion: completion)
            }
            loop.arm(retry, after: 100)
            if words.first == "CLUSTERDOWN" { refreshMap() }
        default:
            completion(result, server)
        }
    }

    /// `host:port` of a redirection; an empty host means the node asked, and an IPv6 literal
    /// has colons, so the port follows the last one.
    static func endpoint(_ text: Substring, asked: RedisConnection) -> RedisConnection.Endpoint? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        let host = String(text[..<colon])
        return RedisConnection.Endpoint(host: host.isEmpty ? asked.endpoint.host : host, port: port)
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
        connection.onStateChange = { [weak self] _, new in
            self?.updateState()
            // A node lost: maybe failed over; the map says who owns its slots now.
            if new == .disconnected { self?.refreshMap() }
        }
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

    /// `best`: the widest map refused so far for covering fewer slots than the one in use;
    /// taken when no node offers more (slots really were lost).
    private func ask(_ candidates: ArraySlice<RedisConnection>, problems: [String], best: (ranges: [RedisValue], source: RedisConnection, covered: Int)? = nil) {
        guard let source = candidates.first else {
            if let best, apply(best.ranges, from: best.source, minimumCoverage: 1) {
                return mapLoaded()
            }
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
            guard case .success(.array(let ranges)) = result else {
                return self.ask(candidates.dropFirst(), problems: problems + ["\(source.endpoint): \(result)"], best: best)
            }
            let current = self.slots.lazy.filter { $0 >= 0 }.count
            guard self.apply(ranges, from: source, minimumCoverage: max(1, current)) else {
                let covered = Self.coverage(ranges)
                let wider = covered > (best?.covered ?? 0) ? (ranges, source, covered) : best
                return self.ask(candidates.dropFirst(), problems: problems + ["\(source.endpoint): covers \(covered) slots"], best: wider)
            }
            self.mapLoaded()
        }
    }

    private func mapLoaded() {
        refreshing = false
        let waiting = waitingForMap
        waitingForMap = []
        waitingFailures = []
        updateState()
        for retry in waiting { retry() }
        if refreshAgain {
            refreshAgain = false
            // Slots move in bulk: a burst of MOVED replies needs one more load, not one each.
            loop.arm(refreshTimer, after: 100)
        }
    }

    /// How many slots a `CLUSTER SLOTS` reply assigns (0 when it is malformed).
    static func coverage(_ ranges: [RedisValue]) -> Int {
        var covered = 0
        for range in ranges {
            guard case .array(let fields) = range, fields.count >= 2, let start = fields[0].integer, let end = fields[1].integer,
                  start >= 0, end < ClusterSlot.count, start <= end else { return 0 }
            covered += Int(end - start + 1)
        }
        return covered
    }

    /// `CLUSTER SLOTS`: `[start, end, [host, port, id, …], replicas…]` per range. A map that
    /// covers fewer slots than the one in use is refused (a node that just joined, or is not
    /// yet part of the cluster, answers with few slots or none): the next node is asked.
    private func apply(_ ranges: [RedisValue], from source: RedisConnection, minimumCoverage: Int) -> Bool {
        guard Self.coverage(ranges) >= minimumCoverage else { return false }
        var map = [Int32](repeating: -1, count: ClusterSlot.count)
        for range in ranges {
            guard case .array(let fields) = range, fields.count >= 3,
                  let start = fields[0].integer, let end = fields[1].integer, start >= 0, end < ClusterSlot.count, start <= end,
                  case .array(let master) = fields[2], master.count >= 2,
                  let port = master[1].integer, let port16 = UInt16(exactly: port)
            else { return false }
            // An unknown endpoint (NULL, "") is the node asked.
            let host = master[0].text.flatMap { $0.isEmpty || $0 == "?" ? nil : $0 } ?? source.endpoint.host
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
