import Config
import Foundation
import Idempotency
import Proxy
import Synchronization

/// A real idemproxy (all of its loops, on loopback port 0) in front of a `TestUpstream`.
public final class ProxyHarness: @unchecked Sendable {
    public let upstream: TestUpstream
    public let server: ProxyServer
    public var port: UInt16 { server.port }

    /// `upstreamYAML` lines go under `upstream:`; `yaml` is appended at top level, so tests
    /// state only what they change. `memoryStore` lets several instances share one store.
    public init(
        upstream: TestUpstream = TestUpstream(), upstreamPort: UInt16? = nil, upstreamPath: String = "", upstreamYAML: [String] = [],
        yaml: String = "", workers: Int = 1, memoryStore: MemoryStore? = nil, accessLogFD: Int32? = nil,
        logFormat: String = "json", admin: String = "{ listen: 127.0.0.1:0 }"
    ) throws {
        self.upstream = upstream
        var text = """
        listen: 127.0.0.1:0
        workers: \(workers)
        admin: \(admin)
        logging: { access_log: \(accessLogFD != nil), format: \(logFormat) }
        upstream:
          url: http://127.0.0.1:\(upstreamPort ?? upstream.port)\(upstreamPath)

        """
        for line in upstreamYAML { text += "  \(line)\n" }
        text += yaml
        let config = try ConfigLoader.parse(yaml: text, fileName: "test.yaml", environment: [:])
        let settings = try ProxySettings(config: config)
        settings.log = Log(minimum: .error, json: true)
        if let accessLogFD { settings.accessLogFD = accessLogFD }
        server = try ProxyServer(settings: settings, memoryStore: memoryStore)
        server.start()
    }

    public func client(timeoutSeconds: Int = 10) throws -> TestClient {
        try TestClient(port: port, timeoutSeconds: timeoutSeconds)
    }

    /// Sends one request on a new connection and reads its response.
    public func request(_ raw: String, method: String = "POST") throws -> TestClient.Response {
        let client = try client()
        try client.send(raw)
        return try client.readResponse(requestMethod: method)
    }

    /// One request to the admin endpoint on a new connection.
    public func admin(_ path: String, authorization: String? = nil) throws -> TestClient.Response {
        try admin("GET", path, authorization: authorization)
    }

    public func admin(_ method: String, _ path: String, authorization: String? = nil) throws -> TestClient.Response {
        guard let adminPort = server.adminPort else { throw TestClient.ClientError.closed }
        let client = try TestClient(port: adminPort)
        var request = "\(method) \(path) HTTP/1.1\r\nHost: admin\r\n"
        if let authorization { request += "Authorization: \(authorization)\r\n" }
        try client.send(request + "\r\n")
        return try client.readResponse(requestMethod: method)
    }

    public func stop() {
        server.shutdown()
        upstream.stop()
    }
}

extension ProxyHarness {
    /// A graceful shutdown running on another thread: `ProxyServer.shutdown` returns once every
    /// connection is closed, or at the grace.
    public final class BackgroundShutdown: Sendable {
        private let done = Atomic<Bool>(false)

        init(_ server: ProxyServer) {
            Thread { [self] in
                server.shutdown()
                done.store(true, ordering: .releasing)
            }.start()
        }

        public var isDone: Bool { done.load(ordering: .acquiring) }

        /// Waits until the shutdown returned, or `seconds` passed.
        public func wait(seconds: Int) {
            let deadline = TestUpstream.nowMillis() + seconds * 1000
            while !isDone && TestUpstream.nowMillis() < deadline { usleep(50_000) }
        }
    }

    public func shutdownInBackground() -> BackgroundShutdown { BackgroundShutdown(server) }
}
