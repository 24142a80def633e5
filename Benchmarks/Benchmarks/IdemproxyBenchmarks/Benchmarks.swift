import Foundation
import Benchmark
import HTTP1
import Idempotency

// Micro-benchmarks of the per-request hot paths. Each sample runs 1000 operations
// (`scalingFactor: .kilo`), and the figures are reported per operation. CPU time is not among
// the metrics: it is read with 10 ms granularity, longer than a whole sample.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1000)

    // 1. The request head of a typical guarded POST, parsed into a head reused across
    // requests as a connection does.
    Benchmark("RequestHeadParser.parse (POST, 8 fields)") { benchmark in
        let limits = HTTPParserLimits()
        var head = RequestHead()
        Fixtures.requestHead.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations {
                blackHole(try! RequestHeadParser.parse(bytes, into: &head, limits: limits))
            }
        }
        precondition(head.fields.count == 8)
    }

    // 2. The Idempotency-Key field value, in both accepted forms, as a slice of the field line
    // (the proxy hands over slices of the request head).
    for (form, value) in [("sf-string", #""8e03978e-40d5-43e8-bc93-6894a57f9324""#), ("bare", "8e03978e-40d5-43e8-bc93-6894a57f9324")] {
        let line = Array("Idempotency-Key: \(value)\r\n".utf8)
        let fieldValues = [line[17..<(line.count - 2)]]
        Benchmark("IdempotencyKeyParser.parse (\(form))") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(IdempotencyKeyParser.parse(fieldValues: fieldValues, syntax: .lenient, maxLength: 255))
            }
        }
    }

    // 3. The request fingerprint: method, path, Content-Type and a 200-byte JSON body.
    for mode in [FingerprintBodyMode.raw, .json] {
        let policy = FingerprintPolicy(body: mode)
        Benchmark("Fingerprinter.fingerprint (\(mode.rawValue) body)") { benchmark in
            let headers = [(name: Array("content-type".utf8), value: Fixtures.contentType)]
            Fixtures.method.withUnsafeBytes { method in
                Fixtures.target.withUnsafeBytes { target in
                    for _ in benchmark.scaledIterations {
                        blackHole(Fingerprinter.fingerprint(
                            method: method, target: target, headers: headers, contentType: Fixtures.contentType,
                            body: Fixtures.jsonBody, policy: policy))
                    }
                }
            }
        }
    }

    // 4. A completed record (3 headers, 1 KiB body), as written to and read from Redis.
    Benchmark("RecordCodec.encode (3 headers, 1 KiB body)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(RecordCodec.encode(Fixtures.record))
        }
    }
    Benchmark("RecordCodec.decode (3 headers, 1 KiB body)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! RecordCodec.decode(Fixtures.encodedRecord))
        }
    }

    // 5. A replay as ClientConnection.writeReplay writes it to a keep-alive HTTP/1.1 client: the
    // stored response is its replay's bytes, copied into an output buffer that keeps its
    // capacity between responses (OutputBuffer.reset); and the form that names the connection.
    Benchmark("Replay write (keep-alive, 3 headers, 1 KiB body)") { benchmark in
        let response = Fixtures.decodedRecord.response!
        var out: [UInt8] = []
        for _ in benchmark.scaledIterations {
            out.removeAll(keepingCapacity: true)
            out.append(contentsOf: response.keepAliveReplay)
            blackHole(out)
        }
    }
    Benchmark("Replay write (Connection: close, 3 headers, 1 KiB body)") { benchmark in
        let response = Fixtures.decodedRecord.response!
        var out: [UInt8] = []
        for _ in benchmark.scaledIterations {
            out.removeAll(keepingCapacity: true)
            response.writeReplay(connectionField: "Connection: close", into: &out)
            blackHole(out)
        }
    }

    // 6. One unique key through the memory store as the proxy drives it: claim, complete, then a
    // retry's claim that finds the completed record (the replay lookup), then purge, which
    // stands in for the TTL expiry that removes records at the rate they are made.
    let store = MemoryStore()
    Benchmark("MemoryStore claim → complete → replay claim → purge") { benchmark in
        let response = Fixtures.record.response!
        for index in benchmark.scaledIterations {
            let key = Fixtures.storageKeys[index]
            store.claim(
                key: key, owner: Fixtures.owner, fingerprint: Fixtures.fingerprint, lease: .seconds(30), ttl: .seconds(86400),
                expiredLease: .hold
            ) { precondition($0 == .success(.claimed)) }
            store.complete(key: key, owner: Fixtures.owner, response: response, ttl: .seconds(86400)) {
                precondition($0 == .success(true))
            }
            store.claim(
                key: key, owner: Fixtures.owner, fingerprint: Fixtures.fingerprint, lease: .seconds(30), ttl: .seconds(86400),
                expiredLease: .hold
            ) { result in
                guard case .success(let outcome) = result,
                      case .replay = OutcomePolicy.decide(outcome, fingerprint: Fixtures.fingerprint) else {
                    preconditionFailure("no replay: \(result)")
                }
            }
            store.purge(key: key) { precondition($0 == .success(true)) }
        }
    }

    // 7. A replay served from memory the way the proxy does it: the record looked up in the
    // Redis store's replay cache (the memory store's lookup is in 6) and its bytes copied into
    // the output buffer.
    let cache = ReplayCache(maxBytes: 64 << 20)
    cache.insert(Fixtures.storageKeys[0], record: Fixtures.decodedRecord, remainingMillis: 3_600_000, nowMillis: 0)
    Benchmark("Replay from memory: ReplayCache.lookup + replay bytes") { benchmark in
        var out: [UInt8] = []
        for _ in benchmark.scaledIterations {
            out.removeAll(keepingCapacity: true)
            guard let response = cache.lookup(Fixtures.storageKeys[0], nowMillis: 1)?.response else { preconditionFailure("not cached") }
            out.append(contentsOf: response.keepAliveReplay)
            blackHole(out)
        }
    }

    // 8. One unique-key exchange in process, everything the proxy does but the sockets: parse
    // the head, find the key, scope and Content-Type lines, parse the key, derive the storage
    // key, fingerprint method, target, Content-Type and body, claim, keep the upstream's
    // response (the replay filter writing the kept field lines out of its head), complete, then the retry: claim again, find the
    // completed record and write the replay. Each iteration's request carries its own key; the
    // sample's records are purged afterwards (TTL expiry removes them at the rate they come).
    let exchangeStore = MemoryStore()
    let policy = FingerprintPolicy()
    Benchmark("Unique-key exchange in process (memory store)") { benchmark in
        let limits = HTTPParserLimits()
        var head = RequestHead()
        var out: [UInt8] = []
        var storedFieldLines: [UInt8] = []  // the proxy keeps one per exchange
        let upstream = Fixtures.upstreamResponse
        var keys: [String] = []
        keys.reserveCapacity(benchmark.scaledIterations.count)
        for index in benchmark.scaledIterations {
            Fixtures.uniqueRequestHeads[index].withUnsafeBytes { bytes in
                _ = try! RequestHeadParser.parse(bytes, into: &head, limits: limits)
                let fields = HeadFields(head: head, bytes: bytes)
                let keyValue = fields.first(named: Fixtures.keyField)!
                let key = try! IdempotencyKeyParser.parse(fieldValue: keyValue, lineCount: 1, syntax: .lenient, maxLength: 255).get()
                let storageKey = StorageKey.make(prefix: "idem:", scope: fields.first(named: Fixtures.scopeField), key: key)
                var fingerprint: [UInt8] = []  // a new array each time, as for a key the proxy stores
                Fingerprinter.fingerprint(
                    method: UnsafeRawBufferPointer(rebasing: bytes[head.methodRange]), target: UnsafeRawBufferPointer(rebasing: bytes[head.target]),
                    fields: fields, contentType: fields.first(named: Fixtures.contentTypeField), body: Fixtures.jsonBody, policy: policy,
                    into: &fingerprint)
                exchangeStore.claim(
                    key: storageKey, owner: Fixtures.owner, fingerprint: fingerprint, lease: .seconds(30), ttl: .seconds(86400), expiredLease: .hold
                ) { precondition($0 == .success(.claimed)) }
                storedFieldLines.removeAll(keepingCapacity: true)
                upstream.head.withUnsafeBytes { source in
                    ReplayFilter.appendStoredFieldLines(
                        count: upstream.fields.count, in: source, keepHeaders: [], isHopByHop: { upstream.hopByHop[$0] },
                        field: { upstream.fields[$0] }, into: &storedFieldLines)
                }
                let stored = storedFieldLines.withUnsafeBytes { lines in
                    Fixtures.responseBody.withUnsafeBytes { StoredResponse(status: 201, fieldLines: lines, body: $0) }
                }
                exchangeStore.complete(key: storageKey, owner: Fixtures.owner, response: stored, ttl: .seconds(86400)) {
                    precondition($0 == .success(true))
                }
                exchangeStore.claim(
                    key: storageKey, owner: Fixtures.owner, fingerprint: fingerprint, lease: .seconds(30), ttl: .seconds(86400), expiredLease: .hold
                ) { result in
                    guard case .success(.existing(let record)) = result, let response = record.response else { preconditionFailure("no replay") }
                    out.removeAll(keepingCapacity: true)
                    out.append(contentsOf: response.keepAliveReplay)
                }
                keys.append(storageKey)
            }
            blackHole(out)
        }
        benchmark.stopMeasurement()
        for key in keys { exchangeStore.purge(key: key) { _ in } }
    }
}

/// The fields of a parsed head, read in place (as the proxy's guarded intake does).
struct HeadFields: FingerprintFields {
    let head: RequestHead
    let bytes: UnsafeRawBufferPointer

    func first(named lowercasedName: [UInt8]) -> UnsafeRawBufferPointer? {
        var found: UnsafeRawBufferPointer?
        forEachValue(named: lowercasedName) { if found == nil { found = $0 } }
        return found
    }

    func forEachValue(named lowercasedName: [UInt8], _ body: (UnsafeRawBufferPointer) -> Void) {
        head.forEachValue(ofField: lowercasedName, in: bytes) { body(UnsafeRawBufferPointer(rebasing: bytes[$0])) }
    }
}

enum Fixtures {
    static let requestHead = Array(([
        "POST /v1/payments?expand=charges HTTP/1.1",
        "Host: api.example.com",
        "User-Agent: shop-backend/4.2 (payments-client)",
        "Accept: application/json",
        "Content-Type: application/json",
        "Content-Length: 200",
        "Authorization: Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "Idempotency-Key: \"8e03978e-40d5-43e8-bc93-6894a57f9324\"",
        "X-Request-Id: 5f0c2a9e-7d5b-4c1e-9d8a-3b6f1e2c4a70",
    ].joined(separator: "\r\n") + "\r\n\r\n").utf8)

    /// The same request with a key of its own per iteration (one sample's worth).
    static let uniqueRequestHeads: [[UInt8]] = (0..<1000).map { index in
        let text = String(decoding: requestHead, as: UTF8.self)
            .replacingOccurrences(of: "8e03978e-40d5-43e8-bc93-6894a57f9324", with: "8e03978e-40d5-43e8-bc93-\(String(format: "%012d", index))")
        return Array(text.utf8)
    }

    /// The origin's response head, its fields' name and value ranges and their hop-by-hop
    /// flags, as the response parser reports them (what the proxy filters and copies the
    /// stored fields from).
    static let upstreamResponse: (head: [UInt8], fields: [(name: Range<Int>, value: Range<Int>)], hopByHop: [Bool]) = {
        var head: [UInt8] = []
        var fields: [(name: Range<Int>, value: Range<Int>)] = []
        var hopByHop: [Bool] = []
        head.append(contentsOf: "HTTP/1.1 201 Created\r\n".utf8)
        for (name, value) in [("Server", "nginx"), ("Date", "Tue, 01 Dec 2026 05:00:00 GMT"), ("Content-Type", "application/json"), ("Content-Length", "150"), ("Connection", "keep-alive")] {
            let nameStart = head.count
            head.append(contentsOf: name.utf8)
            let nameEnd = head.count
            head.append(contentsOf: ": ".utf8)
            let valueStart = head.count
            head.append(contentsOf: value.utf8)
            fields.append((nameStart..<nameEnd, valueStart..<head.count))
            hopByHop.append(name == "Content-Length" || name == "Connection")
            head.append(contentsOf: "\r\n".utf8)
        }
        head.append(contentsOf: "\r\n".utf8)
        return (head, fields, hopByHop)
    }()

    static let responseBody = Array(#"{"id":"pay_8e03978e40d5","object":"payment","amount":2599,"currency":"eur","status":"succeeded","created":1764400000,"livemode":false,"metadata":{}}"#.utf8)

    static let keyField = Array("idempotency-key".utf8)
    static let scopeField = Array("authorization".utf8)
    static let contentTypeField = Array("content-type".utf8)

    static let method = Array("POST".utf8)
    static let target = Array("/v1/payments?expand=charges".utf8)
    static let contentType = Array("application/json".utf8)[...]

    /// 200 bytes of JSON: an object with nested members, strings and numbers.
    static let jsonBody: [UInt8] = {
        let body = Array(#"""
        {"amount":12500,"currency":"eur","customer":"cus_9s6XKzkNRiz8i3","description":"Order #104420",\#
        "metadata":{"order_id":"10442","channel":"mobile"},"capture":true,"payment_method":"pm_1OXq2c2eZvKYlo2C"}
        """#.utf8)
        precondition(body.count == 200, "body is \(body.count) bytes")
        return body
    }()

    static let fingerprint = [UInt8](repeating: 0xA5, count: 32)
    static let owner = [UInt8](repeating: 0x5A, count: 16)

    static let record = IdempotencyRecord(
        state: .completed, fingerprint: fingerprint, owner: owner, leaseDeadlineMillis: 1_000_000,
        createdAtMillis: 1_767_225_600_000,
        response: StoredResponse(
            status: 201,
            headers: ReplayFilter.headersToStore(responseHeaders: [
                HeaderPair(name: "Content-Type", value: "application/json"),
                HeaderPair(name: "Location", value: "/v1/payments/pay_3MtwBwLkdIwHu7ix28a3tqPa"),
                HeaderPair(name: "X-Request-Id", value: "5f0c2a9e-7d5b-4c1e-9d8a-3b6f1e2c4a70"),
            ], keepHeaders: []),
            body: (0..<1024).map { UInt8(ascii: "a") + UInt8($0 % 26) }))
    static let encodedRecord = RecordCodec.encode(record)
    static let decodedRecord = try! RecordCodec.decode(encodedRecord)

    /// One sample's keys, derived as the proxy does (prefix, SHA-256 hex digest in a hash tag).
    /// Each is unique within a sample, and purged before the next sample uses it again.
    static let storageKeys = (0..<1000).map { Idempotency.storageKey(prefix: "idem:", scope: nil, key: "bench-\($0)") }
}
