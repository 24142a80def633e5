import Testing
@testable import Config

/// `admin.listen`/`admin.token` rules for `/records` (SPEC §8), and when a lookup needs a scope.
@Suite struct AdminSectionTests {
    @Test(arguments: ["127.0.0.1", "127.9.8.7", "localhost", "::1", "[::1]", "0:0:0:0:0:0:0:1", "[::ffff:127.0.0.1]"])
    func loopbackSpellings(_ host: String) {
        #expect(SocketAddressSpec(host: host, port: 9090).isLoopback)
    }

    @Test(arguments: ["0.0.0.0", "::", "[::]", "10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "admin.internal", "127.1.2"])
    func notLoopback(_ host: String) {
        #expect(!SocketAddressSpec(host: host, port: 9090).isLoopback)
    }

    @Test func recordsNeedATokenOffLoopback() {
        #expect(AdminConfig(listen: SocketAddressSpec(host: "127.0.0.1", port: 9090)).recordsEnabled)
        #expect(AdminConfig(listen: SocketAddressSpec(host: "127.0.0.1", port: 9090)).warnings.isEmpty)
        let open = AdminConfig(listen: SocketAddressSpec(host: "0.0.0.0", port: 9090))
        #expect(!open.recordsEnabled)
        #expect(open.warnings.count == 1)
        let tokened = AdminConfig(listen: SocketAddressSpec(host: "0.0.0.0", port: 9090), token: "t0k3n-0123456789")
        #expect(tokened.recordsEnabled)
        #expect(tokened.warnings.isEmpty)
        #expect(!AdminConfig(listen: nil, token: "t").recordsEnabled)
    }

    /// A short token is guessable by whoever reaches the listener: a warning, on loopback too
    /// (there a token is what keeps other local users out).
    @Test(arguments: ["0.0.0.0", "127.0.0.1"])
    func aShortTokenIsWarnedAbout(_ host: String) {
        let listen = SocketAddressSpec(host: host, port: 9090)
        for short in ["change-me", "local-dev-token", "x"] {
            let warnings = AdminConfig(listen: listen, token: short).warnings
            #expect(warnings.count == 1, "\(short)")
            #expect(warnings.first?.contains("admin.token is shorter than 16 characters") == true)
        }
        #expect(AdminConfig(listen: listen, token: String(repeating: "a", count: 16)).warnings.isEmpty)
    }

    @Test func tokensAreBearerTokens() throws {
        for good in ["abc", "A-b.c_d~e+f/g==", "x="] {
            let config = try ConfigLoader.parse(yaml: "upstream: { url: http://127.0.0.1:3000 }\nadmin: { token: \"\(good)\" }\n", fileName: "t.yaml", environment: [:])
            #expect(config.admin.token == good)
        }
        for bad in ["two words", "=abc", "a=b", "tab\t", "é"] {
            #expect(throws: (any Error).self) {
                try ConfigLoader.parse(yaml: "upstream: { url: http://127.0.0.1:3000 }\nadmin: { token: \"\(bad)\" }\n", fileName: "t.yaml", environment: [:])
            }
        }
    }

    /// What `/records` says the next request makes of an expired lease depends on `indeterminate`
    /// for every guarded request; where routes differ it cannot say.
    @Test func theExpiredLeasePolicyIsKnownWhenEveryGuardAgrees() throws {
        func policy(_ yaml: String) throws -> IndeterminateMode? {
            try ConfigLoader.parse(yaml: "upstream: { url: http://127.0.0.1:3000 }\n" + yaml, fileName: "t.yaml", environment: [:]).expiredLeasePolicy
        }
        #expect(try policy("") == .hold)
        #expect(try policy("idempotency: { indeterminate: release }\n") == .release)
        #expect(try policy("routes:\n  - match: { path_prefix: /a }\n    indeterminate: release\n") == nil)
        #expect(try policy("routes:\n  - match: { path_prefix: /a }\n    enabled: false\n    indeterminate: release\n") == .hold)
    }

    @Test func howRecordsAreScoped() throws {
        func scoping(_ yaml: String) throws -> RecordScoping {
            try ConfigLoader.parse(yaml: "upstream: { url: http://127.0.0.1:3000 }\n" + yaml, fileName: "t.yaml", environment: [:]).recordScoping
        }
        let off = "idempotency: { scope: { header: \"\" } }\n"
        #expect(try scoping("") == .required(headers: ["Authorization"]))
        #expect(try scoping(off) == .off)
        #expect(try scoping("routes:\n  - match: { path_prefix: /a }\n    scope: { header: \"\" }\n") == .mixed)
        // A route that scopes by its own header: a lookup needs a scope, by either header.
        #expect(try scoping("routes:\n  - match: { path_prefix: /a }\n    scope: { header: X-Tenant }\n")
            == .required(headers: ["Authorization", "X-Tenant"]))
        // Scoping off globally but on for a route: records of both kinds exist.
        #expect(try scoping(off + "routes:\n  - match: { path_prefix: /a }\n    scope: { header: X-Tenant }\n") == .mixed)
        // A disabled route guards nothing, whatever its scope.
        #expect(try scoping("routes:\n  - match: { path_prefix: /a }\n    enabled: false\n    scope: { header: \"\" }\n")
            == .required(headers: ["Authorization"]))
        #expect(try scoping(off + "routes:\n  - match: { path_prefix: /a }\n    enabled: false\n    scope: { header: X-Tenant }\n") == .off)
    }
}
