import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// Guarded exchanges are reused across the connections of a loop once nothing holds them
/// (`RetiredExchanges`): with Redis, a connection's previous exchange is usually still held by
/// its completion write when the next request starts. Several connections run fresh keys of
/// varied sizes and replays of their own and each other's keys; every answer must belong to its
/// own key, every replay must equal what the key's first client received, and every key must
/// reach the upstream once.
@Suite(.serialized) struct ExchangeReuseTests {
    static func post(_ key: String, body: String) -> String {
        "POST /p HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nIdempotency-Key: \(key)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    @Test(arguments: StoreKind.allCases)
    func reusedExchangesNeverMixRequests(store: StoreKind) throws {
        let runs = Mutex<[String: Int]>([:])
        let upstream = TestUpstream { request in
            let key = request.values("idempotency-key").first ?? "-"
            runs.withLock { $0[key, default: 0] += 1 }
            // Sizes on both sides of the kept buffer capacities (4 KiB for the response).
            let size = key.utf8.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFF } % 9000
            let body = Array("\(key)|\(String(decoding: request.body, as: UTF8.self))|".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: size)
            return .respond(status: 201, headers: [("X-Key", key), ("X-Size", "\(size)")], body: body)
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: store.yaml(), workers: 1)
        defer { proxy.stop() }
        let prefix = "reuse-\(store)-\(UInt32.random(in: 0...UInt32.max))"
        let clients = 6, rounds = 40
        let firsts = Mutex<[String: TestClient.Response]>([:])
        let failures = Mutex<[String]>([])
        let answered = Mutex<[Int: [Int]]>([:])  // client → rounds of its fresh keys it has an answer for
        // Each client on its own thread; `concurrently` returns once all are done (their reads
        // time out after 15 s, so none waits forever).
        _ = concurrently(clients) { c in
            do {
                let client = try proxy.client(timeoutSeconds: 15)
                var generator = SystemRandomNumberGenerator()
                // Pipelined in batches: the next request of a batch starts while the store
                // write of the one before may still hold its exchange, which is then retired.
                let batch = 8
                for batchStart in stride(from: 0, to: rounds, by: batch) {
                    var keys: [(key: String, body: String, fresh: Bool)] = []
                    for r in batchStart..<min(rounds, batchStart + batch) {
                        // Even rounds a fresh key; odd rounds a replay of an earlier key of
                        // this client or of the client before it.
                        // Another client's key is replayed only once that client has its
                        // answer: before then this request could reach the proxy first and
                        // run the key itself, and its owner's own request would be the replay.
                        let fresh = r % 2 == 0
                        let neighbour = (c + 1) % clients
                        let neighbourRounds = answered.withLock { $0[neighbour, default: []] }
                        let owner = fresh || neighbourRounds.isEmpty || Bool.random(using: &generator) ? c : neighbour
                        let round = fresh ? r
                            : owner == c ? Int.random(in: 0..<(r / 2 + 1), using: &generator) * 2
                            : neighbourRounds.randomElement(using: &generator)!
                        let key = "\(prefix)-\(owner)-\(round)"
                        keys.append((key, "{\"client\":\(owner),\"round\":\(round)}", fresh))
                    }
                    try client.send(keys.map { Self.post($0.key, body: $0.body) }.joined())
                    for (key, body, fresh) in keys {
                        let response = try client.readResponse(requestMethod: "POST")
                        if response.status == 409 { continue }  // its first request still in flight
                        guard response.status == 201, response.value("x-key") == key,
                              response.bodyText.hasPrefix("\(key)|\(body)|") else {
                            failures.withLock { $0.append("\(key): \(response.status) \(response.head.prefix(200))") }
                            continue
                        }
                        let replayed = response.value("idempotent-replayed") == "true"
                        if fresh { answered.withLock { $0[c, default: []].append(Int(key.split(separator: "-").last!)!) } }
                        let first = firsts.withLock { seen -> TestClient.Response? in
                            if let first = seen[key] { return first }
                            seen[key] = response
                            return nil
                        }
                        if let first {
                            if !replayed || response.body != first.body || response.value("x-size") != first.value("x-size") {
                                failures.withLock { $0.append("\(key): replay differs (replayed \(replayed))") }
                            }
                        } else if replayed && fresh {
                            failures.withLock { $0.append("\(key): a fresh key was replayed") }
                        }
                    }
                }
            } catch {
                failures.withLock { $0.append("client \(c): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(5))")
        let counts = runs.withLock { $0 }
        #expect(counts.count == clients * rounds / 2)
        #expect(counts.values.allSatisfy { $0 == 1 }, "\(counts.filter { $0.value != 1 })")
    }

    /// An exchange retired while its completion write waits on Redis replies that a relay
    /// withholds is freed when they arrive and then serves another connection's requests:
    /// nothing of the first request (key, body, stored answer) may reach the second, a replay
    /// on the reused exchange must be the key's own answer, a mismatched body on it must still
    /// be refused, and every key must reach the upstream once.
    @Test func anExchangeFreedAfterAStalledCompletionServesTheNextConnectionCleanly() throws {
        let redis = try RedisServer()
        let relay = try FaultRelay(targetPort: redis.port)
        defer { relay.stop() }
        let runs = Mutex<[String: Int]>([:])
        let upstream = TestUpstream { request in
            let key = request.values("idempotency-key").first ?? "-"
            runs.withLock { $0[key, default: 0] += 1 }
            // One key per round answers more than the exchange's kept response buffer.
            let body = Array("\(key)|\(String(decoding: request.body, as: UTF8.self))|".utf8)
                + [UInt8](repeating: UInt8(ascii: "y"), count: key.hasSuffix("big") ? 6000 : 10)
            return .respond(status: 201, headers: [("X-Key", key)], body: body)
        }
        let proxy = try ProxyHarness(upstream: upstream, yaml: """
            store: { backend: redis, redis: { url: "\(relay.url)", key_prefix: "\(StoreKind.uniquePrefix())", command_timeout: 200ms, replay_cache_max_bytes: 1048576 } }
            idempotency: { lease: 3s }

            """, workers: 1)
        defer { proxy.stop() }
        proxy.waitForRedis()
        usleep(100_000)

        let base = "stalled-\(UInt32.random(in: 0...UInt32.max))"
        var answers: [String: String] = [:]  // key → the body its first client received
        for round in 0..<6 {
            let big = "\(base)-\(round)-a-big", second = "\(base)-\(round)-b", third = "\(base)-\(round)-c"
            let first = try proxy.client(timeoutSeconds: 15)
            try first.send(Self.post(big, body: "one\(round)"))
            let bigAnswer = try first.readResponse(requestMethod: "POST")
            #expect(bigAnswer.status == 201 && bigAnswer.value("x-key") == big)
            answers[big] = bigAnswer.bodyText
            // Redis's replies held back: the next claim (and any write) waits, then times out.
            relay.withholdReplies = true
            try first.send(Self.post(second, body: "two\(round)") + Self.post(big, body: "one\(round)"))
            let secondAnswer = try first.readResponse(requestMethod: "POST")
            let bigAgain = try first.readResponse(requestMethod: "POST")
            #expect([201, 409, 503].contains(secondAnswer.status), "\(secondAnswer.status)")
            if secondAnswer.status == 201 {
                #expect(secondAnswer.value("x-key") == second)
                answers[second] = secondAnswer.bodyText
            }
            #expect(bigAgain.status != 201 || bigAgain.bodyText == bigAnswer.bodyText)
            relay.withholdReplies = false
            usleep(300_000)
            // A new connection takes an exchange the first one retired.
            let next = try proxy.client(timeoutSeconds: 15)
            try next.send(Self.post(third, body: "three\(round)") + Self.post(big, body: "one\(round)"))
            let thirdAnswer = try next.readResponse(requestMethod: "POST")
            let bigReplay = try next.readResponse(requestMethod: "POST")
            #expect(thirdAnswer.status == 201 && thirdAnswer.value("x-key") == third
                    && thirdAnswer.bodyText.hasPrefix("\(third)|three\(round)|"), "\(thirdAnswer.status) \(thirdAnswer.head)")
            answers[third] = thirdAnswer.bodyText
            if bigReplay.status == 201 { #expect(bigReplay.bodyText == bigAnswer.bodyText, "\(bigReplay.bodyText.prefix(80))") }
            try next.send(Self.post(third, body: "other"))
            let mismatch = try next.readResponse(requestMethod: "POST")
            #expect(mismatch.status == 422, "\(mismatch.status)")
        }
        usleep(500_000)
        let check = try proxy.client(timeoutSeconds: 15)
        for (key, body) in answers {
            let parts = body.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count > 2 else { Issue.record("\(key): stored body \(body.prefix(100))"); continue }
            try check.send(Self.post(key, body: String(parts[1])))
            let replay = try check.readResponse(requestMethod: "POST")
            #expect(replay.status == 201 && replay.bodyText == body, "\(key): \(replay.status) \(replay.bodyText.prefix(60))")
        }
        #expect(runs.withLock { $0 }.values.allSatisfy { $0 == 1 }, "\(runs.withLock { $0 })")
    }
}
