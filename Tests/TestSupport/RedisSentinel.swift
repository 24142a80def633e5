import Foundation
import Glibc

/// A `redis-server --sentinel` process owned by one test, monitoring one primary as
/// `mymaster` with a quorum of 1 and short timings (down after 1 s), so a failover happens
/// within seconds of a `SENTINEL FAILOVER` or of the primary's death.
public final class RedisSentinel: @unchecked Sendable {
    public static let masterName = "mymaster"
    public let port: UInt16
    private let directory: String
    private var process: Process?

    public init(monitoring primaryPort: UInt16) throws {
        port = RedisServer.freePort()
        directory = NSTemporaryDirectory() + "idemproxy-sentinel-\(port)-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Sentinel rewrites its configuration file: it must be its own and writable.
        let config = """
            port \(port)
            bind 127.0.0.1
            dir \(directory)
            pidfile \(directory)/sentinel.pid
            sentinel monitor \(Self.masterName) 127.0.0.1 \(primaryPort) 1
            sentinel down-after-milliseconds \(Self.masterName) 1000
            sentinel failover-timeout \(Self.masterName) 5000
            sentinel parallel-syncs \(Self.masterName) 2

            """
        try config.write(toFile: directory + "/sentinel.conf", atomically: true, encoding: .utf8)
        let process = try Subprocess.launch {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: RedisServer.binary)
            process.arguments = [directory + "/sentinel.conf", "--sentinel"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            return process
        }
        self.process = process
        for _ in 0..<100 {
            if (try? command("PING"))?.hasPrefix("+PONG") == true { return }
            usleep(50_000)
        }
    }

    /// The primary's port as this Sentinel currently names it.
    public func primaryPort() throws -> UInt16? {
        let reply = try command("SENTINEL get-master-addr-by-name \(Self.masterName)")
        // *2 $9 127.0.0.1 $4 6380
        let lines = reply.split(separator: "\r\n")
        return lines.count >= 5 ? UInt16(lines[4]) : nil
    }

    /// Sends one command in inline form and returns the raw reply text.
    public func command(_ line: String) throws -> String {
        let client = try TestClient(port: port, timeoutSeconds: 2)
        try client.send(line + "\r\n")
        try client.fill()
        return String(decoding: client.buffer, as: UTF8.self)
    }

    /// Kills the Sentinel (SIGKILL).
    public func kill() {
        guard let process else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    deinit {
        if let process {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
