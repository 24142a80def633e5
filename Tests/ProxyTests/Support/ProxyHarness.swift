import Config
import Foundation
import Proxy

/// A real idemproxy (all of its loops, on loopback port 0) in front of a `TestUpstream`.
final class ProxyHarness: @unchecked Sendable {
    let upstream: TestUpstream
    let server: ProxyServer
    var port: UInt16 { server.port }

    /// `yaml` is appended to a minimal config, so tests state only what they change.
    /// `upstreamYAML` lines go under `upstream:` (indented by the harness).
    init(upstream: TestUpstream = TestUpstream(), upstreamPort: UInt16? = nil, upstreamYAML: [String] = [], yaml: String = "", workers: Int = 1) throws {
        self.upstream = upstream
        var text = """
        listen: 127.0.0.1:0
        workers: \(workers)
        upstream:
          url: http://127.0.0.1:\(upstreamPort ?? upstream.port)

        """
        for line in upstreamYAML { text += "  \(line)\n" }
        text += yaml
        let config = try ConfigLoader.parse(yaml: text, fileName: "test.yaml", environment: [:])
        server = try ProxyServer(settings: try ProxySettings(config: config))
        server.start()
    }

    func client(timeoutSeconds: Int = 10) throws -> TestClient {
        try TestClient(port: port, timeoutSeconds: timeoutSeconds)
    }

    func stop() {
        server.shutdown()
        upstream.stop()
    }
}
