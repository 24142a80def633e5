import EventLoop

/// Finds the Redis primary through Sentinel and notices when it moves, for one loop's
/// connection (Redis "Sentinel client spec"):
///
/// - Before every connect, asks the Sentinels in turn `SENTINEL get-master-addr-by-name`,
///   the one that answered first next time. A Sentinel that does not know the name is
///   skipped, as is one that cannot be reached.
/// - The connection then checks `ROLE` itself (`requirePrimary`): a stale Sentinel can name
///   a demoted primary.
/// - A connection subscribed on one Sentinel reconnects the data connection the moment a
///   replica is promoted or a failover is announced. The old primary stays writable for
///   seconds after a failover until Sentinel demotes it; writes sent there would be lost.
///   The announcement is only a trigger: `READONLY` replies and `ROLE` cover a missed one.
public final class SentinelLocator {
    public struct Settings: Sendable {
        public var masterName: String
        /// One per Sentinel: its address, TLS and timeouts (no credentials: those are the
        /// data nodes').
        public var nodes: [RedisConnection.Configuration]

        public init(masterName: String, nodes: [RedisConnection.Configuration]) {
            self.masterName = masterName
            self.nodes = nodes
        }
    }

    private let settings: Settings
    private let loop: EventLoop
    /// Indexes into `settings.nodes`, the last one that answered first.
    private var order: [Int]
    /// The one-off connections asking for the primary right now.
    private var probes: [ObjectIdentifier: RedisConnection] = [:]
    private var watcher: RedisConnection?

    public init(settings: Settings, loop: EventLoop) {
        self.settings = settings
        self.loop = loop
        order = Array(settings.nodes.indices)
    }

    /// Asks the Sentinels, in order, for the primary's address.
    public func locate(_ completion: @escaping (Result<RedisConnection.Endpoint, RedisConnection.LocateError>) -> Void) {
        ask(position: 0, problems: [], completion)
    }

    private func ask(position: Int, problems: [String], _ completion: @escaping (Result<RedisConnection.Endpoint, RedisConnection.LocateError>) -> Void) {
        guard position < order.count else {
            completion(.failure(RedisConnection.LocateError("no Sentinel named the primary \(settings.masterName): " + problems.joined(separator: "; "))))
            return
        }
        let node = order[position]
        let probe = RedisConnection(configuration: settings.nodes[node], loop: loop)
        let id = ObjectIdentifier(probe)
        probes[id] = probe
        let sentinel = probe.endpoint
        var answered = false
        let finish = { [weak self] (outcome: ProbeOutcome) in
            guard let self, !answered else { return }
            answered = true
            self.probes.removeValue(forKey: id)?.close()
            switch outcome {
            case .found(let primary):
                self.order.removeAll { $0 == node }
                self.order.insert(node, at: 0)
                completion(.success(primary))
            case .failed(let why):
                self.ask(position: position + 1, problems: problems + ["\(sentinel): \(why)"], completion)
            }
        }
        probe.onStateChange = { [weak probe] _, new in
            if new == .disconnected { finish(.failed(probe?.lastError ?? "unreachable")) }
        }
        probe.onReady = { [masterName = settings.masterName] connection in
            connection.send(["SENTINEL", "get-master-addr-by-name", masterName]) { result in
                switch result {
                case .success(.array(let items)) where items.count == 2:
                    guard let host = items[0].text, let port = items[1].text.flatMap({ UInt16($0) }) else {
                        return finish(.failed("unexpected answer \(items)"))
                    }
                    finish(.found(RedisConnection.Endpoint(host: host, port: port)))
                case .success(.null):
                    finish(.failed("does not monitor \(masterName)"))
                case .success(let other):
                    finish(.failed("unexpected answer \(other)"))
                case .failure(let error):
                    finish(.failed("\(error)"))
                }
            }
        }
        probe.connect()
        // A connect that failed at once reported no state change (it never left disconnected).
        if probe.state == .disconnected { finish(.failed(probe.lastError)) }
    }

    /// Subscribes on the first Sentinel to `+promoted-slave` (a replica of this master was
    /// just promoted: Sentinel names it from then on) and `+switch-master` (the failover
    /// ended); `primaryMoved` runs on either. The first is what keeps the window short in which
    /// the old primary, still writable and still feeding a replica that will resynchronise
    /// from the new one, takes writes that a failover then loses.
    public func watch(_ primaryMoved: @escaping () -> Void) {
        let watcher = RedisConnection(configuration: settings.nodes[order[0]], loop: loop)
        self.watcher = watcher
        let masterName = settings.masterName
        // One command, two replies: the second `subscribe` confirmation arrives as a push.
        watcher.onReady = { connection in
            connection.send(["SUBSCRIBE", "+switch-master", "+promoted-slave"]) { _ in }
        }
        watcher.onPush = { message in
            guard case .array(let items) = message, items.count == 3, items[0].text == "message",
                  let channel = items[1].text, let payload = items[2].text else { return }
            let words = payload.split(separator: " ")
            switch channel {
            case "+switch-master":
                // "<name> <old-ip> <old-port> <new-ip> <new-port>"
                guard words.first.map(String.init) == masterName else { return }
            case "+promoted-slave":
                // "slave <ip>:<port> <ip> <port> @ <name> <master-ip> <master-port>"
                guard let at = words.firstIndex(of: "@"), words.index(after: at) < words.endIndex,
                      String(words[words.index(after: at)]) == masterName else { return }
            default:
                return
            }
            primaryMoved()
        }
        watcher.connect()
    }

    deinit {
        watcher?.close()
        for probe in probes.values { probe.close() }
    }
}

/// What one Sentinel said.
private enum ProbeOutcome {
    case found(RedisConnection.Endpoint)
    case failed(String)
}

extension RedisConnection {
    /// A connection to the primary: the configured address, or, with `sentinel`, the one the
    /// Sentinels name, re-asked on every reconnect and followed across failovers.
    public static func toPrimary(_ configuration: Configuration, sentinel: SentinelLocator.Settings?, loop: EventLoop) -> RedisConnection {
        guard let sentinel else { return RedisConnection(configuration: configuration, loop: loop) }
        var configuration = configuration
        configuration.requirePrimary = true
        let connection = RedisConnection(configuration: configuration, loop: loop)
        let locator = SentinelLocator(settings: sentinel, loop: loop)
        connection.locatePrimary = { [weak locator] completion in
            guard let locator else { return completion(.failure(RedisConnection.LocateError("Sentinel locator gone"))) }
            locator.locate(completion)
        }
        locator.watch { [weak connection] in
            connection?.reconnect("Sentinel announced a new primary for \(sentinel.masterName)")
        }
        connection.companion = locator
        return connection
    }
}
