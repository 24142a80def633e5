import Config
import Foundation
import Testing

@Suite struct ErrorReportingTests {
    @Test func unknownTopLevelKeySuggestsClosest() {
        let issue = singleIssue(withUpstream("listen_port: 8080\n"))
        #expect(issue?.description == "test.yaml:3:1: listen_port: unknown key (did you mean listen?)")
        let typo = singleIssue(withUpstream("shutdown_grase: 5s\n"))
        #expect(typo?.description == "test.yaml:3:1: shutdown_grase: unknown key (did you mean shutdown_grace?)")
        let misplaced = singleIssue(withUpstream("ttl: 48h\n"))
        #expect(misplaced?.description == "test.yaml:3:1: ttl: unknown key (did you mean idempotency.ttl?)")
    }

    @Test func unknownKeyAtDepth() {
        let yaml = """
        upstream:
          url: http://127.0.0.1:3000
        store:
          backend: redis
          redis:
            url: redis://127.0.0.1:6379/0
            commandTimeout: 1s
        """
        let issue = singleIssue(yaml)
        #expect(issue?.description == "test.yaml:7:5: store.redis.commandTimeout: unknown key (did you mean command_timeout?)")

        let flow = singleIssue(withUpstream("idempotency:\n  fingerprint: { headers: [Content-Type], bodee: json }\n"))
        #expect(flow?.description == "test.yaml:4:43: idempotency.fingerprint.bodee: unknown key (did you mean body?)")

        let inRoute = singleIssue(withUpstream("routes:\n  - match: { path_prefix: /a, method: [POST] }\n"))
        #expect(inRoute?.description == "test.yaml:4:31: routes[0].match.method: unknown key (did you mean methods?)")
    }

    @Test func unknownKeyWithoutCloseMatchListsKeys() {
        let issue = singleIssue(withUpstream("logging:\n  destination: stderr\n"))
        #expect(issue?.message == "unknown key (expected one of: level, format, access_log)")
    }

    @Test func wrongTypes() {
        let mappingForScalar = singleIssue(withUpstream("listen:\n  host: 0.0.0.0\n  port: 8080\n"))
        #expect(mappingForScalar?.description == "test.yaml:3:1: listen: expected a listen address, got a mapping")
        let scalarForMapping = singleIssue(withUpstream("limits: 100\n"))
        #expect(scalarForMapping?.description == "test.yaml:3:1: limits: expected a mapping of keys, got \"100\"")
        let listForScalar = singleIssue(withUpstream("idempotency:\n  header: [A, B]\n"))
        #expect(listForScalar?.description == "test.yaml:4:3: idempotency.header: expected a header name, got a list")
        let nullValue = singleIssue(withUpstream("idempotency:\n  ttl:\n"))
        #expect(nullValue?.description == "test.yaml:4:3: idempotency.ttl: expected a duration such as 250ms, 2s, 5m or 24h, got no value")
        let notMapping = singleIssue("- upstream\n")
        #expect(notMapping?.description.hasPrefix("test.yaml:1:1: the configuration must be a mapping") == true)
    }

    @Test func yamlSyntaxErrorCarriesLine() {
        let issue = singleIssue("upstream:\n  url: http://127.0.0.1:3000\nidempotency:\n  methods: [POST, PATCH\n  ttl: 1h\n")
        #expect(issue?.file == "test.yaml")
        #expect(issue?.line != nil)
        #expect(issue?.message.hasPrefix("invalid YAML: ") == true)
        #expect(issue?.description.hasPrefix("test.yaml:\(issue?.line ?? 0):") == true)

        let tab = singleIssue("upstream:\n\turl: http://127.0.0.1:3000\n")
        #expect(tab?.line == 2)
        #expect(tab?.message.hasPrefix("invalid YAML: ") == true)

        let badIndent = singleIssue("upstream:\n  url: http://127.0.0.1:3000\n   connect_timeout: 2s\n")
        #expect(badIndent?.line == 3)
    }

    @Test func duplicateKeysAreRejected() {
        let issue = singleIssue("upstream:\n  url: http://127.0.0.1:3000\nlisten: 0.0.0.0:1\nlisten: 0.0.0.0:2\n")
        #expect(issue?.line == 3)
        #expect(issue?.message == "invalid YAML: duplicate key \"listen\" in one mapping")
    }

    @Test func multipleErrorsAreReportedTogetherInFileOrder() {
        let yaml = """
        listen: 0.0.0.0
        workers: zero
        upstream:
          url: https://secure.example.com
          connect_timeout: soon
        idempotency:
          methods: [GET]
          key_max_length: 0
        routes:
          - match: { path_prefix: v1 }
          - match: { path_prefix: /ok }
            lease: 1ms
        limits:
          max_connections: 0
        logging: { level: loud }
        """
        let error = failure(yaml)
        #expect(error.issues.map(\.path) == [
            "listen", "workers", "upstream.url", "upstream.connect_timeout", "idempotency.methods[0]",
            "idempotency.key_max_length", "routes[0].match.path_prefix", "routes[1].lease",
            "limits.max_connections", "logging.level",
        ])
        #expect(error.issues.map { $0.line ?? 0 } == [1, 2, 4, 5, 7, 8, 10, 12, 14, 15])
        let lines = error.description.split(separator: "\n")
        #expect(lines.count == 10)
        #expect(lines.allSatisfy { $0.hasPrefix("test.yaml:") })
        #expect(lines[6] == "test.yaml:10:14: routes[0].match.path_prefix: expected a path prefix starting with /, got \"v1\"")
    }

    @Test func missingFile() {
        do {
            _ = try ConfigLoader.load(path: "/nonexistent/idemproxy.yaml", environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "cannot read /nonexistent/idemproxy.yaml: No such file or directory")
        }
    }

    @Test func loadReportsTheFileName() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("idemproxy.yaml").path
        try "upstream:\n  url: http://127.0.0.1:3000\n  idle_timeout: never\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigLoader.load(path: path, environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "\(path):3:3: upstream.idle_timeout: expected a duration such as 250ms, 2s, 5m or 24h, got \"never\"")
        }
        try "upstream:\n  url: http://127.0.0.1:3000\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try ConfigLoader.load(path: path, environment: [:]).upstream.port == 3000)

        let directoryError = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: directory.path, environment: [:]) }
        #expect(directoryError?.description == "cannot read \(directory.path): Is a directory")
    }
}
