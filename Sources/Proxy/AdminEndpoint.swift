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
                loop.arm(connection.timer, after: 5000)
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
        for connection in connections.values { connection.close() }
    }

    private func resumeAccepting() {
        guard acceptPaused, !closedForGood else { return }
        acceptPaused = false
        loop.setInterest(fd, [.read])
    }

    fileprivate func closed(_ connection: AdminConnection) {
        guard connections.removeValue(forKey: connection.fd) != nil else { return }
        openConnections.subtract(1, ordering: .relaxed)
    }

    /// Answers one admin request, at once or (a store call for `/records`) later on this loop.
    fileprivate func respond(to request: AdminRequest, _ answer: @escaping (AdminAnswer) -> Void) {
        if request.path == "/records" {
            records.handle(request, answer)
            return
        }
        guard request.method == .get else {
            answer(AdminAnswer(status: 405, body: "{\"error\":\"only GET\"}\n", extraFields: [("Allow", "GET")]))
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

    fileprivate var loopRef: EventLoop { loop }
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

private final class AdminConnection: EventHandler {
    let fd: Int32
    unowned let endpoint: AdminEndpoint
    private var input: [UInt8] = []
    private var out = OutputBuffer()
    /// A whole request head arrived; nothing more is read.
    private var done = false
    /// The answer is queued (it may come later than the request: a store call).
    private var answered = false
    private var closedFlag = false
    lazy var timer = Timer { [weak self] in self?.close() }

    init(fd: Int32, endpoint: AdminEndpoint) {
        self.fd = fd
        self.endpoint = endpoint
    }

    func handleEvent(readable: Bool, writable: Bool) {
        if readable && done && !Socket.isIdleConnectionAlive(fd) {
            // Read interest is off once the head is in, so this is epoll's error or hang-up,
            // which it reports whatever the interest, on every turn (level-triggered) until the
            // socket closes: left open while the answer waits on the store, the loop would
            // spin. The client reset or left (bytes it sent after the head are never read
            // either): close now; the pending answer then finds the connection closed.
            close()
            return
        }
        if readable && !done {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let result = chunk.withUnsafeMutableBytes { raw in Result { () throws(IOError) in try Socket.read(fd, into: raw) } }
            switch result {
            case .success(.processed(0)), .failure:
                close()
                return
            case .success(.wouldBlock):
                break
            case .success(.processed(let count)):
                input.append(contentsOf: chunk[0..<count])
                parse()
            }
        }
        if writable { flush() }
    }

    private func parse() {
        var head = RequestHead()
        let outcome = input.withUnsafeBytes { raw -> AdminRequest?? in
            do {
                guard try RequestHeadParser.parse(raw, into: &head, limits: HTTPParserLimits(maxHeaderBytes: 8192, maxHeaders: 64)) else { return .none }
                let target = Substring(decoding: UnsafeRawBufferPointer(rebasing: raw[head.target]), as: UTF8.self)
                let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
                let authorization = head.values(ofField: "authorization", in: raw)
                return .some(AdminRequest(
                    method: head.method, path: parts.first ?? "", query: parts.count > 1 ? parts[1] : "",
                    authorization: authorization.count == 1 ? Array(raw[authorization[0]]) : nil))
            } catch {
                return .some(nil)
            }
        }
        guard let outcome else { return }  // the head is not complete yet
        done = true
        // Nothing more is read: stop watching for input, or a client that half-closes (or sends
        // a body) while the answer waits on the store would wake this level-triggered loop on
        // every turn until then.
        endpoint.loopRef.setInterest(fd, [])
        guard let request = outcome else {
            write(AdminAnswer(status: 400, body: "{\"error\":\"bad request\"}\n"))
            return
        }
        endpoint.respond(to: request) { [weak self] answer in self?.write(answer) }
    }

    private func write(_ answer: AdminAnswer) {
        guard !closedFlag, !answered else { return }
        answered = true
        let body = Array(answer.body.utf8)
        body.withUnsafeBytes { raw in
            HeadWriter.writeResponse(
                status: answer.status, reason: nil,
                fields: [("Content-Type", answer.contentType), ("Cache-Control", "no-store")] + answer.extraFields,
                body: raw, close: true, into: &out.bytes)
        }
        flush()
    }

    private func flush() {
        do {
            switch try out.flush(to: fd) {
            case .drained:
                if answered { close() }
            case .partial:
                endpoint.loopRef.setInterest(fd, [.write])
            }
        } catch {
            close()
        }
    }

    func close() {
        guard fd >= 0, !closedFlag else { return }
        closedFlag = true
        timer.cancel()
        endpoint.loopRef.deregister(fd)
        Socket.close(fd)
        endpoint.closed(self)
    }
}
