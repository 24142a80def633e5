import Foundation

/// Runs the real `idemproxy` executable as a command (check-config, records) and collects what
/// it printed and its exit status.
public enum IdemproxyCLI {
    public struct Run: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Writes `yaml` to a temporary file and runs `idemproxy <arguments> --config <file>`. An
    /// `upstream` is appended when `yaml` has none (it is required; appended, so the lines a
    /// test's error messages name stay where the test wrote them).
    public static func run(
        _ arguments: [String], yaml: String, environment: [String: String] = [:], inheritEnvironment: Bool = true
    ) throws -> Run {
        let path = NSTemporaryDirectory() + "idemproxy-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).yaml"
        let text = yaml.contains("upstream:") ? yaml : yaml + "upstream: { url: http://127.0.0.1:3000 }\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try run(arguments + ["--config", path], environment: environment, inheritEnvironment: inheritEnvironment)
    }

    /// Runs `idemproxy <arguments>` with the test's environment plus `environment`, or with
    /// exactly `environment` when `inheritEnvironment` is false.
    public static func run(_ arguments: [String], environment: [String: String] = [:], inheritEnvironment: Bool = true) throws -> Run {
        let output = try Subprocess.run(
            ProxyProcess.binary, arguments,
            environment: inheritEnvironment ? ProcessInfo.processInfo.environment.merging(environment) { $1 } : environment)
        return Run(status: output.status, stdout: output.stdout, stderr: output.stderr)
    }
}
