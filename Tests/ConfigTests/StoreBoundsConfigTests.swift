import Config
import Testing

/// `scope.missing`, `store.memory.max_bytes`, and the check that a stored body fits in Redis.
@Suite struct StoreBoundsConfigTests {
    @Test func scopeMissingDefaultsToRejectAndAcceptsUnscoped() throws {
        #expect(try parse(withUpstream("")).idempotency.scopeMissing == .reject)
        let config = try parse(withUpstream("idempotency:\n  scope: { missing: unscoped }\nroutes:\n  - match: { path_prefix: /a }\n    scope: { missing: reject }\n"))
        #expect(config.idempotency.scopeMissing == .unscoped)
        #expect(config.routes[0].idempotency.scopeMissing == .reject)
        let issue = singleIssue(withUpstream("idempotency:\n  scope: { missing: shared }\n"))
        #expect(issue?.description.hasPrefix("test.yaml:4:12: idempotency.scope.missing: expected reject or unscoped") == true, "\(String(describing: issue))")
    }

    @Test func memoryMaxBytes() throws {
        #expect(try parse(withUpstream("")).store.memoryMaxBytes == 256 << 20)
        #expect(try parse(withUpstream("store:\n  memory: { max_bytes: 64MiB }\n")).store.memoryMaxBytes == 64 << 20)
        let tooSmall = singleIssue(withUpstream("store:\n  memory: { max_bytes: 1KiB }\n"))
        #expect(tooSmall?.path == "store.memory.max_bytes")
        let unknown = singleIssue(withUpstream("store:\n  memory: { max_byte: 1MiB }\n"))
        #expect(unknown?.description.contains("store.memory.max_byte: unknown key (did you mean max_bytes?)") == true, "\(String(describing: unknown))")
    }

    @Test func aStoredBodyMustFitInARedisValue() throws {
        let global = singleIssue(withUpstream("store: { backend: redis }\nidempotency:\n  max_stored_body: 1GiB\n"))
        #expect(global?.description.hasPrefix("test.yaml:5:3: idempotency.max_stored_body: must be at most 500MiB with the redis store") == true, "\(String(describing: global))")
        let route = singleIssue(withUpstream("store: { backend: redis }\nroutes:\n  - match: { path_prefix: /a }\n    max_stored_body: 600MiB\n"))
        #expect(route?.path == "routes[0].max_stored_body", "\(String(describing: route))")
        // The memory store has no such limit, and 500 MiB fits.
        #expect(try parse(withUpstream("idempotency:\n  max_stored_body: 1GiB\n")).idempotency.maxStoredBody == 1 << 30)
        #expect(try parse(withUpstream("store: { backend: redis }\nidempotency:\n  max_stored_body: 500MiB\n")).idempotency.maxStoredBody == 500 << 20)
    }
}
