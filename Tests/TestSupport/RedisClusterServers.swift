import Foundation
import Glibc

/// A three-master Redis Cluster (no replicas) of real `redis-server` processes on free
/// loopback ports, created with `redis-cli --cluster create`, for one test.
public final class RedisClusterServers: @unchecked Sendable {
    public let ports: [UInt16]
    private var processes: [Process] = []
    private var processByPort: [UInt16: Process] = [:]
    private let directory: String

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    /// `replicas`: per master (`--cluster-replicas`); the first `masters` ports are masters.
    public init(masters: Int = 3, replicas: Int = 0) throws {
        ports = try Self.clusterPorts(masters * (1 + replicas))
        directory = NSTemporaryDirectory() + "idemproxy-cluster-\(ports[0])-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for port in ports {
            let process = try Subprocess.launch {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: RedisServer.binary)
                process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                                     "--cluster-config-file", "\(directory)/nodes-\(port).conf", "--cluster-node-timeout", "2000",
                                     // A replica synced moments ago may take over (7.0 otherwise
                                     // refuses: "disconnected from master for longer than allowed").
                                     "--cluster-replica-validity-factor", "0",
                                     "--save", "", "--appendonly", "no", "--dir", directory, "--pidfile", "\(directory)/redis-\(port).pid"]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                return process
            }
            processes.append(process)
            processByPort[port] = process
        }
        for port in ports {
            guard eventually(seconds: 5, { (try? self.command(port, "PING"))?.hasPrefix("+PONG") == true }) else {
                throw Failure(description: "redis-server on \(port) did not start")
            }
        }
        let create = try Subprocess.run(
            Self.cli, ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + ["--cluster-replicas", String(replicas), "--cluster-yes"])
        guard create.status == 0 else { throw Failure(description: "cluster create: \(create.stdout)\(create.stderr)") }
        guard eventually(seconds: 10, { self.ports.allSatisfy { (try? self.command($0, "CLUSTER INFO"))?.contains("cluster_state:ok") == true } }) else {
            throw Failure(description: "the cluster never reached cluster_state:ok")
        }
    }

    /// Ports whose cluster bus port (port + 10000) is free too and within range: ephemeral
    /// ports from the kernel are too high for that.
    static func clusterPorts(_ count: Int) throws -> [UInt16] {
        var chosen: [UInt16] = []
        for _ in 0..<200 where chosen.count < count {
            let port = UInt16.random(in: 15000...25000)
            if !chosen.contains(port), bindable(port), bindable(port + 10000) { chosen.append(port) }
        }
        guard chosen.count == count else { throw Failure(description: "no free port pairs for a cluster") }
        return chosen
    }

    private static func bindable(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static var cli: String {
        let server = RedisServer.binary
        let sibling = (server as NSString).deletingLastPathComponent + "/redis-cli"
        return FileManager.default.isExecutableFile(atPath: sibling) ? sibling : "/usr/bin/redis-cli"
    }

    /// The node id of the server on `port`.
    public func nodeID(_ port: UInt16) throws -> String {
        try command(port, "CLUSTER MYID").split(separator: "\r\n").dropFirst().first.map(String.init) ?? ""
    }

    /// Moves `slots` slots from one node to another with `redis-cli --cluster reshard` (keys
    /// included, MIGRATE in batches): MOVED and ASK for clients meanwhile.
    public func reshard(from: UInt16, to: UInt16, slots: Int) throws {
        let output = try Subprocess.run(Self.cli, [
            "--cluster", "reshard", "127.0.0.1:\(from)", "--cluster-from", try nodeID(from), "--cluster-to", try nodeID(to),
            "--cluster-slots", String(slots), "--cluster-yes", "--cluster-pipeline", "10",
        ])
        guard output.status == 0 else { throw Failure(description: "reshard: \(output.stdout)\(output.stderr)") }
    }

    /// Kills the node on `port` (SIGKILL).
    public func kill(_ port: UInt16) {
        guard let process = processByPort.removeValue(forKey: port) else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The ports of the nodes that are masters now.
    public func masters() -> [UInt16] {
        ports.filter { processByPort[$0] != nil && (try? command($0, "ROLE"))?.contains("master") == true }
    }

    /// Sends one command in inline form to the node on `port` and returns the raw reply.
    public func command(_ port: UInt16, _ line: String) throws -> String {
        let client = try TestClient(port: port, timeoutSeconds: 2)
        try client.send(line + "\r\n")
        try client.fill()
        return String(decoding: client.buffer, as: UTF8.self)
    }

    /// The number of keys the node on `port` holds.
    public func keyCount(_ port: UInt16) throws -> Int {
        let reply = try command(port, "DBSIZE")
        return Int(reply.dropFirst().prefix { $0.isNumber }) ?? -1
    }


    deinit {
        for process in processByPort.values {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
