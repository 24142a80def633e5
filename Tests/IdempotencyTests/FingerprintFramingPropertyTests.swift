import TestRandom
import Testing
@testable import Idempotency

/// `FramedHasher` stages small parts before OpenSSL sees them; storage keys and fingerprints
/// must still be SHA-256 of exactly the framing `Fingerprinter` and `StorageKey` document.
/// Thousands of seeded random requests (policy headers listed or not, repeated and joined
/// field lines, obs-text, empty values, raw and JSON bodies of 0 to 1000 bytes) are hashed by
/// the library and by an independent re-implementation of the framing over `SHA256Hasher`.
@Suite struct FingerprintFramingPropertyTests {
    typealias Random = SeededRandom

    /// The documented stream: fields as an 8-byte big-endian length and the bytes, tags as one byte.
    struct Stream {
        var bytes: [UInt8] = []
        mutating func length(_ n: Int) { withUnsafeBytes(of: UInt64(n).bigEndian) { bytes.append(contentsOf: $0) } }
        mutating func field(_ part: [UInt8]) { length(part.count); bytes.append(contentsOf: part) }
        mutating func tag(_ tag: UInt8) { bytes.append(tag) }
    }

    static func lower(_ bytes: [UInt8]) -> [UInt8] { bytes.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 } }

    /// The fingerprint as `Fingerprinter`'s documentation describes it, given the body's
    /// contribution (tag and bytes).
    static func expectedFingerprint(
        method: [UInt8], target: [UInt8], headers: [(name: [UInt8], value: [UInt8])], policyHeaders: [String], bodyTag: UInt8, bodyBytes: [UInt8]
    ) -> [UInt8] {
        var s = Stream()
        s.field(Array("idemproxy/fingerprint/v1".utf8))
        s.field(method)
        s.field(target)
        s.length(policyHeaders.count)
        for name in policyHeaders {
            let lowered = lower(Array(name.utf8))
            s.field(lowered)
            let values = headers.filter { lower($0.name) == lowered }.map(\.value)
            if values.isEmpty {
                s.tag(0)
            } else {
                s.tag(1)
                var joined: [UInt8] = []
                for (index, value) in values.enumerated() {
                    if index > 0 { joined += Array(", ".utf8) }
                    joined += value
                }
                s.field(joined)
            }
        }
        s.tag(bodyTag)
        s.field(bodyBytes)
        return SHA256Hasher.hash(s.bytes)
    }

    static let names = ["Content-Type", "X-Tenant", "Accept", "X-Empty", "X-Many", "X-Long", "Authorization", "Idempotency-Key"]

    static func randomCase(_ name: String, _ r: inout Random) -> [UInt8] {
        Array(name.utf8).map { byte in
            guard (65...90).contains(byte) || (97...122).contains(byte), r.chance(50) else { return byte }
            return byte ^ 0x20
        }
    }

    /// A field value: visible ASCII, inner spaces, obs-text; sometimes empty, sometimes long
    /// enough to cross the hasher's 128-byte stage.
    static func randomValue(_ r: inout Random) -> [UInt8] {
        let length = r.chance(10) ? 0 : (r.chance(15) ? 100 + r.below(300) : 1 + r.below(40))
        return (0..<length).map { index in
            if r.chance(10) { return UInt8(0x80 + r.below(0x80)) }
            let byte = UInt8(0x21 + r.below(0x5E))
            return index > 0 && index < length - 1 && r.chance(10) ? 0x20 : byte
        }
    }

    struct JSONCase { var rendered: [UInt8]; var canonical: [UInt8] }

    /// A JSON object whose canonical form is known by construction: ASCII keys sorted, no
    /// whitespace, integers and plain strings; rendered with shuffled members and whitespace.
    /// A member "drop" is left out of the canonical form (`ignore_fields: [/drop]`).
    static func randomJSON(_ r: inout Random, depth: Int = 0, topLevel: Bool = true) -> JSONCase {
        // An array, not a Set: a Set's order changes from run to run, and with it the cases.
        var keys: [String] = []
        let count = r.below(depth > 1 ? 3 : 8)
        while keys.count < count {
            let key = String((0..<(1 + r.below(6))).map { _ in Character(Unicode.Scalar(UInt8(97 + r.below(26)))) })
            if !keys.contains(key) { keys.append(key) }
        }
        if topLevel && r.chance(40) && !keys.contains("drop") { keys.append("drop") }
        var members: [(key: String, value: JSONCase)] = []
        for key in keys {
            let value: JSONCase
            switch r.below(depth > 1 ? 4 : 6) {
            case 0:
                let n = Int(r.below(2_000_000)) - 1_000_000
                value = JSONCase(rendered: Array(String(n).utf8), canonical: Array(String(n).utf8))
            case 1:
                let text = "\"" + String((0..<r.below(20)).map { _ in r.pick(Array("abcXYZ019 _-.")) }) + "\""
                value = JSONCase(rendered: Array(text.utf8), canonical: Array(text.utf8))
            case 2:
                let word = r.pick(["true", "false", "null"])
                value = JSONCase(rendered: Array(word.utf8), canonical: Array(word.utf8))
            case 3:
                value = JSONCase(rendered: Array("[ ]".utf8), canonical: Array("[]".utf8))
            default:
                value = randomJSON(&r, depth: depth + 1, topLevel: false)
            }
            members.append((key, value))
        }
        let sorted = members.filter { !(topLevel && $0.key == "drop") }.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        var canonical = Array("{".utf8)
        for (index, member) in sorted.enumerated() {
            if index > 0 { canonical.append(UInt8(ascii: ",")) }
            canonical += Array("\"\(member.key)\":".utf8) + member.value.canonical
        }
        canonical.append(UInt8(ascii: "}"))
        var shuffled = members
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) { shuffled.swapAt(i, r.below(i + 1)) }
        let spaces: [[UInt8]] = [[], [0x20], [0x0A], [0x09, 0x20], [0x0D, 0x0A]]
        var rendered = r.pick(spaces) + Array("{".utf8)
        for (index, member) in shuffled.enumerated() {
            if index > 0 { rendered += r.pick(spaces) + Array(",".utf8) }
            rendered += r.pick(spaces) + Array("\"\(member.key)\"".utf8) + r.pick(spaces) + Array(":".utf8) + r.pick(spaces) + member.value.rendered
        }
        rendered += r.pick(spaces) + Array("}".utf8) + r.pick(spaces)
        return JSONCase(rendered: rendered, canonical: canonical)
    }

    static func isJSON(_ contentType: [UInt8]?) -> Bool {
        guard let contentType else { return false }
        var mediaType = Array(lower(contentType).prefix { $0 != UInt8(ascii: ";") })
        while let f = mediaType.first, f == 0x20 || f == 0x09 { mediaType.removeFirst() }
        while let l = mediaType.last, l == 0x20 || l == 0x09 { mediaType.removeLast() }
        let text = String(decoding: mediaType, as: UTF8.self)
        return text == "application/json" || (text.hasSuffix("+json") && text.contains("/") && !text.hasPrefix("/"))
    }

    /// A `FingerprintFields` over a plain list, as a head would give them.
    struct ListFields: FingerprintFields {
        let headers: [(name: [UInt8], value: [UInt8])]
        func forEachValue(named lowercasedName: [UInt8], _ body: (UnsafeRawBufferPointer) -> Void) {
            for header in headers where FingerprintFramingPropertyTests.lower(header.name) == lowercasedName {
                header.value.withUnsafeBytes(body)
            }
        }
    }

    @Test(arguments: 0..<6)
    func fingerprintsAreTheDocumentedFraming(seed: Int) {
        var r = Random(state: UInt64(seed) &* 0x1234_5678_9ABC_DEF1 &+ 42)
        for round in 0..<250 {
            // The policy.
            var policyHeaders: [String] = []
            var pool = Self.names.shuffledDeterministically(&r)
            for _ in 0..<r.below(6) where !pool.isEmpty {
                let name = pool.removeLast()
                policyHeaders.append(String(decoding: Self.randomCase(name, &r), as: UTF8.self))
            }
            let jsonMode = r.chance(50)
            let policy = FingerprintPolicy(headers: policyHeaders, body: jsonMode ? .json : .raw, ignoreFields: jsonMode ? ["/drop"] : [])

            // The request.
            let method = Array(r.pick(["POST", "PATCH", "PUT", "DELETE", "post", "X-CUSTOM"]).utf8)
            var target = Array("/".utf8) + Self.randomValue(&r).filter { $0 < 0x80 }
            if r.chance(5) { target = Array(repeating: UInt8(ascii: "a"), count: 150 + r.below(200)) }
            var headers: [(name: [UInt8], value: [UInt8])] = []
            for _ in 0..<r.below(12) { headers.append((Self.randomCase(r.pick(Self.names), &r), Self.randomValue(&r))) }
            if r.chance(30) { for _ in 0..<(2 + r.below(20)) { headers.append((Self.randomCase("X-Many", &r), Self.randomValue(&r))) } }
            if r.chance(20) { headers.append((Array("X-Empty".utf8), [])) }
            let contentTypes = ["application/json", "Application/JSON ; charset=utf-8", "application/problem+json", "text/plain", "application/jsonx"]
            let hasContentType = r.chance(80)
            if hasContentType { headers.insert((Self.randomCase("Content-Type", &r), Array(r.pick(contentTypes).utf8)), at: r.below(headers.count + 1)) }
            let contentType = headers.first { Self.lower($0.name) == Array("content-type".utf8) }?.value

            var body: [UInt8]
            var canonical: [UInt8]? = nil
            if jsonMode && r.chance(70) {
                let json = Self.randomJSON(&r)
                body = json.rendered
                canonical = json.canonical
                if r.chance(10) { body.append(UInt8(ascii: "}")); canonical = nil }  // not JSON: hashed raw
            } else {
                let length = round % 4 == 0 ? r.below(1001) : r.below(200)
                body = (0..<length).map { _ in UInt8(truncatingIfNeeded: r.next()) }
                // Random bytes could spell JSON ("7"): in json mode, make sure they do not.
                if jsonMode { body.insert(0xFF, at: 0) }
            }
            let useJSON = jsonMode && canonical != nil && Self.isJSON(contentType)
            let expected = Self.expectedFingerprint(
                method: method, target: target, headers: headers, policyHeaders: policyHeaders,
                bodyTag: useJSON ? UInt8(ascii: "J") : UInt8(ascii: "R"), bodyBytes: useJSON ? canonical! : body)

            let viaList = method.withUnsafeBytes { m in
                target.withUnsafeBytes { t in
                    Fingerprinter.fingerprint(
                        method: m, target: t, headers: headers.map { ($0.name, $0.value[...]) }, contentType: contentType.map { $0[...] },
                        body: body, policy: policy)
                }
            }
            #expect(viaList == expected, "seed \(seed) round \(round): policy \(policyHeaders) json \(jsonMode) body \(body.count) bytes")

            // The in-place form, into a buffer holding an older digest (a reused exchange's).
            var digest: [UInt8] = (0..<r.below(64)).map { UInt8($0) }
            method.withUnsafeBytes { m in
                target.withUnsafeBytes { t in
                    let fields = ListFields(headers: headers)
                    if let contentType {
                        contentType.withUnsafeBytes { ct in
                            Fingerprinter.fingerprint(method: m, target: t, fields: fields, contentType: ct, body: body, policy: policy, into: &digest)
                        }
                    } else {
                        Fingerprinter.fingerprint(method: m, target: t, fields: fields, contentType: nil, body: body, policy: policy, into: &digest)
                    }
                }
            }
            #expect(digest == expected, "seed \(seed) round \(round): in-place form")
        }
    }

    /// The text convenience form agrees with the byte form (for UTF-8 text).
    @Test func textFormAgrees() {
        var r = Random(state: 7)
        for _ in 0..<200 {
            let policy = FingerprintPolicy(headers: ["X-A", "content-type"], body: .raw)
            let headers = (0..<r.below(6)).map { _ in (name: r.pick(["x-a", "X-A", "Content-Type", "X-B"]), value: String(repeating: r.pick(["v", "é", " w"]), count: r.below(70))) }
            let body = (0..<r.below(400)).map { _ in UInt8(truncatingIfNeeded: r.next()) }
            let text = Fingerprinter.fingerprint(method: "POST", target: "/t", headers: headers, body: body, policy: policy)
            let expected = Self.expectedFingerprint(
                method: Array("POST".utf8), target: Array("/t".utf8), headers: headers.map { (Array($0.name.utf8), Array($0.value.utf8)) },
                policyHeaders: ["X-A", "content-type"], bodyTag: UInt8(ascii: "R"), bodyBytes: body)
            #expect(text == expected)
        }
    }

    /// Storage keys: `prefix{hex(SHA-256(field(domain), tag [field(scope)], field(key)))}` for
    /// scopes and keys from 0 to 400 bytes (across the 128-byte stage, alone and together).
    @Test func storageKeysAreTheDocumentedFraming() {
        var r = Random(state: 99)
        for round in 0..<1500 {
            let scopeLength = round < 300 ? round : r.below(401)
            let scope: [UInt8]? = round % 5 == 4 ? nil : (0..<scopeLength).map { _ in UInt8(truncatingIfNeeded: r.next()) }
            let key = String((0..<(1 + r.below(round % 3 == 0 ? 255 : 40))).map { _ in r.pick(Array("abcXYZ0-9_.:~{}\"é")) })
            var s = Stream()
            s.field(Array("idemproxy/storage-key/v1".utf8))
            if let scope { s.tag(1); s.field(scope) } else { s.tag(0) }
            s.field(Array(key.utf8))
            let hex = SHA256Hasher.hex(SHA256Hasher.hash(s.bytes))
            #expect(StorageKey.digestHex(scope: scope, key: key) == hex, "round \(round)")
            #expect(storageKey(prefix: "p:", scope: scope, key: key) == "p:{\(hex)}", "round \(round)")
        }
    }
}

extension Array {
    fileprivate func shuffledDeterministically(_ r: inout FingerprintFramingPropertyTests.Random) -> [Element] {
        var copy = self
        for i in stride(from: copy.count - 1, to: 0, by: -1) { copy.swapAt(i, r.below(i + 1)) }
        return copy
    }
}
