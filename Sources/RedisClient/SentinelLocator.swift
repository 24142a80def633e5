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

    /// Subscribes on a Sentinel to `+promoted-slave` (a replica of this master was just
    /// promoted; Sentinel names it from then on) and `+switch-master` (the failover ended).
    /// `primaryMoved` gets the announced address on either, and nil after every
    /// (re)subscription, when events may have been missed: then look the primary up again.
    /// Acting on the promotion, not only on the end of the failover, shortens the window in
    /// which the old primary, still writable and still feeding a replica that will
    /// resynchronise from the new one, takes writes a failover then loses.
    ///
    /// The subscription is checked with a PING every second; a Sentinel that does not answer,
    /// or drops the connection, is left for the next one.
    public func watch(_ primaryMoved: @escaping (RedisConnection.Endpoint?) -> Void) {
        self.primaryMoved = primaryMoved
        startWatcher(at: 0)
    }

    private var primaryMoved: ((RedisConnection.Endpoint?) -> Void)?
    private var watcherPosition = 0
    private lazy var pingTimer = Timer { [weak self] in self?.pingWatcher() }
    private lazy var rotateTimer = Timer { [weak self] in
        guard let self else { return }
        self.startWatcher(at: self.watcherPosition + 1)
    }

    private func startWatcher(at position: Int) {
        // Closed on purpose: not a Sentinel that failed.
        watcher?.onStateChange = nil
        watcher?.close()
        watcherPosition = position % order.count
        let watcher = RedisConnection(configuration: settings.nodes[order[watcherPosition]], loop: loop)
        self.watcher = watcher
        let masterName = settings.masterName
        // One command, two replies: the second `subscribe` confirmation arrives as a push.
        watcher.onReady = { [weak self] connection in
            connection.send(["SUBSCRIBE", "+switch-master", "+promoted-slave"]) { result in
                guard case .success(.array) = result else { return }
                self?.primaryMoved?(nil)
            }
        }
        watcher.onPush = { [weak self] message in
            guard case .array(let items) = message, items.count == 3, items[0].text == "message",
                  let channel = items[1].text, let payload = items[2].text,
                  let announced = Self.announcedPrimary(channel: channel, payload: payload, masterName: masterName) else { return }
            self?.primaryMoved?(announced)
        }
        watcher.onStateChange = { [weak self] _, new in
            if new == .disconnected { self?.leaveWatcher() }
        }
        watcher.connect()
        if watcher.state == .disconnected { leaveWatcher() }
        if !pingTimer.isArmed { loop.arm(pingTimer, after: 1000) }
    }

    /// The watched Sentinel is gone or silent: the next one, shortly.
    private func leaveWatcher() {
        if !rotateTimer.isArmed { loop.arm(rotateTimer, after: 200) }
    }

    private func pingWatcher() {
        // Unanswered, the connection's own deadline and grace drop it (and `leaveWatcher` runs).
        if let watcher, watcher.state == .ready { watcher.send(["PING"]) { _ in } }
        loop.arm(pingTimer, after: 1000)
    }

    /// The new primary's address in a `+switch-master` ("<name> <old-ip> <old-port> <new-ip>
    /// <new-port>") or `+promoted-slave` ("slave <ip>:<port> <ip> <port> @ <name> …") message
    /// about `masterName`; nil for other masters and other messages.
    public static func announcedPrimary(channel: String, payload: String, masterName: String) -> RedisConnection.Endpoint? {
        let words = payload.split(separator: " ").map(String.init)
        switch channel {
        case "+switch-master":
            guard words.count >= 5, words[0] == masterName, let port = UInt16(words[4]) else { return nil }
            return RedisConnection.Endpoint(host: words[3], port: port)
        case "+promoted-slave":
            guard words.count >= 6, let at = words.firstIndex(of: "@"), at + 1 < words.count, words[at + 1] == masterName,
                  let port = UInt16(words[3]) else { return nil }
            return RedisConnection.Endpoint(host: words[2], port: port)
        default:
            return nil
        }
    }

    deinit {
        pingTimer.cancel()
        rotateTimer.cancel()
        watcher?.onStateChange = nil
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
        locator.watch { [weak connection, weak locator] announced in
            guard let connection else { return }
            if let announced {
                connection.move(to: announced, "Sentinel announced \(announced) as the primary of \(sentinel.masterName)")
                return
            }
            // Events may have been missed while the watcher was away: ask again, and move if
            // the answer is not where the connection is.
            locator?.locate { result in
                guard case .success(let primary) = result, primary != connection.endpoint || connection.state != .ready else { return }
                connection.move(to: primary, "Sentinel names \(primary) as the primary of \(sentinel.masterName)")
            }
        }
        connection.companion = locator
        return connection
    }
}
