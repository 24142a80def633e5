import Config
import Foundation
import Testing

/// deploy/compose.yaml: the three services, Redis set up so records are neither evicted nor
/// lost on restart, and the proxy's config (deploy/compose/idemproxy.yaml) valid for the
/// environment compose gives it.
@Suite struct ComposeTests {
    static func compose() throws -> Tree {
        let documents = try yamlDocuments(try repositoryFile("deploy/compose.yaml"), name: "deploy/compose.yaml")
        #expect(documents.count == 1)
        return Tree(documents.first)
    }

    static func service(_ name: String) throws -> Tree {
        let service = try compose()["services", name]
        _ = try #require(service.map, "no service \(name)")
        return service
    }

    /// The proxy's environment as compose sets it, with compose's own `${…}` interpolation
    /// replaced by a value (the default of `${VAR:-default}`).
    static func proxyEnvironment() throws -> [String: String] {
        let environment = try #require(try service("idemproxy")["environment"].map)
        var result: [String: String] = [:]
        for (name, value) in environment {
            var text = try #require(Tree(value).text, "\(name)")
            if let start = text.range(of: "${"), let defaultStart = text.range(of: ":-", range: start.upperBound..<text.endIndex),
               let end = text.range(of: "}", range: defaultStart.upperBound..<text.endIndex) {
                text.replaceSubrange(start.lowerBound..<end.upperBound, with: text[defaultStart.upperBound..<end.lowerBound])
            }
            result[name] = text
        }
        return result
    }

    /// A command given as a list or as one string, as words.
    static func words(_ command: Tree) -> [String] {
        if let string = command.string { return string.split(separator: " ").map(String.init) }
        return command.list.compactMap(\.text)
    }

    @Test func hasTheAPITheProxyAndRedis() throws {
        let services = try #require(try Self.compose()["services"].map)
        #expect(Set(services.keys) == ["api", "idemproxy", "redis"])
        for name in services.keys {
            #expect(try Self.service(name)["healthcheck", "test"].value != nil, "\(name) has no healthcheck")
        }
    }

    @Test func redisKeepsItsRecords() throws {
        let redis = try Self.service("redis")
        #expect(redis["image"].string?.hasPrefix("redis:7") == true)
        let command = Self.words(redis["command"])
        let pairs = zip(command, command.dropFirst()).map { "\($0) \($1)" }
        #expect(pairs.contains("--appendonly yes"), "\(command)")
        #expect(pairs.contains("--maxmemory-policy noeviction"), "\(command)")
        #expect(redis["volumes"].list.contains { $0.string?.hasSuffix(":/data") == true }, "AOF on a volume")
    }

    @Test func proxyIsBuiltFromTheRepositoryAndStartsAfterItsDependencies() throws {
        let proxy = try Self.service("idemproxy")
        let context = try #require(proxy["build", "context"].string)
        let dockerfile = proxy["build", "dockerfile"].string ?? "Dockerfile"
        #expect(FileManager.default.fileExists(atPath: repositoryRoot + "/deploy/" + context + "/" + dockerfile))
        for dependency in ["api", "redis"] {
            #expect(proxy["depends_on", dependency, "condition"].string == "service_healthy", "\(dependency)")
        }
        // The config file is mounted where the command reads it.
        let command = Self.words(proxy["command"])
        let configPath = try #require(command.firstIndex(of: "--config").map { command[$0 + 1] })
        let mounts = proxy["volumes"].list.compactMap(\.string).map { $0.split(separator: ":").map(String.init) }
        let mount = try #require(mounts.first { $0.count >= 2 && $0[1] == configPath })
        #expect(FileManager.default.fileExists(atPath: repositoryRoot + "/deploy/" + mount[0]))
        // The admin port is published on the host's loopback only.
        for port in proxy["ports"].list.compactMap(\.text) where port.hasSuffix(":9090") {
            #expect(port.hasPrefix("127.0.0.1:"), "\(port)")
        }
    }

    @Test func proxyConfigPassesCheckConfig() throws {
        let yaml = try repositoryFile("deploy/compose/idemproxy.yaml")
        let environment = try Self.proxyEnvironment()
        #expect(environment["REDIS_URL"] != nil && environment["IDEMPROXY_ADMIN_TOKEN"] != nil)
        let result = try checkConfig(yaml, environment: environment)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("store redis"))
        // No token by default (below): /records is refused on the container's admin port.
        #expect(result.stderr.contains("admin.token is empty"), "\(result.stderr)")

        let config = try ConfigLoader.parse(yaml: yaml, fileName: "idemproxy.yaml", environment: environment)
        #expect(config.upstream.host == "api")
        #expect(config.store.redis.host == "redis")
        let grace = try #require(try Self.service("idemproxy")["stop_grace_period"].string)
        let seconds = try #require(grace.hasSuffix("s") ? Int(grace.dropLast()) : nil, "\(grace)")
        #expect(Duration.seconds(seconds) > config.shutdownGrace)
    }

    /// The stack ships no admin token anyone could guess (it defaulted to `local-dev-token`
    /// for an admin listener on all of the container's interfaces): none unless the user sets
    /// IDEMPROXY_ADMIN_TOKEN, and then one of a sound length passes without a warning.
    @Test func shipsNoDefaultAdminToken() throws {
        var environment = try Self.proxyEnvironment()
        #expect(environment["IDEMPROXY_ADMIN_TOKEN"] == "")
        environment["IDEMPROXY_ADMIN_TOKEN"] = "4f9c2e7a1b8d3f60a5e9c7b2d1f8e3a6"
        let result = try checkConfig(try repositoryFile("deploy/compose/idemproxy.yaml"), environment: environment)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }
}
