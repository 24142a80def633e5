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

    /// The same over the channel `connect` makes on the check's loop (through Sentinel, or
    /// to every node of a Cluster: each server is checked, and the report keeps the worst).
    public static func run(timeoutMillis: UInt64 = 2000, _ connect: (EventLoop) -> any RedisChannel) -> RedisStartupReport {
        var report = RedisStartupReport()
        guard let loop = try? EventLoop() else {
            report.error = "cannot create an event loop"
            return report
        }
        let connection = connect(loop)
        var outstanding = 0
        var scriptsFailed = false
        connection.onReady = { server in
            report.reachable = true
            outstanding += 3 + RedisScripts.all.count
            for script in RedisScripts.all {
                server.send(["SCRIPT", "LOAD", script]) { result in
                    outstanding -= 1
                    if case .success(.string) = result { return }
                    scriptsFailed = true
                    if case .success(.error(let message)) = result { report.error = message }
                }
            }
            let worse: [(String, (String) -> Void)] = [
                ("maxmemory-policy", { if report.maxmemoryPolicy == nil || $0.hasPrefix("allkeys-") { report.maxmemoryPolicy = $0 } }),
                ("appendonly", { if report.appendOnly == nil || $0 == "no" { report.appendOnly = $0 } }),
                ("save", { if report.savePoints == nil || $0.isEmpty { report.savePoints = $0 } }),
            ]
            for (name, assign) in worse {
                server.send(["CONFIG", "GET", name]) { result in
                    outstanding -= 1
                    if case .success(.array(let items)) = result, items.count == 2, let value = items[1].text { assign(value) }
                }
            }
        }
        connection.connect()
        let deadline = loop.refreshNow() + timeoutMillis
        while loop.refreshNow() < deadline {
            if report.reachable && outstanding == 0 && connection.state == .ready { break }
            loop.runOnce(maxWaitMillis: 20)
        }
        report.scriptsLoaded = report.reachable && !scriptsFailed && outstanding == 0
        if !report.reachable { report.error = connection.lastError }
        return report
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
