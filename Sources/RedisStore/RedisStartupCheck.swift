import EventLoop
import RedisClient

/// What idemproxy checks about its Redis before serving (SPEC §9): that it answers, that the
/// scripts load, and whether its configuration can lose idempotency records.
public struct RedisStartupReport: Sendable, Equatable {
    public var reachable = false
    public var error: String?
    public var scriptsLoaded = false
    public var maxmemoryPolicy: String?
    public var appendOnly: String?
    public var savePoints: String?

    public init() {}

    /// Loud warnings for configurations that break the guarantees, in plain words.
    public var warnings: [String] {
        var out: [String] = []
        if !reachable {
            out.append("Redis is not reachable (\(error ?? "unknown error")); guarded requests follow store.unavailable until it is")
            return out
        }
        if !scriptsLoaded { out.append("the Lua scripts could not be loaded: \(error ?? "unknown error")") }
        if let policy = maxmemoryPolicy {
            if policy.hasPrefix("allkeys-") {
                out.append("maxmemory-policy is \(policy): Redis may evict idempotency records under memory pressure, and an evicted record lets a retry execute again; use noeviction (or a volatile-* policy with headroom)")
            }
        } else {
            out.append("could not read maxmemory-policy (CONFIG GET refused?); make sure Redis does not evict idempotency records (noeviction)")
        }
        let aofOff = appendOnly == "no"
        let rdbOff = savePoints.map { $0.trimmingCharacters(in: " ").isEmpty } ?? false
        if aofOff && rdbOff {
            out.append("Redis persistence is off (appendonly no, no save points): a Redis restart forgets every record, and retries after it execute again; appendonly yes is recommended")
        }
        return out
    }

    /// Runs the checks on a private event loop on the calling thread (startup only), giving up
    /// after `timeoutMillis`.
    public static func run(configuration: RedisConnection.Configuration, timeoutMillis: UInt64 = 2000) -> RedisStartupReport {
        var configuration = configuration
        configuration.commandTimeoutMillis = timeoutMillis
        return run(timeoutMillis: timeoutMillis) { RedisConnection(configuration: configuration, loop: $0) }
    }

    /// The same over a connection `connect` makes on the check's loop (e.g. through Sentinel).
    public static func run(timeoutMillis: UInt64 = 2000, _ connect: (EventLoop) -> RedisConnection) -> RedisStartupReport {
        var report = RedisStartupReport()
        guard let loop = try? EventLoop() else {
            report.error = "cannot create an event loop"
            return report
        }
        let connection = connect(loop)
        var outstanding = 0
        connection.onReady = { connection in
            report.reachable = true
            outstanding = 3 + RedisScripts.all.count
            var loaded = 0
            for script in RedisScripts.all {
                connection.send(["SCRIPT", "LOAD", script]) { result in
                    outstanding -= 1
                    if case .success(.string) = result { loaded += 1 } else if case .success(.error(let message)) = result { report.error = message }
                    report.scriptsLoaded = loaded == RedisScripts.all.count
                }
            }
            for (name, assign) in [("maxmemory-policy", { (v: String) in report.maxmemoryPolicy = v }),
                                   ("appendonly", { (v: String) in report.appendOnly = v }),
                                   ("save", { (v: String) in report.savePoints = v })] {
                connection.send(["CONFIG", "GET", name]) { result in
                    outstanding -= 1
                    if case .success(.array(let items)) = result, items.count == 2, let value = items[1].text { assign(value) }
                }
            }
        }
        connection.connect()
        let deadline = loop.refreshNow() + timeoutMillis
        while loop.refreshNow() < deadline {
            if report.reachable && outstanding == 0 { break }
            loop.runOnce(maxWaitMillis: 20)
        }
        if !report.reachable { report.error = connection.lastError }
        return report
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
