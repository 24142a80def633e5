import Foundation
import Glibc
import Testing
import TestSupport

/// A record looked up by a scope given with whitespace around it (RFC 9110 §5.5: OWS is not
/// part of a field value, and the proxy hashes the value without it), on `/records` and in
/// the CLI: copying `Authorization: Bearer x` and cutting at the colon leaves a leading space,
/// and a "no record" for an existing record is a wrong answer an operator would act on.
@Suite(.serialized) struct RecordsScopeTests {
    static let scope = "Bearer caller-1"
    static let encodedScope = "Bearer+caller-1"

    @Test(arguments: ["+", "%09", "+%09+"])
    func aScopeWithSurroundingWhitespaceFindsItsRecord(padding: String) throws {
        let proxy = try ProxyHarness()
        defer { proxy.stop() }
        let key = uniqueKey()
        #expect(try proxy.request(post(key: key)).status == 200)
        #expect(try proxy.admin("/records?key=\(key)&scope=\(Self.encodedScope)").status == 200)
        let padded = try proxy.admin("/records?key=\(key)&scope=\(padding)\(Self.encodedScope)\(padding)")
        #expect(padded.status == 200, "a scope with surrounding whitespace missed an existing record: \(padded.bodyText)")
    }

    /// Through the CLI (the memory store: it asks the running proxy's admin endpoint).
    @Test func theCLIFindsTheRecordOfAScopeGivenWithSurroundingWhitespace() throws {
        let adminPort = RedisServer.freePort()
        let admin = "{ listen: 127.0.0.1:\(adminPort) }"
        let proxy = try ProxyHarness(admin: admin)
        defer { proxy.stop() }
        let key = uniqueKey()
        _ = try proxy.request(post(key: key))
        let exact = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", Self.scope], yaml: "admin: \(admin)\n")
        #expect(exact.status == 0, "\(exact.stdout)\(exact.stderr)")
        let padded = try IdemproxyCLI.run(["records", "get", "--key", key, "--scope", " " + Self.scope + "\t"], yaml: "admin: \(admin)\n")
        #expect(padded.status == 0, "exit \(padded.status): \(padded.stdout)\(padded.stderr)")
        // The same record: its key hash is the first line.
        #expect(padded.stdout.split(separator: "\n").first == exact.stdout.split(separator: "\n").first)
    }
}
