import Testing
@testable import Idempotency

private func canonical(_ text: String, ignoring pointers: [String] = []) -> String? {
    let paths = pointers.map { try! JSONPointer($0).tokens }
    return Fingerprinter.canonicalJSON(bytes(text), ignoring: paths).map { String(decoding: $0, as: UTF8.self) }
}

struct JSONCase: Sendable, CustomTestStringConvertible {
    let input: String
    let output: String?
    var testDescription: String { input }
}

@Suite struct CanonicalJSONTests {
    static let documents: [JSONCase] = [
        JSONCase(input: #"{ "b" : 2 , "a" : 1 }"#, output: #"{"a":1,"b":2}"#),
        JSONCase(input: " \t\r\n[1, [2, {\"z\": null, \"y\": [true, false]}]] ", output: #"[1,[2,{"y":[true,false],"z":null}]]"#),
        JSONCase(input: #"{"b":{"d":1,"c":2},"a":[]}"#, output: #"{"a":[],"b":{"c":2,"d":1}}"#),
        JSONCase(input: "{}", output: "{}"),
        JSONCase(input: "\"top-level string\"", output: "\"top-level string\""),
        JSONCase(input: "null", output: "null"),
        // Strings: escapes decoded, then re-escaped minimally (RFC 8785 §3.2.2.2).
        JSONCase(input: #""\u0041\/\n\t\b\f\r\"\\""#, output: #""A/\n\t\b\f\r\"\\""#),
        JSONCase(input: #""\u00e9\u00E9é""#, output: "\"\u{E9}\u{E9}\u{E9}\""),
        JSONCase(input: #""\ud83d\ude00""#, output: "\"\u{1F600}\""),
        JSONCase(input: #""\u0001\u001F\u007f""#, output: "\"\\u0001\\u001f\u{7F}\""),
        JSONCase(input: #""\u0000""#, output: #""\u0000""#),
    ]

    @Test(arguments: documents)
    func canonicalForm(_ c: JSONCase) {
        #expect(canonical(c.input) == c.output)
    }

    static let numbers: [JSONCase] = [
        JSONCase(input: "1", output: "1"),
        JSONCase(input: "1.0", output: "1"),
        JSONCase(input: "1.000", output: "1"),
        JSONCase(input: "1E0", output: "1"),
        JSONCase(input: "10e-1", output: "1"),
        JSONCase(input: "0.1E1", output: "1"),
        JSONCase(input: "-0", output: "0"),
        JSONCase(input: "-0.0e5", output: "0"),
        JSONCase(input: "0e-99999", output: "0"),
        JSONCase(input: "0.5", output: "0.5"),
        JSONCase(input: "-1.5e3", output: "-1500"),
        JSONCase(input: "123.4500", output: "123.45"),
        JSONCase(input: "100", output: "100"),
        JSONCase(input: "1e20", output: "100000000000000000000"),
        JSONCase(input: "1e21", output: "1e+21"),
        JSONCase(input: "1E+21", output: "1e+21"),
        JSONCase(input: "0.000001", output: "0.000001"),
        JSONCase(input: "1e-7", output: "1e-7"),
        JSONCase(input: "1.25e-10", output: "1.25e-10"),
        // Exact: IDs beyond 2^53 keep every digit (a double would merge them).
        JSONCase(input: "9007199254740993", output: "9007199254740993"),
        JSONCase(input: "12345678901234567890123", output: "1.2345678901234567890123e+22"),
        JSONCase(input: "1e999999999999999", output: "1e+999999999999999"),
    ]

    @Test(arguments: numbers)
    func numberNormalisation(_ c: JSONCase) {
        #expect(canonical(c.input) == c.output)
        #expect(canonical("[\(c.input)]") == c.output.map { "[\($0)]" })
        // The canonical form is canonical JSON itself.
        if let output = c.output { #expect(canonical(output) == output) }
    }

    @Test func largeIntegersStayDistinct() {
        #expect(canonical("9007199254740992") != canonical("9007199254740993"))
    }

    static let notJSON: [String] = [
        "", "   ", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "[1 2]", "01", "1.", ".5", "+1", "-", "1e", "1e+",
        "0x10", "tru", "nulls", "\"abc", "'a'", "\"\\x\"", "\"\\u12\"", "\"a\u{1}b\"", "\"\\ud800\"", "\"\\udc00\"",
        "\"\\ud800\\u0041\"", "{\"a\":1,\"a\":2}", "{\"a\":1}{}", "[1] x", "\u{FEFF}{}", "1e9999999999999999",
        "NaN", "Infinity",
        // The exponent after normalisation would need 16 digits (1e+1000000000000000, 1e-1000000000000000),
        // so the canonical form would not parse back (found by the canonical-json fuzz target).
        "10e999999999999999", "{\"\":21e999999999999999}", "0.1e-999999999999999",
    ]

    @Test(arguments: notJSON)
    func refusesNonJSON(_ input: String) {
        #expect(canonical(input) == nil)
    }

    @Test func refusesInvalidUTF8() {
        #expect(Fingerprinter.canonicalJSON([0x22, 0xC3, 0x28, 0x22]) == nil)
        #expect(Fingerprinter.canonicalJSON([0x22, 0xED, 0xA0, 0x80, 0x22]) == nil)  // UTF-8-encoded surrogate
        #expect(Fingerprinter.canonicalJSON([0x22, 0xC3, 0xA9, 0x22]) == bytes("\"\u{E9}\""))
    }

    @Test func depthLimit() {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(canonical(ok) == ok)
        #expect(canonical(tooDeep) == nil)
        let objects = String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(canonical(objects) == nil)
    }

    @Test func keysSortByUTF16CodeUnits() {
        // U+1F600 is D83D DE00 in UTF-16, below U+E000; in UTF-8 it would sort after.
        #expect(canonical("{\"\u{E000}\":1,\"\u{1F600}\":2,\"a\":3}") == "{\"a\":3,\"\u{1F600}\":2,\"\u{E000}\":1}")
        #expect(canonical(#"{"b":1,"B":2,"a":3}"#) == #"{"B":2,"a":3,"b":1}"#)
    }

    @Test func canonicallyEquivalentKeysAreDistinct() {
        // "é" precomposed and decomposed are different JSON member names.
        let doc = "{\"\u{E9}\":1,\"e\u{301}\":2}"
        let out = canonical(doc)
        #expect(out != nil)
        #expect(out?.utf8.count == doc.utf8.count)
    }

    @Test func ignorePointers() {
        let doc = #"{"a/b":1,"m~n":2,"meta":{"request_id":"x","keep":true},"items":[{"id":1},{"id":2},{"id":3}],"c":0}"#
        #expect(canonical(doc, ignoring: ["/meta/request_id"])
            == #"{"a/b":1,"c":0,"items":[{"id":1},{"id":2},{"id":3}],"meta":{"keep":true},"m~n":2}"#)
        #expect(canonical(doc, ignoring: ["/a~1b", "/m~0n", "/meta", "/items"]) == #"{"c":0}"#)
        // Pointers resolve against the original document, in any order.
        #expect(canonical(doc, ignoring: ["/items/0", "/items/1", "/a~1b", "/m~0n", "/meta", "/c"]) == #"{"items":[{"id":3}]}"#)
        #expect(canonical(doc, ignoring: ["/items/1", "/items/0", "/a~1b", "/m~0n", "/meta", "/c"]) == #"{"items":[{"id":3}]}"#)
        #expect(canonical(doc, ignoring: ["/items/2/id"]) == canonical(doc.replacingOccurrences(#"{"id":3}"#, "{}")))
        // Pointers that name nothing are no-ops.
        #expect(canonical(doc, ignoring: ["/nope", "/items/-", "/items/01", "/items/9", "/c/x", "/meta/keep/deeper"]) == canonical(doc))
        // Top-level scalars have no members.
        #expect(canonical("5", ignoring: ["/a"]) == "5")
    }

    @Test func pointerSyntax() throws {
        #expect(try JSONPointer("/a~1b/~0/0").tokens == ["a/b", "~", "0"])
        #expect(try JSONPointer("/~01").tokens == ["~1"])  // RFC 6901 §4: not "/"
        #expect(try JSONPointer("/").tokens == [""])
        #expect(try JSONPointer("//x").tokens == ["", "x"])
        #expect(throws: JSONPointer.SyntaxError.self) { try JSONPointer("") }
        #expect(throws: JSONPointer.SyntaxError.self) { try JSONPointer("a") }
        #expect(throws: JSONPointer.SyntaxError.self) { try JSONPointer("/a~") }
        #expect(throws: JSONPointer.SyntaxError.self) { try JSONPointer("/a~2") }
    }

    @Test func emptyKeyPointer() {
        #expect(canonical(#"{"":1,"a":2}"#, ignoring: ["/"]) == #"{"a":2}"#)
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
