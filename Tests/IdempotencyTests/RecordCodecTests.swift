import Testing
@testable import Idempotency

private let fingerprint = SHA256Hasher.hash("request")
private let owner: [UInt8] = Array(0x10..<0x20)

private func record(_ state: RecordState, response: StoredResponse? = nil) -> IdempotencyRecord {
    IdempotencyRecord(
        state: state, fingerprint: fingerprint, owner: owner, leaseDeadlineMillis: 0x0102_0304_0506_0708,
        createdAtMillis: 1_796_000_000_123, response: response)
}

private let sampleResponse = StoredResponse(
    status: 201,
    headers: [
        HeaderPair(name: "Content-Type", value: "application/json"),
        HeaderPair(name: "Location", value: "/v1/payments/42"),
        HeaderPair(name: "X-Empty", value: ""),
        HeaderPair(name: "X-Unicode", value: "caf\u{E9} \u{1F600}"),
    ],
    body: bytes(#"{"id":42}"#))

@Suite struct RecordCodecTests {
    static let records: [IdempotencyRecord] = [
        record(.inFlight),
        record(.unknown),
        record(.completed, response: sampleResponse),
        record(.completed, response: StoredResponse(status: 200, headers: [], body: [], bodyOmitted: true)),
        record(.completed, response: StoredResponse(status: 500)),
        record(.completed, response: StoredResponse(
            status: 200, headers: [HeaderPair(name: "X-Long", value: String(repeating: "v", count: 300))],
            body: (0..<20_000).map { UInt8(truncatingIfNeeded: $0) })),
    ]

    @Test(arguments: records)
    func roundTrip(_ r: IdempotencyRecord) throws {
        let encoded = RecordCodec.encode(r)
        #expect(try RecordCodec.decode(encoded) == r)
        let viaPointer = encoded.withUnsafeBytes { try? RecordCodec.decode($0) }
        #expect(viaPointer == r)
    }

    /// What a completion sends (the response section alone) is byte for byte the tail of the
    /// whole record, which the Redis script appends to the stored header.
    @Test(arguments: records.compactMap(\.response))
    func responseSectionIsTheRecordsTail(_ response: StoredResponse) {
        let whole = RecordCodec.encode(record(.completed, response: response))
        #expect(RecordCodec.encodeResponseSection(response) == Array(whole[RecordCodec.Offset.flags...]))
    }

    @Test func everyStateRoundTrips() throws {
        for state in RecordState.allCases {
            let r = record(state, response: state == .completed ? sampleResponse : nil)
            #expect(try RecordCodec.decode(RecordCodec.encode(r)).state == state)
        }
    }

    @Test func fixedHeaderLayout() {
        let encoded = RecordCodec.encode(record(.completed, response: sampleResponse))
        #expect(encoded[RecordCodec.Offset.version] == 2)
        #expect(encoded[RecordCodec.Offset.state] == 2)
        #expect(Array(encoded[2..<34]) == fingerprint)
        #expect(Array(encoded[34..<50]) == owner)
        #expect(Array(encoded[50..<58]) == [1, 2, 3, 4, 5, 6, 7, 8])
        // 1_796_000_000_123 = 0x0000_01A2_29F1_287B
        #expect(Array(encoded[58..<66]) == [0, 0, 0x01, 0xA2, 0x29, 0xF1, 0x28, 0x7B])
        #expect(encoded[66] == RecordCodec.Flag.hasResponse)
        #expect(encoded[67] == 0 && encoded[68] == 201)
        #expect(RecordCodec.encode(record(.inFlight)).count == RecordCodec.headerLength)
        #expect(RecordCodec.headerLength == 69)
    }

    /// Records written before the creation time existed (version 1: flags, status and response
    /// 8 bytes earlier) are still read, with an unknown creation time.
    @Test func versionOneRecordsAreStillRead() throws {
        for original in Self.records {
            let current = RecordCodec.encode(original)
            let versionOne = [1] + current[1..<58] + current[66...]
            var expected = original
            expected.createdAtMillis = 0
            #expect(try RecordCodec.decode(Array(versionOne)) == expected)
        }
        let inFlight = [1] + RecordCodec.encode(record(.inFlight))[1..<58] + [0, 0, 0]
        #expect(throws: RecordCodecError.trailingBytes(1)) { try RecordCodec.decode(Array(inFlight) + [0]) }
        #expect(throws: RecordCodecError.truncated(expected: 61, found: 60)) { try RecordCodec.decode(Array(inFlight.dropLast())) }
    }

    @Test func patchingTheFixedHeaderInPlace() throws {
        // What the Lua scripts do: flip the state byte, rewrite the deadline.
        var encoded = RecordCodec.encode(record(.inFlight))
        encoded[RecordCodec.Offset.state] = RecordState.unknown.rawValue
        let deadline: UInt64 = 1_700_000_123_456
        for i in 0..<8 {
            encoded[RecordCodec.Offset.leaseDeadline + i] = UInt8(truncatingIfNeeded: deadline >> (56 - 8 * UInt64(i)))
        }
        let decoded = try RecordCodec.decode(encoded)
        #expect(decoded.state == .unknown)
        #expect(decoded.leaseDeadlineMillis == deadline)
        #expect(decoded.owner == owner)
    }

    @Test func compactForOneKiBBody() {
        let r = record(.completed, response: StoredResponse(
            status: 200, headers: [HeaderPair(name: "Content-Type", value: "application/json")],
            body: [UInt8](repeating: 0x61, count: 1024)))
        let size = RecordCodec.encode(r).count
        #expect(size == 1126)  // 1.1 KiB
    }

    @Test func everyTruncationIsDetected() {
        let encoded = RecordCodec.encode(record(.completed, response: sampleResponse))
        for length in 0..<encoded.count {
            #expect(throws: RecordCodecError.self) { try RecordCodec.decode(Array(encoded[..<length])) }
        }
        #expect(throws: RecordCodecError.self) { try RecordCodec.decode(encoded + [0]) }
    }

    @Test func corruptHeaders() {
        let valid = RecordCodec.encode(record(.inFlight))
        func mutated(_ offset: Int, _ value: UInt8) -> [UInt8] {
            var copy = valid
            copy[offset] = value
            return copy
        }
        #expect(throws: RecordCodecError.truncated(expected: 69, found: 0)) { try RecordCodec.decode([UInt8]()) }
        #expect(throws: RecordCodecError.unsupportedVersion(3)) { try RecordCodec.decode(mutated(0, 3)) }
        #expect(throws: RecordCodecError.unsupportedVersion(0)) { try RecordCodec.decode(mutated(0, 0)) }
        #expect(throws: RecordCodecError.invalidState(0)) { try RecordCodec.decode(mutated(1, 0)) }
        #expect(throws: RecordCodecError.invalidState(4)) { try RecordCodec.decode(mutated(1, 4)) }
        #expect(throws: RecordCodecError.invalidFlags(0x80)) { try RecordCodec.decode(mutated(66, 0x80)) }
        // "Body omitted" without a response makes no sense.
        #expect(throws: RecordCodecError.invalidFlags(0x02)) { try RecordCodec.decode(mutated(66, 0x02)) }
        #expect(throws: RecordCodecError.trailingBytes(1)) { try RecordCodec.decode(valid + [0]) }
    }

    @Test func corruptResponseSection() {
        let head = Array(RecordCodec.encode(record(.inFlight))[..<66]) + [RecordCodec.Flag.hasResponse, 0, 200]
        // Header count larger than the bytes could hold.
        #expect(throws: RecordCodecError.self) { try RecordCodec.decode(head + [0x7F, 0]) }
        // A name length beyond the end.
        #expect(throws: RecordCodecError.self) { try RecordCodec.decode(head + [1, 50, 0x41, 0, 0]) }
        // An over-long varint.
        #expect(throws: RecordCodecError.self) { try RecordCodec.decode(head + [UInt8](repeating: 0xFF, count: 11)) }
        // Body length shorter and longer than what follows.
        #expect(throws: RecordCodecError.trailingBytes(1)) { try RecordCodec.decode(head + [0, 1, 0x61, 0x62]) }
        #expect(throws: RecordCodecError.self) { try RecordCodec.decode(head + [0, 3, 0x61, 0x62]) }
        #expect((try? RecordCodec.decode(head + [0, 2, 0x61, 0x62]))?.response?.body == bytes("ab"))
    }

    /// A replay writes stored field bytes to clients as they are, so a record whose field
    /// could split the replayed head (CR, LF, NUL in a value; a name that is not a token) is
    /// refused as corrupt, never replayed.
    @Test func fieldsThatCouldSplitAReplayAreRefused() {
        let head = Array(RecordCodec.encode(record(.inFlight))[..<66]) + [RecordCodec.Flag.hasResponse, 0, 200, 1]
        func field(_ name: String, _ value: [UInt8]) -> [UInt8] {
            [UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.count)] + value + [0]
        }
        #expect((try? RecordCodec.decode(head + field("X-A", Array("ok \t caf".utf8) + [0xE9, 0xFF])))?.response?.headers
            == [HeaderPair(name: Array("X-A".utf8), value: Array("ok \t caf".utf8) + [0xE9, 0xFF])])
        for value in ["a\r\nSet-Cookie: x", "a\rb", "a\nb", "a\u{0}b", "a\u{7F}b", "a\u{1B}b"] {
            #expect(throws: RecordCodecError.invalidField(offset: 70), "\(value.debugDescription)") {
                try RecordCodec.decode(head + field("X-A", Array(value.utf8)))
            }
        }
        for name in ["", "X A", "X:A", "X\r\nA", "X\u{E9}"] {
            #expect(throws: RecordCodecError.invalidField(offset: 70), "\(name.debugDescription)") {
                try RecordCodec.decode(head + field(name, Array("v".utf8)))
            }
        }
    }

    @Test func errorsDescribeThemselves() {
        #expect(RecordCodecError.invalidState(9).description.contains("state 9"))
        #expect(RecordCodecError.truncated(expected: 61, found: 3).description.contains("61"))
    }
}
