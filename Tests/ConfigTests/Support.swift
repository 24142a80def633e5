import Config
import Testing

/// Parses `yaml` as `test.yaml` with the given environment.
func parse(_ yaml: String, environment: [String: String] = [:]) throws(ConfigError) -> IdemproxyConfig {
    try ConfigLoader.parse(yaml: yaml, fileName: "test.yaml", environment: environment)
}

/// The error `yaml` must produce; records a test failure when it parses.
func failure(_ yaml: String, environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError {
    do {
        let config = try parse(yaml, environment: environment)
        Issue.record("expected an error, parsed \(config)", sourceLocation: sourceLocation)
        return ConfigError(issues: [])
    } catch {
        return error
    }
}

/// The single problem `yaml` must produce.
func singleIssue(_ yaml: String, environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError.Issue? {
    let error = failure(yaml, environment: environment, sourceLocation: sourceLocation)
    #expect(error.issues.count == 1, "\(error)", sourceLocation: sourceLocation)
    return error.issues.first
}

/// A minimal valid document with `extra` appended.
func withUpstream(_ extra: String) -> String {
    "upstream:\n  url: http://127.0.0.1:3000\n" + extra
}

/// A minimal valid document with a Redis store whose `store.redis` lines are `redis`
/// (indented four spaces), so their line numbers are 6 and on.
func redisStore(_ redis: String) -> String {
    withUpstream("store:\n  backend: redis\n  redis:\n" + redis)
}

/// The repository root (this file is Tests/ConfigTests/Support.swift).
let repositoryRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()
