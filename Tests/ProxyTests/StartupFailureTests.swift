import Config
import EventLoop
import Foundation
import Glibc
@testable import Proxy
import Testing
import TestSupport

/// A `ProxyServer` whose start fails after its workers were made (here the admin port is
/// taken) leaves nothing bound: each worker's SO_REUSEPORT listener is closed, so the main port
/// is free for the next attempt in the same process.
@Suite(.serialized) struct StartupFailureTests {
    func settings(port: UInt16, adminPort: UInt16) throws -> ProxySettings {
        let yaml = """
        listen: 127.0.0.1:\(port)
        workers: 2
        admin: { listen: 127.0.0.1:\(adminPort) }
        logging: { access_log: false }
        upstream: { url: http://127.0.0.1:9 }

        """
        let settings = try ProxySettings(config: try ConfigLoader.parse(yaml: yaml, fileName: "t.yaml", environment: [:]))
        settings.log = Log(minimum: .error, json: true)
        return settings
    }

    @Test func aStartupThatFailsOnTheAdminPortReleasesTheMainPort() throws {
        let busyAdmin = try Socket.listen(on: try Socket.Address.resolve(host: "127.0.0.1", port: 0), reusePort: false, backlog: 1)
        defer { Socket.close(busyAdmin) }
        let adminPort = Socket.localPort(busyAdmin)
        let port = RedisServer.freePort()
        #expect(throws: (any Error).self) { _ = try ProxyServer(settings: try settings(port: port, adminPort: adminPort)) }
        let table = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
        let listening = table.split(separator: "\n").filter { $0.contains(String(format: ":%04X 00000000:0000 0A", port)) }.count
        #expect(listening == 0, "\(listening) sockets still LISTEN on the main port after the failed start")
        // The admin port is free now: the same configuration must start on the same main port.
        let freeAdmin = RedisServer.freePort()
        do {
            let server = try ProxyServer(settings: try settings(port: port, adminPort: freeAdmin))
            server.start()
            server.shutdown()
        } catch {
            Issue.record("the main port \(port) is still held after the failed start: \(error)")
        }
    }
}
