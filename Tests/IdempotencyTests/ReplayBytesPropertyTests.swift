import HTTP1
import TestRandom
import Testing
@testable import Idempotency

/// A stored response's replay bytes against the response writer the proxy uses for every
/// response it generates (`HeadWriter.writeResponse` with the stored fields, Idempotent-Replayed
/// and the connection's field): seeded random statuses, fields and bodies, every replay form,
/// and the round trip through the Redis record codec.
@Suite struct ReplayBytesPropertyTests {
    static func written(_ status: Int, _ headers: [HeaderPair], _ body: [UInt8], close: Bool, acknowledge: Bool) -> [UInt8] {
        var out: [UInt8] = []
        let extra: [(name: String, value: String)] = acknowledge
            ? [("Idempotent-Replayed", "true"), ("Connection", "keep-alive")] : [("Idempotent-Replayed", "true")]
        body.withUnsafeBytes { b in
            HeadWriter.writeResponse(status: status, extra: extra, body: b, close: close, into: &out) { out in
                for f in headers { HeadWriter.appendField(name: f.name, value: f.value, into: &out) }
            }
        }
        return out
    }

    static func lines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n").sorted()
    }

    @Test func everyFormIsWhatTheResponseWriterWrites() throws {
        var random = SeededRandom(state: 42)
        let statuses = [100, 103, 199, 200, 201, 202, 204, 205, 206, 301, 304, 400, 404, 409, 500, 503, 599, 600, 999]
        let valueBytes: [UInt8] = [0x09] + Array(0x20...0x7E) + Array(0x80...0xFF)
        for round in 0..<3000 {
            let status = random.pick(statuses)
            var headers: [HeaderPair] = []
            for _ in 0..<random.below(6) {
                let name = Array("X-\(random.below(1000))".utf8)
                var value = (0..<random.below(12)).map { _ in random.pick(valueBytes) }
                if random.chance(20) { value = [] }
                headers.append(HeaderPair(name: name, value: value))
            }
            let body = (0..<[0, 1, 5, 300].randomElement(using: &random)!).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let response = StoredResponse(status: status, headers: headers, body: body)
            #expect(response.headers == headers, "round \(round)")
            #expect(response.body == body, "round \(round)")
            #expect(response.status == status)
            #expect(Array(response.keepAliveReplay) == Self.written(status, headers, body, close: false, acknowledge: false), "round \(round) status \(status)")
            var closing: [UInt8] = []
            response.writeReplay(connectionField: "Connection: close", into: &closing)
            #expect(closing == Self.written(status, headers, body, close: true, acknowledge: false), "round \(round) status \(status)")
            var acknowledged: [UInt8] = []
            response.writeReplay(connectionField: "Connection: keep-alive", into: &acknowledged)
            // The same lines, Connection after Content-Length (field order carries no meaning here).
            let expected = Self.written(status, headers, body, close: false, acknowledge: true)
            #expect(acknowledged.count == expected.count && Self.lines(acknowledged) == Self.lines(expected), "round \(round) status \(status)")

            // Through the Redis codec: same record, same replay.
            let record = IdempotencyRecord(state: .completed, fingerprint: Array(repeating: 1, count: 32), owner: Array(repeating: 2, count: 16),
                                           leaseDeadlineMillis: 0, createdAtMillis: 5, response: response)
            let decoded = try RecordCodec.decode(RecordCodec.encode(record))
            #expect(decoded == record, "round \(round)")
            #expect(decoded.response.map { Array($0.keepAliveReplay) } == Array(response.keepAliveReplay))
            #expect(decoded.response?.storedBytes ?? 0 >= response.keepAliveReplay.count)
        }
    }

    @Test func settersKeepEveryOtherPart() {
        var response = StoredResponse(status: 204, headers: [HeaderPair(name: "A", value: " 1 ")], body: Array("late".utf8))
        response.status = 200
        #expect(response.body == Array("late".utf8))
        #expect(String(decoding: response.keepAliveReplay, as: UTF8.self).hasSuffix("Content-Length: 4\r\n\r\nlate"))
        response.status = 304
        #expect(!String(decoding: response.keepAliveReplay, as: UTF8.self).contains("late"))
        response.headers = []
        #expect(response.fieldCount == 0 && response.body == Array("late".utf8) && response.status == 304)
        response.body = []
        #expect(response.bodyCount == 0)
        var omitted = StoredResponse(status: 200, headers: [], body: [1])
        omitted.bodyOmitted = true
        #expect(omitted != StoredResponse(status: 200, headers: [], body: [1]))
    }
}
