import Foundation
import Glibc

/// The real `idemproxy` executable in its own process, for what an in-process harness cannot
/// show: resource limits (`ulimit -n`), resident memory, CPU time. It is built by
/// `swift build` (and `swift test`) next to the test bundle, in `.build/debug`.
public final class ProxyProcess: @unchecked Sendable {
    public let port: UInt16
    private let process: Process
    private let directory: String

    /// Next to the running test bundle (so a build under another scratch path, such as the
    /// AddressSanitizer one, tests its own binary), else in `.build/debug`.
    public static var binary: String {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let sibling = bundleDirectory + "/idemproxy"
        if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/.build/debug/idemproxy"
    }

    /// Starts the proxy on a free loopback port with `yaml` (everything but `listen`), under
    /// `ulimit -n openFiles` when given (`waitUntilServing` tells when it is up).
    public init(yaml: String, openFiles: Int? = nil) throws {
        let probe = TestUpstream()
        port = probe.port
        probe.stop()
        directory = NSTemporaryDirectory() + "idemproxy-process-\(port)-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config = directory + "/config.yaml"
        try ("listen: 127.0.0.1:\(port)\n" + yaml).write(toFile: config, atomically: true, encoding: .utf8)
        let limit = openFiles.map { "ulimit -n \($0) && " } ?? ""
        process = try Subprocess.launch {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "\(limit)exec \"$0\" serve --config \"$1\"", Self.binary, config]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            return process
        }
    }

    /// In front of `upstream` with what the resource tests share: one worker, no access log,
    /// errors only, the admin listener as given (none by default), and `extraYAML`.
    public convenience init(inFrontOf upstream: TestUpstream, admin: String = "", extraYAML: String = "", openFiles: Int? = nil) throws {
        try self.init(yaml: """
            workers: 1
            upstream: { url: "http://127.0.0.1:\(upstream.port)" }
            admin: { listen: "\(admin)" }
            logging: { access_log: false, level: error }
            \(extraYAML)
            """, openFiles: openFiles)
    }

    public var pid: Int32 { process.processIdentifier }

    /// Waits until a `GET path` on a new connection answers with a 2xx status.
    public func waitUntilServing(path: String = "/", seconds: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let client = try? TestClient(port: port, timeoutSeconds: 2) {
                try? client.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
                if let status = try? client.readResponse(requestMethod: "GET").status, (200..<300).contains(status) { return true }
            }
            usleep(50_000)
        }
        return false
    }

    /// utime + stime in clock ticks (`sysconf(_SC_CLK_TCK)` per second).
    public var cpuTicks: Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        // After the parenthesised command name, utime and stime are the 12th and 13th fields.
        let rest = text[text.index(after: close)...].split(separator: " ")
        return (Int(rest[11]) ?? 0) + (Int(rest[12]) ?? 0)
    }

    /// VmRSS in KiB.
    public var residentKiB: Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }
}
