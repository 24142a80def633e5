import Testing
@testable import Idempotency

private struct Request {
    var method = "POST"
    var target = "/v1/payments?x=1"
    var headers: [(name: String, value: String)] = [
        ("Host", "api.example"), ("Content-Type", "application/json"), ("X-Trace", "abc"),
    ]
    var body = bytes(#"{"amount":100,"currency":"EUR"}"#)

    func fingerprint(_ policy: FingerprintPolicy = FingerprintPolicy()) -> [UInt8] {
        Fingerprinter.fingerprint(method: method, target: target, headers: headers, body: body, policy: policy)
    }
}

@Suite struct FingerprinterTests {
    @Test func sameInputsSameHash() {
        let a = Request().fingerprint()
        #expect(a.count == 32)
        #expect(a == Request().fingerprint())
    }

    @Test func everyHashedPartMatters() {
        let base = Request().fingerprint()
        var r = Request()
        r.method = "PATCH"
        #expect(r.fingerprint() != base)
        r = Request()
        r.method = "post"  // methods are case-sensitive (RFC 9110 §9.1)
        #expect(r.fingerprint() != base)
        r = Request()
        r.target = "/v1/payments?x=2"
        #expect(r.fingerprint() != base)
        r = Request()
        r.headers[1].value = "application/json; charset=utf-8"
        #expect(r.fingerprint() != base)
        r = Request()
        r.body = bytes(#"{"amount":101,"currency":"EUR"}"#)
        #expect(r.fingerprint() != base)
    }

    @Test func unlistedHeadersDoNotMatter() {
        var r = Request()
        r.headers[2].value = "something else"
        r.headers.append(("Authorization", "Bearer x"))
        #expect(r.fingerprint() == Request().fingerprint())
    }

    @Test func headerNamesMatchCaseInsensitively() {
        var r = Request()
        r.headers[1].name = "content-TYPE"
        #expect(r.fingerprint() == Request().fingerprint())
        #expect(r.fingerprint(FingerprintPolicy(headers: ["CONTENT-type"])) == Request().fingerprint())
    }

    @Test func absentHeaderDiffersFromEmpty() {
        var absent = Request()
        absent.headers.remove(at: 1)
        var empty = Request()
        empty.headers[1].value = ""
        #expect(absent.fingerprint() != empty.fingerprint())
    }

    @Test func repeatedHeaderLinesAreJoined() {
        let policy = FingerprintPolicy(headers: ["Accept"])
        var split = Request()
        split.headers += [("Accept", "a"), ("Accept", "b")]
        var joined = Request()
        joined.headers += [("Accept", "a, b")]
        var reversed = Request()
        reversed.headers += [("Accept", "b"), ("Accept", "a")]
        #expect(split.fingerprint(policy) == joined.fingerprint(policy))
        #expect(split.fingerprint(policy) != reversed.fingerprint(policy))
    }

    @Test func partsCannotMigrate() {
        // Moving bytes between target and body must not collide.
        var a = Request()
        a.target = "/ab"
        a.body = bytes("c")
        var b = Request()
        b.target = "/a"
        b.body = bytes("bc")
        #expect(a.fingerprint() != b.fingerprint())
    }

    @Test func headerOrderFollowsThePolicy() {
        var r = Request()
        r.headers.append(("X-A", "1"))
        r.headers.append(("X-B", "2"))
        var swapped = Request()
        swapped.headers.append(("X-A", "2"))
        swapped.headers.append(("X-B", "1"))
        let policy = FingerprintPolicy(headers: ["X-A", "X-B"])
        #expect(r.fingerprint(policy) != swapped.fingerprint(policy))
    }

    @Test func jsonModeIgnoresKeyOrderAndWhitespace() {
        var a = Request()
        a.body = bytes(#"{"a":1,"b":2}"#)
        var b = Request()
        b.body = bytes("{ \"b\":2,\n \"a\":1 }")
        #expect(a.fingerprint(FingerprintPolicy(body: .json)) == b.fingerprint(FingerprintPolicy(body: .json)))
        #expect(a.fingerprint(FingerprintPolicy(body: .raw)) != b.fingerprint(FingerprintPolicy(body: .raw)))
    }

    @Test func ignoreFieldsDropsMembers() {
        let policy = FingerprintPolicy(body: .json, ignoreFields: ["/meta/request_id"])
        var a = Request()
        a.body = bytes(#"{"amount":5,"meta":{"request_id":"r-1","source":"web"}}"#)
        var b = Request()
        b.body = bytes(#"{"meta":{"source":"web","request_id":"r-2"},"amount":5}"#)
        #expect(a.fingerprint(policy) == b.fingerprint(policy))
        // Without the pointer the two differ, and other members still count.
        #expect(a.fingerprint(FingerprintPolicy(body: .json)) != b.fingerprint(FingerprintPolicy(body: .json)))
        var c = b
        c.body = bytes(#"{"meta":{"source":"app","request_id":"r-2"},"amount":5}"#)
        #expect(c.fingerprint(policy) != b.fingerprint(policy))
    }

    @Test func invalidJSONFallsBackToRawBytes() {
        let policy = FingerprintPolicy(body: .json)
        var a = Request()
        a.body = bytes("{not json")
        #expect(a.fingerprint(policy) == a.fingerprint(policy))
        #expect(a.fingerprint(policy) == a.fingerprint(FingerprintPolicy(body: .raw)))
        var b = a
        b.body = bytes("{not json ")
        #expect(a.fingerprint(policy) != b.fingerprint(policy))
        // Duplicate keys are "not JSON" too.
        var dup = Request()
        dup.body = bytes(#"{"a":1,"a":2}"#)
        #expect(dup.fingerprint(policy) == dup.fingerprint(FingerprintPolicy(body: .raw)))
    }

    @Test func canonicalJSONNeverEqualsARawFallback() {
        // A canonical document and a raw body with the same bytes are
        // tagged differently in the hash input.
        let policy = FingerprintPolicy(body: .json)
        var json = Request()
        json.body = bytes(#"{"a":1}"#)
        #expect(json.fingerprint(policy) != json.fingerprint(FingerprintPolicy(body: .raw)))
    }

    @Test func policyValidation() {
        #expect(throws: Never.self) { try FingerprintPolicy(ignoreFields: ["/a", "/b~1c"]).validate() }
        #expect(throws: JSONPointer.SyntaxError.self) { try FingerprintPolicy(ignoreFields: ["a"]).validate() }
        #expect(throws: JSONPointer.SyntaxError.self) { try FingerprintPolicy(ignoreFields: ["/a~2"]).validate() }
    }
}
