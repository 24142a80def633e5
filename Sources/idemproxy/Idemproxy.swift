import ArgumentParser
import Config
import EventLoop
import Foundation
import Proxy

/// `idemproxy [serve] --config PATH`, `idemproxy check-config --config PATH`, `--version`.
/// Argument parsing and wiring only; everything else lives in the library modules.
@main
struct Idemproxy: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "idemproxy",
        abstract: "HTTP/1.1 reverse proxy that enforces idempotency keys.",
        version: version,
        subcommands: [Serve.self, CheckConfig.self],
        defaultSubcommand: Serve.self)
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Path to the YAML configuration file.")
    var config: String = "config/idemproxy.yaml"

    /// Loads and validates the configuration, or prints every error and exits non-zero.
    func load() throws -> IdemproxyConfig {
        do {
            return try ConfigLoader.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("idemproxy: invalid configuration\n\(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy (the default command).")

    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        ProxyServer.prepareSignals()
        let server: ProxyServer
        do {
            server = try ProxyServer(settings: try ProxySettings(config: config))
        } catch {
            FileHandle.standardError.write(Data("idemproxy: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        server.start()
        StartupLog.info("listening", ["listen": "\(config.listen.host):\(server.port)", "upstream": config.upstream.url, "workers": "\(server.settings.workers)"])
        let signal = ProxyServer.waitForTerminationSignal()
        StartupLog.info("shutting down", ["signal": signal == SIGTERM ? "SIGTERM" : "SIGINT"])
        server.shutdown()
        StartupLog.info("stopped", [:])
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Validate the configuration and exit.")

    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        print("configuration OK: listen \(config.listen), upstream \(config.upstream.url), store \(config.store.backend)")
    }
}

/// One JSON line per lifecycle event on stderr, the format log collectors expect.
enum StartupLog {
    static func info(_ message: String, _ fields: [String: String]) {
        var line = "{\"level\":\"info\",\"msg\":\"\(message)\""
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            line += ",\"\(key)\":\"\(value.replacingOccurrences(of: "\"", with: "\\\""))\""
        }
        line += "}\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
