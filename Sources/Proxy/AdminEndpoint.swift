import EventLoop
import HTTP1
import Idempotency
import Synchronization

/// The admin listener (SPEC §8) on the first worker's loop: `/healthz` (the process answers),
/// `/readyz` (store and upstream reachable, not shutting down), `/metrics` (Prometheus) and
/// `/records` (inspect or purge one record, `AdminRecords`). Requests are tiny; every response
/// closes its connection.
final class AdminEndpoint: EventHandler {
    private let fd: Int32
    private unowned let loop: EventLoop
    private let metrics: ProxyMetrics
    private let settings: ProxySettings
    private let records: AdminRecords
    private var connections: [Int32: AdminConnection] = [:]
    /// `connections.count`, readable from any thread (a connection that never closes shows).
    let openConnections = Atomic<Int>(0)
    /// Connections with a request taken and its answer not yet written (`Phase.holdsAnAnswer`).
    let connectionsHoldingAnAnswer = Atomic<Int>(0)
    /// Accepting paused for lack of descriptors, until `acceptRetryTimer` fires.
    private var acceptPaused = false
    private var closedForGood = false
    private lazy var acceptRetryTimer = Timer { [weak self] in self?.resumeAccepting() }

    init(fd: Int32, loop: EventLoop, metrics: ProxyMetrics, settings: ProxySettings, store: any IdempotencyStore) throws(IOError) {
        self.fd = fd
        self.loop = loop
        self.metrics = metrics
        self.settings = settings
        records = AdminRecords(store: store, settings: settings)
        try loop.register(fd, handler: self, interest: [.read])
    }

    func handleEvent(readable: Bool, writable: Bool) {
        for _ in 0..<16 {
            let accepted: IOResult<(fd: Int32, peer: String)>
            do {
                accepted = try Socket.accept(fd)
            } catch {
                // Out of descriptors, a probe waiting in the backlog would wake this loop on
                // every turn: stop listening for 100 ms, as the main listener does (SPEC §5).
                if error.isOutOfDescriptors && !acceptPaused {
                    acceptPaused = true
                    loop.setInterest(fd, [])
                    loop.arm(acceptRetryTimer, after: 100)
                }
                return
            }
            guard case .processed(let (client, _)) = accepted else { return }
            let connection = AdminConnection(fd: client, endpoint: self)
            do {
                try loop.register(client, handler: connection, interest: [.read])
                connections[client] = connection
                openConnections.add(1, ordering: .relaxed)
                connection.awaitHead()
            } catch {
                Socket.close(client)
            }
        }
    }

    func close() {
        closedForGood = true
        acceptRetryTimer.cancel()
        loop.deregister(fd)
        Socket.close(fd)
        for connection in Array(connections.values) { connection.closeForShutdown() }
    }

    private func resumeAccepting() {
        guard acceptPaused, !closedForGood else { return }
        acceptPaused = false
        loop.setInterest(fd, [.read])
    }

    func closed(_ connection: AdminConnection) {
        guard connections.removeValue(forKey: connection.fd) != nil else { return }
        openConnections.subtract(1, ordering: .relaxed)
    }

    /// Answers one admin request, at once or (a store call for `/records`) later on this loop.
    /// `HEAD` is answered as `GET` (the connection leaves out the content, RFC 9110 §9.3.2).
    func respond(to request: AdminRequest, _ answer: @escaping (AdminAnswer) -> Void) {
        if request.path == "/records" {
            records.handle(request, answer)
            return
        }
        guard request.method == .get || request.method == .head else {
            // RFC 9110 §15.5.6: a 405 lists the methods the resource does take.
            answer(AdminAnswer(status: 405, body: "{\"error\":\"only GET and HEAD\"}\n", extraFields: [("Allow", "GET, HEAD")]))
            return
        }
        switch request.path {
        case "/healthz":
            answer(AdminAnswer(status: 200, body: "{\"status\":\"ok\"}\n"))
        case "/readyz":
            let readiness = Readiness.evaluate(settings: settings, metrics: metrics)
            answer(AdminAnswer(status: readiness.ready ? 200 : 503, body: readiness.json))
        case "/metrics":
            answer(AdminAnswer(status: 200, body: metrics.exposition(), contentType: "text/plain; version=0.0.4; charset=utf-8"))
        default:
            answer(AdminAnswer(status: 404, body: "{\"error\":\"not found\"}\n"))
        }
    }

    var loopRef: EventLoop { loop }

    /// How long the connection waits for `request`'s answer once its head is in: what the store
    /// may take for it (`AdminRecords.answerBudgetMillis`); other answers come at once.
    func answerBudgetMillis(for request: AdminRequest) -> UInt64 {
        request.path == "/records" ? records.answerBudgetMillis(for: request.method) : AdminConnection.headMillis
    }
}

/// What the admin endpoint needs of a request.
struct AdminRequest {
    var method: HTTPMethod
    var path: Substring
    var query: Substring
    /// The `Authorization` field's value, if sent once.
    var authorization: [UInt8]?
}

struct AdminAnswer {
    var status: Int
    var body: String
    var contentType = "application/json"
    var extraFields: [(name: String, value: String)] = []
}

/// What `/readyz` reports.
struct Readiness {
    var ready: Bool
    var json: String

    static func evaluate(settings: ProxySettings, metrics: ProxyMetrics) -> Readiness {
        var checks: [(String, String)] = []
        var ready = true
        if metrics.shuttingDown.load(ordering: .relaxed) {
            ready = false
            checks.append(("lifecycle", "shutting down"))
        }
        if settings.storeBackend == .redis {
            let connected = metrics.redisConnectionsReady.load(ordering: .relaxed)
            if connected < settings.workers {
                ready = false
                checks.append(("store", "redis connected on \(connected) of \(settings.workers) loops"))
            } else {
                checks.append(("store", "ok"))
            }
        } else {
            checks.append(("store", "ok"))
        }
        if metrics.upstreamReachable.load(ordering: .relaxed) {
            checks.append(("upstream", "ok"))
        } else {
            ready = false
            checks.append(("upstream", "the last connection attempt failed"))
        }
        var json = "{\"status\":\"\(ready ? "ready" : "not ready")\""
        for (name, value) in checks {
            json += ",\"\(name)\":"
            ProblemResponse.appendJSONString(value, to: &json)
        }
        return Readiness(ready: ready, json: json + "}\n")
    }
}
