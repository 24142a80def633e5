import Testing
@testable import Idempotency

/// SPEC §3: fingerprinted and stored header bytes are the exact bytes received; obs-text
/// (RFC 9110 §5.5) is not UTF-8 and must not be decoded into U+FFFD.
@Suite struct ExactBytesTests {
    func fingerprint(contentType: [UInt8], body: [UInt8] = Array("{\"a\":1}".utf8), policy: FingerprintPolicy = FingerprintPolicy()) -> [UInt8] {
        let method = Array("POST".utf8), target = Array("/v1/p".utf8)
        return method.withUnsafeBytes { m in
            target.withUnsafeBytes { t in
                Fingerprinter.fingerprint(
                    method: m, target: t, headers: [(Array("content-type".utf8), contentType[...])], contentType: contentType[...],
                    body: body, policy: policy)
            }
        }
    }

    @Test func obsTextBytesThatDecodeAlikeStillDiffer() {
        // 0xE9 and 0xE8 both decode to U+FFFD as UTF-8.
        let e9 = fingerprint(contentType: Array("text/plain; name=".utf8) + [0xE9])
        let e8 = fingerprint(contentType: Array("text/plain; name=".utf8) + [0xE8])
        #expect(String(decoding: [0xE9], as: UTF8.self) == String(decoding: [0xE8], as: UTF8.self))
        #expect(e9 != e8)
    }

    @Test func jsonCanonicalisationOnlyForJSONMediaTypes() {
        let policy = FingerprintPolicy(body: .json)
        let compact = Array("{\"a\":1,\"b\":2}".utf8), spaced = Array("{ \"b\": 2, \"a\": 1 }".utf8)
        for type in ["application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json", " application/vnd.api+json "] {
            #expect(fingerprint(contentType: Array(type.utf8), body: compact, policy: policy) == fingerprint(contentType: Array(type.utf8), body: spaced, policy: policy), "\(type)")
        }
        for type in ["text/plain", "application/jsonx", "application/x-www-form-urlencoded", "+json", "application/+json"] {
            #expect(fingerprint(contentType: Array(type.utf8), body: compact, policy: policy) != fingerprint(contentType: Array(type.utf8), body: spaced, policy: policy), "\(type)")
        }
    }

    @Test func mediaTypeRecognition() {
        #expect(Fingerprinter.isJSONMediaType(Array("application/json".utf8)[...]))
        #expect(Fingerprinter.isJSONMediaType(Array("application/problem+json;x=1".utf8)[...]))
        #expect(!Fingerprinter.isJSONMediaType(Array("application/json-seq".utf8)[...]))
        #expect(!Fingerprinter.isJSONMediaType(Array("json".utf8)[...]))
        #expect(!Fingerprinter.isJSONMediaType(Array("".utf8)[...]))
    }

    @Test func storedHeaderBytesRoundTripExactly() throws {
        let value: [UInt8] = Array("attachment; filename=".utf8) + [0xE9, 0xFF, 0x80]
        let response = StoredResponse(status: 200, headers: [HeaderPair(name: Array("Content-Disposition".utf8), value: value)], body: [1, 2, 3])
        let record = IdempotencyRecord(
            state: .completed, fingerprint: SHA256Hasher.hash("x"), owner: OwnerToken.random(), leaseDeadlineMillis: 0, response: response)
        let decoded = try RecordCodec.decode(RecordCodec.encode(record))
        #expect(decoded.response?.headers.first?.value.elementsEqual(value) == true)
    }
}
