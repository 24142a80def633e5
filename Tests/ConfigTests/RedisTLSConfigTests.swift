import Config
import Testing

/// `rediss://` and `store.redis.tls` (SPEC §6): TLS settings are read, files checked at load
/// time, and settings that would silently not apply are errors naming their key.
@Suite struct RedisTLSConfigTests {
    /// A file every test machine can read.
    static let readable = "/etc/hostname"

    @Test func aRedissURLTurnsTLSOnWithTheSystemStoreByDefault() throws {
        let config = try parse(redisStore("    url: rediss://cache.internal:6380/2\n"))
        #expect(config.store.redis.tls == RedisTLSConfig())
        #expect(config.store.redis.host == "cache.internal")
        #expect(config.store.redis.port == 6380)
        #expect(config.store.redis.database == 2)
        #expect(try parse(redisStore("    url: redis://cache.internal:6379/0\n")).store.redis.tls == nil)
    }

    @Test func everyTLSSettingIsRead() throws {
        let config = try parse(redisStore("""
                url: rediss://10.0.0.5:6380/0
                tls: { ca_file: \(Self.readable), cert_file: \(Self.readable), key_file: \(Self.readable), server_name: cache.internal }

            """))
        #expect(config.store.redis.tls == RedisTLSConfig(
            caFile: Self.readable, certFile: Self.readable, keyFile: Self.readable, serverName: "cache.internal"))
    }

    @Test func emptyStringsMeanNotGiven() throws {
        let config = try parse(redisStore("    url: rediss://h:6380/0\n    tls: { ca_file: \"\", cert_file: \"\", key_file: \"\", server_name: \"\" }\n"))
        #expect(config.store.redis.tls == RedisTLSConfig())
    }

    @Test func tlsSettingsWithAPlaintextURLAreAnError() {
        let issue = singleIssue(redisStore("    url: redis://h:6379/0\n    tls: { ca_file: \(Self.readable) }\n"))
        #expect(issue?.path == "store.redis.tls")
        #expect(issue?.line == 7)
        #expect(issue?.message.contains("rediss://") == true)
    }

    @Test func anUnreadableFileIsNamedWithItsKey() {
        let issue = singleIssue(redisStore("    url: rediss://h:6380/0\n    tls:\n      ca_file: /nonexistent/ca.pem\n"))
        #expect(issue?.path == "store.redis.tls.ca_file")
        #expect(issue?.line == 8)
        #expect(issue?.message.contains("/nonexistent/ca.pem") == true)
    }

    @Test func aCertificateNeedsItsKey() {
        let issue = singleIssue(redisStore("    url: rediss://h:6380/0\n    tls: { cert_file: \(Self.readable) }\n"))
        #expect(issue?.path == "store.redis.tls")
        #expect(issue?.message.contains("key_file") == true)
    }

    @Test func unknownTLSKeysAreRejected() {
        let issue = singleIssue(redisStore("    url: rediss://h:6380/0\n    tls: { insecure_skip_verify: true }\n"))
        #expect(issue?.path == "store.redis.tls.insecure_skip_verify")
    }

    @Test func replicaAcknowledgementSettings() throws {
        let config = try parse(redisStore("    min_replicas_acked: 1\n    replica_ack_timeout: 200ms\n"))
        #expect(config.store.redis.minReplicasAcked == 1)
        #expect(config.store.redis.replicaAckTimeout == .milliseconds(200))
        #expect(try parse(redisStore("    url: redis://h:6379/0\n")).store.redis.minReplicasAcked == 0)
        #expect(singleIssue(redisStore("    min_replicas_acked: -1\n"))?.path == "store.redis.min_replicas_acked")
        #expect(singleIssue(redisStore("    replica_ack_timeout: 0s\n"))?.path == "store.redis.replica_ack_timeout")
    }
}

@Suite struct RedisReplicaAndNameConfigTests {
    @Test func theReplicaWaitMustBeShorterThanTheCommandTimeout() {
        let issue = singleIssue(redisStore("    min_replicas_acked: 1\n    replica_ack_timeout: 250ms\n"))
        #expect(issue?.path == "store.redis.replica_ack_timeout")
        #expect(issue?.message.contains("command_timeout") == true)
        // Without WAIT the setting is inert and not checked.
        #expect((try? parse(redisStore("    replica_ack_timeout: 1s\n"))) != nil)
    }

    @Test(arguments: ["[::1]", "cache.internal:6380", "bad name"])
    func aServerNameIsAHostOrAnAddress(_ name: String) {
        let issue = singleIssue(redisStore("    url: rediss://h:6380/0\n    tls: { server_name: \"\(name)\" }\n"))
        #expect(issue?.path == "store.redis.tls.server_name")
    }

    @Test(arguments: ["cache.internal", "10.0.0.5", "::1"])
    func validServerNames(_ name: String) throws {
        #expect(try parse(redisStore("    url: rediss://h:6380/0\n    tls: { server_name: \"\(name)\" }\n")).store.redis.tls?.serverName == name)
    }
}
