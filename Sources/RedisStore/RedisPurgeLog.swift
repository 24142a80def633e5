import EventLoop
import Idempotency
import RedisClient

/// How a purge reaches every replica's replay cache within a second.
///
/// A purge appends the purged key to one Redis stream (`<key_prefix>{purges}`, trimmed to about
/// 10,000 entries; the `XADD` runs in a script flagged `allow-oom`, so Redis out of memory does
/// not refuse it). Every store with a replay cache reads the stream's new entries every
/// 250 ms on its own connection and drops those keys. The cache is served only while the last
/// successful read was sent less than 750 ms ago: a purge that has returned is seen by any
/// read sent after it, so no replica replays a purged record more than a second later, and a
/// replica that cannot read the stream (Redis unreachable, a partition) stops serving from its
/// cache within 750 ms and asks Redis, which says "no record".
///
/// Why a stream rather than Redis client-side caching (`CLIENT TRACKING … REDIRECT`): tracking
/// needs a second, subscribed connection per loop and per node, it only remembers keys read by
/// read-only commands (a claim is `SET … GET`, a write, so every cached key would cost one more
/// tracked `GET`), and Redis keeps a tracking table entry per key and client. The stream costs
/// four small reads a second per loop and one `XADD` per purge, and works through the same
/// connection on every deployment (TLS, Sentinel, Cluster). What it does not see is a record
/// deleted behind idemproxy's back (`redis-cli DEL`): purge through `/records` or
/// `idemproxy records purge`, which append to the stream.
final class RedisPurgeLog {
    static let pollIntervalMillis: UInt64 = 250
    static let freshForMillis: UInt64 = 750
    /// Entries read at most per poll; a full batch may mean more were trimmed unseen, so the
    /// whole cache is dropped then.
    static let batch = 1000
    static let streamLength = 10_000

    let streamKey: String
    private let connection: any RedisChannel
    private let cache: ReplayCache?
    /// The last stream entry seen; nil until the stream's tail has been read once.
    private var lastID: [UInt8]?
    /// Monotonic ms at which the last successful poll was sent.
    private var lastFreshPollSentAt: UInt64?
    private var pollOutstanding = false
    private lazy var timer = Timer { [weak self] in self?.poll() }

    init(keyPrefix: String, connection: any RedisChannel, cache: ReplayCache?) {
        streamKey = keyPrefix + "{purges}"
        self.connection = connection
        self.cache = cache
        if cache != nil { connection.loop.arm(timer, after: 0) }
    }

    /// Whether the cache may be served now (see the type's comment).
    func isFresh(nowMillis: UInt64) -> Bool {
        guard let sent = lastFreshPollSentAt else { return false }
        return nowMillis &- sent < Self.freshForMillis
    }

    /// Counts changes to what the cache may hold (purges applied, restarts). A record read from
    /// Redis is cached only if this did not move between its read being sent and answered:
    /// otherwise a purge may have been applied before the (older) read arrived, which happens in
    /// a Cluster, where the record and the stream answer on different connections.
    private(set) var epoch: UInt64 = 0

    /// Whether the stream's position is known: before that, nothing may be cached (a purge
    /// older than the first read would never be applied).
    var hasStarted: Bool { lastID != nil }

    /// How long after an announcement returned no replay cache, of any worker of any replica,
    /// can still serve the purged record: a cache serves only while its last applied read of
    /// the log was sent less than `freshForMillis` ago, so once that long has passed every
    /// serving cache has applied a read sent after the announcement. Each side's time is its own
    /// monotonic clock: a read's send time is the loop's cached clock, earlier than the real
    /// send (which only ends serving sooner); the serving check and this timer's start read the
    /// clock afresh. The margin covers the clocks of two hosts running at slightly different
    /// rates, and the announcement being applied before its reply is read.
    static let settleMillis: UInt64 = freshForMillis + 50

    /// Calls `then` `settleMillis` from now, on this loop.
    func afterEveryCacheHasSeenAPurge(_ then: @escaping () -> Void) {
        // From the clock now, not the iteration's start: the announcement's reply may have been
        // read late in a busy iteration. The loop's timer heap holds the timer (and with it
        // `then`) until it fires.
        _ = connection.loop.refreshNow()
        connection.loop.arm(Timer(then), after: Self.settleMillis)
    }

    /// This process purged `key`: its own cache drops it at once.
    func purgedHere(_ key: String) {
        cache?.remove(key)
        epoch &+= 1
    }

    /// The data set was lost or replaced (see `StoreResetDetector`): the stream may have gone
    /// with it and new entries' IDs may sort before `lastID`. Start over from its tail.
    func restart() {
        lastID = nil
        cache?.removeAll()
        epoch &+= 1
    }

    private func poll() {
        connection.loop.arm(timer, after: Self.pollIntervalMillis)
        guard let cache, !pollOutstanding, connection.state == .ready else { return }
        pollOutstanding = true
        let sentAt = connection.loop.now
        var command: RedisCommand
        if let lastID {
            command = RedisCommand(argumentCount: 6)
            command.append("XREAD")
            command.append("COUNT")
            command.append(UInt64(Self.batch))
            command.append("STREAMS")
            command.append(streamKey)
            command.append(lastID)
        } else {
            // Where to start: the newest entry (what came before concerns no cached record).
            command = RedisCommand(argumentCount: 6)
            command.append("XREVRANGE")
            command.append(streamKey)
            command.append("+")
            command.append("-")
            command.append("COUNT")
            command.append("1")
        }
        connection.send(command, key: streamKey, timeoutMillis: nil) { [weak self] result in
            guard let self else { return }
            self.pollOutstanding = false
            guard case .success(let value) = result, let entries = self.entries(in: value, tail: self.lastID == nil) else {
                return  // not fresh: the cache stops being served once the last good poll ages
            }
            if self.lastID != nil, !entries.isEmpty {
                for (_, key) in entries { cache.remove(key) }
                if entries.count >= Self.batch { cache.removeAll() }
                self.epoch &+= 1
            } else if self.lastID == nil {
                // The tail is adopted: purges up to it were never applied here, so a record
                // read before now (in a Cluster, on another connection) must not be cached.
                self.epoch &+= 1
            }
            self.lastID = entries.last?.id ?? self.lastID ?? Array("0-0".utf8)
            self.lastFreshPollSentAt = sentAt
        }
    }

    /// The (id, key) entries of an XREAD or XREVRANGE reply; nil when the reply is not one.
    private func entries(in value: RedisValue, tail: Bool) -> [(id: [UInt8], key: String)]? {
        let list: [RedisValue]
        switch value {
        case .null:
            return []
        case .array(let items) where tail:
            list = items
        case .array(let streams):
            // XREAD: [[stream name, [entries]]].
            guard streams.count == 1, case .array(let stream) = streams[0], stream.count == 2, case .array(let items) = stream[1] else { return nil }
            list = items
        default:
            return nil
        }
        var entries: [(id: [UInt8], key: String)] = []
        for item in list {
            guard case .array(let entry) = item, entry.count == 2, case .string(let id) = entry[0], case .array(let fields) = entry[1] else { return nil }
            var key = ""
            var index = 0
            while index + 1 < fields.count {
                if fields[index].text == "key", let value = fields[index + 1].text { key = value }
                index += 2
            }
            entries.append((id, key))
        }
        return entries
    }
}
