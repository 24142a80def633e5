import Foundation
import Glibc

/// A redis-server process owned by one test, so the test may stop and restart it. The binary
/// comes from REDIS_SERVER_BIN (set by scripts/test) or PATH.
public final class RedisServer: @unchecked Sendable {
    public let port: UInt16
    /// The TLS port, when started with `tls` (the plain `port` stays open for the test's own
    /// inspection commands).
    public let tlsPort: UInt16?
    private let tlsArguments: [String]
    private let replicationArguments: [String]
    private var process: Process?
    private let directory: String

    /// How a TLS port authenticates clients (`tls-auth-clients`).
    public enum ClientCertificates: String { case notRequested = "no", required = "yes" }

    /// `tls`: also listen with TLS, presenting the server certificate of `tls`. `replicaOf`:
    /// a replica of the server on that port.
    public init(tls: TestCertificates? = nil, clientCertificates: ClientCertificates = .notRequested, replicaOf: UInt16? = nil) throws {
        port = RedisServer.freePort()
        replicationArguments = replicaOf.map { ["--replicaof", "127.0.0.1", String($0)] } ?? []
        if let tls {
            let tlsPort = RedisServer.freePort()
            self.tlsPort = tlsPort
            tlsArguments = ["--tls-port", String(tlsPort), "--tls-cert-file", tls.serverCertFile, "--tls-key-file", tls.serverKeyFile,
                            "--tls-ca-cert-file", tls.caFile, "--tls-auth-clients", clientCertificates.rawValue]
        } else {
            tlsPort = nil
            tlsArguments = []
        }
        directory = NSTemporaryDirectory() + "idemproxy-redis-\(port)-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try start()
    }

    public var url: String { "redis://127.0.0.1:\(port)/0" }

    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["REDIS_SERVER_BIN"], !path.isEmpty { return path }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = "\(dir)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "/usr/bin/redis-server"
    }

    /// Starts the server; one still running is stopped first, never left behind unowned.
    public func start() throws {
        kill()
        let process = try Subprocess.launch {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            // The pid file lets scripts/test stop servers a crashed test run left behind.
            process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
                                 "--pidfile", directory + "/redis.pid",
                                 // A replica syncs at once (the default waits 5 s for more replicas).
                                 "--repl-diskless-sync-delay", "0"] + tlsArguments + replicationArguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            return process
        }
        self.process = process
        // Ready when it accepts connections.
        for _ in 0..<100 {
            if let client = try? TestClient(port: port, timeoutSeconds: 1) {
                try? client.send("PING\r\n")
                if (try? client.fill()) == true, String(decoding: client.buffer, as: UTF8.self).hasPrefix("+PONG") { return }
            }
            usleep(50_000)
        }
    }

    /// Kills the server (SIGKILL: no chance to save or say goodbye).
    public func kill() {
        guard let process else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// Sends one command in inline form and returns the raw reply text.
    public func command(_ line: String) throws -> String {
        let client = try TestClient(port: port, timeoutSeconds: 2)
        try client.send(line + "\r\n")
        try client.fill()
        return String(decoding: client.buffer, as: UTF8.self)
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A loopback port nothing listens on at the moment of asking.
    public static func freePort() -> UInt16 {
        let (fd, port) = boundLoopbackSocket()
        close(fd)
        return port
    }

    /// A TCP socket bound to a free loopback port and not listening, and that port: while the
    /// caller keeps it open, connecting to the port is refused and nobody else can take it.
    public static func boundLoopbackSocket() -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, UInt16(bigEndian: address.sin_port))
    }
}
