import EventLoop
import HTTP1

/// The admin listener (SPEC §8) on the first worker's loop: `/healthz` (the process answers),
/// `/readyz` (store and upstream reachable, not shutting down) and `/metrics` (Prometheus).
/// Requests are tiny and answered at once; every response closes its connection.
final class AdminEndpoint: EventHandler {
    private let fd: Int32
    private unowned let loop: EventLoop
    private let metrics: ProxyMetrics
    private let settings: ProxySettings
    private var connections: [Int32: AdminConnection] = [:]

    init(fd: Int32, loop: EventLoop, metrics: ProxyMetrics, settings: ProxySettings) throws(IOError) {
        self.fd = fd
        self.loop = loop
        self.metrics = metrics
        self.settings = settings
        try loop.register(fd, handler: self, interest: [.read])
    }

    func handleEvent(readable: Bool, writable: Bool) {
        for _ in 0..<16 {
            guard case .processed(let (client, _))? = try? Socket.accept(fd) else { return }
            let connection = AdminConnection(fd: client, endpoint: self)
            do {
                try loop.register(client, handler: connection, interest: [.read])
                connections[client] = connection
                loop.arm(connection.timer, after: 5000)
            } catch {
                Socket.close(client)
            }
        }
    }

    func close() {
        loop.deregister(fd)
        Socket.close(fd)
        for connection in connections.values { connection.close() }
    }

    fileprivate func closed(_ connection: AdminConnection) {
        connections.removeValue(forKey: connection.fd)
    }

    /// Status and body for one admin request.
    fileprivate func respond(method: HTTPMethod, path: Substring) -> (status: Int, contentType: String, body: String) {
        guard method == .get else {
            return (405, "application/json", "{\"error\":\"only GET\"}\n")
        }
        switch path {
        case "/healthz":
            return (200, "application/json", "{\"status\":\"ok\"}\n")
        case "/readyz":
            let readiness = Readiness.evaluate(settings: settings, metrics: metrics)
            return (readiness.ready ? 200 : 503, "application/json", readiness.json)
        case "/metrics":
            return (200, "text/plain; version=0.0.4; charset=utf-8", metrics.exposition())
        default:
            return (404, "application/json", "{\"error\":\"not found\"}\n")
        }
    }

    fileprivate var loopRef: EventLoop { loop }
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
    private var done = false
    lazy var timer = Timer { [weak self] in self?.close() }

    init(fd: Int32, endpoint: AdminEndpoint) {
        self.fd = fd
        self.endpoint = endpoint
    }

    func handleEvent(readable: Bool, writable: Bool) {
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
        let outcome = input.withUnsafeBytes { raw -> (Bool, HTTPMethod, String)? in
            do {
                guard try RequestHeadParser.parse(raw, into: &head, limits: HTTPParserLimits(maxHeaderBytes: 8192, maxHeaders: 64)) else { return nil }
                let target = String(decoding: UnsafeRawBufferPointer(rebasing: raw[head.target]), as: UTF8.self)
                return (true, head.method, target)
            } catch {
                return (false, .other, "")
            }
        }
        guard let (valid, method, target) = outcome else { return }
        done = true
        let answer = valid
            ? endpoint.respond(method: method, path: target.split(separator: "?", maxSplits: 1).first ?? "")
            : (status: 400, contentType: "application/json", body: "{\"error\":\"bad request\"}\n")
        let body = Array(answer.body.utf8)
        body.withUnsafeBytes { raw in
            HeadWriter.writeResponse(
                status: answer.status, reason: nil, fields: [("Content-Type", answer.contentType), ("Cache-Control", "no-store")],
                body: raw, close: true, into: &out.bytes)
        }
        flush()
    }

    private func flush() {
        do {
            switch try out.flush(to: fd) {
            case .drained:
                if done { close() }
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

    private var closedFlag = false
}
