import Foundation
import RedisStore
import Testing
import TestSupport

/// SPEC §9: idemproxy reads Redis' eviction and persistence settings at start and warns when
/// they can lose idempotency records.
@Suite(.serialized) struct StartupCheckTests {
    @Test func evictingPolicyAndNoPersistenceAreWarnedAbout() throws {
        let redis = try RedisServer()
        _ = try redis.command("CONFIG SET maxmemory-policy allkeys-lru")
        let report = RedisStartupReport.run(configuration: .init(host: "127.0.0.1", port: redis.port))
        #expect(report.reachable)
        #expect(report.scriptsLoaded)
        #expect(report.maxmemoryPolicy == "allkeys-lru")
        #expect(report.warnings.contains { $0.contains("allkeys-lru") && $0.contains("evict") })
        #expect(report.warnings.contains { $0.contains("persistence is off") })
    }

    @Test func safeConfigurationGivesNoWarnings() throws {
        let redis = try RedisServer()
        _ = try redis.command("CONFIG SET maxmemory-policy noeviction")
        _ = try redis.command("CONFIG SET appendonly yes")
        let report = RedisStartupReport.run(configuration: .init(host: "127.0.0.1", port: redis.port))
        #expect(report.reachable)
        #expect(report.warnings.isEmpty, "\(report.warnings)")
    }

    @Test func unreachableRedisIsReportedNotFatal() throws {
        let redis = try RedisServer()
        let port = redis.port
        redis.kill()
        let report = RedisStartupReport.run(configuration: .init(host: "127.0.0.1", port: port), timeoutMillis: 500)
        #expect(!report.reachable)
        #expect(report.warnings.first?.contains("not reachable") == true)
    }
}
