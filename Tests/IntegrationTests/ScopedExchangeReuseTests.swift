import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// Guarded exchanges reused in place and across the connections of one
/// loop (`RetiredExchanges`), with the storage key written into a reused buffer and looked up by
/// borrowed bytes (memory store, Redis replay cache). Every client sends the same key names as
/// every other client but under its own scope (`Authorization`), pipelined, mixed with unguarded
/// GETs and with guarded requests that lack the scope (400 missing-scope, which never computes a
/// storage key). A reused exchange that kept the previous request's key, scope, storage key,
/// fingerprint or stored response would make one scope see another's answer, replay a fresh
/// key, or run a key twice.
@Suite(.serialized) struct ScopedExchangeReuseTests {
    enum Store: String, CaseIterable, CustomStringConvertible {
        case memory, redis, redisWithReplayCache
        var description: String { rawValue }
        var yaml: String {
            switch self {
            case .memory: return StoreKind.memory.yaml()
            case .redis: return StoreKind.redis.yaml()
            case .redisWithReplayCache:
                return "store: { backend: redis, redis: { url: \"\(StoreKind.redisURL)\", key_prefix: \"\(StoreKind.uniquePrefix())\", command_timeout: 500ms, replay_cache_max_bytes: 1048576 } }\n"
            }
        }
    }

    static func post(_ key: String, scope: String?, body: String) -> String {
        var text = "POST /p HTTP/1.1\r\nHost: a\r\nIdempotency-Key: \(key)\r\nContent-Length: \(body.utf8.count)\r\n"
        if let scope { text += "Authorization: \(scope)\r\n" }
        return text + "\r\n" + body
    }

    @Test(arguments: Store.allCases)
    func scopesNeverSeeEachOthersRecordsOnReusedExchanges(store: Store) throws {
        let runs = Mutex<[String: Int]>([:])  // "scope|key" → upstream executions
        let upstream = TestUpstream { request in
            let key = request.values("idempotency-key").first ?? "-"
            let scope = request.values("authorization").first ?? "-"
            runs.withLock { $0["\(scope)|\(key)", default: 0] += 1 }
            // Sizes on both sides of the kept response capacity (4 KiB).
            let size = (key.utf8.count * 977 + scope.utf8.count * 131) % 7000
            let body = Array("\(scope)|\(key)|\(String(decoding: request.body, as: UTF8.self))|".utf8)
                + [UInt8](repeating: UInt8(ascii: "z"), count: size)
            return .respond(status: 201, headers: [("X-Scope", scope), ("X-Key", key)], body: body)
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml, workers: 1)
        defer { proxy.stop() }
        if store != .memory {
            proxy.waitForRedis()
        }
        let tag = UInt32.random(in: 0...UInt32.max)
        let clients = 4, rounds = 32
        let failures = Mutex<[String]>([])
        // Each client on its own thread; `concurrently` returns once all are done (their reads
        // time out after 15 s, so none waits forever).
        _ = concurrently(clients) { c in
            do {
                let client = try proxy.client(timeoutSeconds: 15)
                let scope = "Bearer client-\(c)-\(tag)"
                var firsts: [String: String] = [:]  // key → body this client first received
                var generator = SystemRandomNumberGenerator()
                let batch = 6
                for batchStart in stride(from: 0, to: rounds, by: batch) {
                    enum Kind { case fresh, replay, unguarded, missingScope }
                    var sent: [(kind: Kind, key: String, body: String)] = []
                    var text = ""
                    for r in batchStart..<min(rounds, batchStart + batch) {
                        switch r % 4 {
                        case 0, 2:
                            // The same key names for every client: only the scope tells them apart.
                            let key = "k-\(tag)-\(r)"
                            let body = "{\"r\":\(r)}"
                            sent.append((.fresh, key, body))
                            text += Self.post(key, scope: scope, body: body)
                        case 1:
                            let earlier = firsts.keys.sorted()
                            if let key = earlier.randomElement(using: &generator) {
                                let round = Int(key.split(separator: "-").last!)!
                                let body = "{\"r\":\(round)}"
                                sent.append((.replay, key, body))
                                text += Self.post(key, scope: scope, body: body)
                            } else {
                                sent.append((.unguarded, "", ""))
                                text += "GET /g HTTP/1.1\r\nHost: a\r\n\r\n"
                            }
                        default:
                            // A guarded request without its scope, carrying another round's key.
                            sent.append((.missingScope, "k-\(tag)-\(r - 1)", "{}"))
                            text += Self.post("k-\(tag)-\(r - 1)", scope: nil, body: "{}")
                        }
                    }
                    try client.send(text)
                    for item in sent {
                        let response = try client.readResponse(requestMethod: item.kind == .unguarded ? "GET" : "POST")
                        switch item.kind {
                        case .unguarded:
                            if response.status != 201 || response.value("idempotent-replayed") != nil {
                                failures.withLock { $0.append("GET: \(response.status) \(response.head.prefix(200))") }
                            }
                        case .missingScope:
                            if response.status != 400 || response.value("idempotent-replayed") != nil {
                                failures.withLock { $0.append("missing scope \(item.key): \(response.status) \(response.head.prefix(200))") }
                            }
                        case .fresh, .replay:
                            if response.status == 409 { continue }
                            let expected = "\(scope)|\(item.key)|\(item.body)|"
                            guard response.status == 201, response.value("x-scope") == scope, response.value("x-key") == item.key,
                                  response.bodyText.hasPrefix(expected) else {
                                failures.withLock { $0.append("\(scope) \(item.key): \(response.status) \(response.head.prefix(200)) \(response.bodyText.prefix(80))") }
                                continue
                            }
                            let replayed = response.value("idempotent-replayed") == "true"
                            if let first = firsts[item.key] {
                                if !replayed || response.bodyText != first {
                                    failures.withLock { $0.append("\(scope) \(item.key): replay differs (replayed \(replayed))") }
                                }
                            } else {
                                if replayed {
                                    failures.withLock { $0.append("\(scope) \(item.key): a key new to this scope was replayed") }
                                }
                                firsts[item.key] = response.bodyText
                            }
                        }
                    }
                }
            } catch {
                failures.withLock { $0.append("client \(c): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(5))")
        let counts = runs.withLock { $0 }.filter { $0.key != "-|-" }
        // Each client ran rounds 0 and 2 of every four: 16 fresh keys, each exactly once per scope.
        #expect(counts.count == clients * rounds / 2, "\(counts.count)")
        #expect(counts.values.allSatisfy { $0 == 1 }, "\(counts.filter { $0.value != 1 })")
    }
}
