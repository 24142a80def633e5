import ArgumentParser
import Config
import EventLoop
import Foundation
import Proxy
import RedisStore

/// `idemproxy [serve] --config PATH`, `idemproxy check-config --config PATH`,
/// `idemproxy records get|purge --key K [--scope S] [--force] --config PATH`, `--version` (SPEC §7).
/// Argument parsing and wiring only; everything else lives in the library modules.
@main
struct Idemproxy: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "idemproxy",
        abstract: "HTTP/1.1 reverse proxy that enforces idempotency keys.",
        version: version,
        subcommands: [Serve.self, CheckConfig.self, Records.self],
        defaultSubcommand: Serve.self)

    /// As ArgumentParser's, except that a usage error (missing or unknown option) exits with 2,
    /// the status SPEC §7 gives every error, rather than EX_USAGE (64).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
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
        ProxyServer.prepareAllocator()
        ProxyServer.prepareSignals()
        let settings: ProxySettings
        let server: ProxyServer
        do {
            settings = try ProxySettings(config: config)
            server = try ProxyServer(settings: settings)
        } catch {
            FileHandle.standardError.write(Data("idemproxy: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        for warning in config.admin.warnings { settings.log.warning(warning) }
        if let redis = settings.redis {
            // SPEC §9: say loudly when Redis may lose records; start anyway (the store may
            // come up after the proxy, and store.unavailable covers the meantime).
            let check = try RedisTarget(config.store.redis, commandTimeoutMillis: 2000)
            let report = RedisStartupReport.run { check.makeConnection(loop: $0) }
            for warning in report.warnings { settings.log.warning(warning, ["redis": redis.description]) }
            if report.reachable {
                settings.log.info("redis checked", [
                    "maxmemory_policy": report.maxmemoryPolicy ?? "?", "appendonly": report.appendOnly ?? "?",
                    "scripts_loaded": "\(report.scriptsLoaded)"])
            }
        }
        server.start()
        settings.log.info("listening", [
            "listen": "\(config.listen.host):\(server.port)", "upstream": config.upstream.url,
            "workers": "\(settings.workers)", "store": "\(config.store.backend)", "version": Idemproxy.version])
        let signal = ProxyServer.waitForTerminationSignal()
        settings.log.info("shutting down", ["signal": signal == SIGTERM ? "SIGTERM" : "SIGINT", "grace": "\(config.shutdownGrace)"])
        server.shutdown()
        settings.log.info("stopped")
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Validate the configuration and exit.")

    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        for warning in config.admin.warnings {
            FileHandle.standardError.write(Data("idemproxy: warning: \(warning)\n".utf8))
        }
        print("configuration OK: listen \(config.listen), upstream \(config.upstream.url), store \(config.store.backend)")
    }
}
