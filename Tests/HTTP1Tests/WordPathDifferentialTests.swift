@testable import HTTP1
import Testing

/// The word-at-a-time paths (field names, Host values, the
/// `Connection: keep-alive` fast path, the status-line end) judged through the whole parser
/// against byte-by-byte references written here from the grammar, for every byte value at
/// every position of names and values of lengths 1 to 20, at four alignments of the head
/// (0 to 3 leading empty lines shift every offset by two bytes), so each word boundary and
/// every unaligned start is crossed.
@Suite struct WordPathDifferentialTests {
    static let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    static let limits = HTTPParserLimits()

    enum Outcome: Equatable { case accepted(RequestHead.Summary), rejected }

    static func parse(_ bytes: [UInt8]) -> Outcome {
        var head = RequestHead()
        return bytes.withUnsafeBytes { raw in
            do {
                guard try RequestHeadParser.parse(raw, into: &head, limits: limits) else { return .rejected }
                return .accepted(RequestHead.Summary(head, raw))
            } catch {
                return .rejected
            }
        }
    }

    /// `body` with every one-byte change of `base` (each byte value at each position; CR and LF
    /// left out unless `lineBreaks`) at each alignment of the head (0 to 3 leading empty lines).
    static func forEachOneByteChange(of base: [UInt8], lineBreaks: Bool, _ body: (_ changed: [UInt8], _ leading: Int) -> Void) {
        for leading in 0...3 {
            for position in base.indices {
                for b in 0...255 where lineBreaks || (b != 0x0D && b != 0x0A) {
                    var changed = base
                    changed[position] = UInt8(b)
                    body(changed, leading)
                }
            }
        }
    }

    static func isFieldValueByte(_ b: UInt8) -> Bool { b == 0x09 || (b >= 0x20 && b != 0x7F) }
    static func isOWS(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    static func trimmed(_ v: [UInt8]) -> [UInt8] {
        var s = 0, e = v.count
        while s < e && isOWS(v[s]) { s += 1 }
        while e > s && isOWS(v[e - 1]) { e -= 1 }
        return Array(v[s..<e])
    }

    /// Host = uri-host [ ":" port ], as the byte loop before the word paths read it.
    static func referenceAuthority(_ v: [UInt8]) -> Bool {
        let hostBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:%[]".utf8)
        let hex = Set("0123456789abcdefABCDEF".utf8)
        var p = 0
        guard !v.isEmpty else { return false }
        if v[0] == UInt8(ascii: "[") {
            p = 1
            let start = p
            while p < v.count && v[p] != UInt8(ascii: "]") {
                guard hostBytes.contains(v[p]), v[p] != UInt8(ascii: "["), v[p] != UInt8(ascii: "%") else { return false }
                p += 1
            }
            guard p < v.count, p > start else { return false }
            p += 1
        } else {
            let start = p
            while p < v.count && v[p] != UInt8(ascii: ":") {
                let b = v[p]
                guard hostBytes.contains(b), b != UInt8(ascii: "["), b != UInt8(ascii: "]") else { return false }
                if b == UInt8(ascii: "%") {
                    guard p + 2 < v.count, hex.contains(v[p + 1]), hex.contains(v[p + 2]) else { return false }
                    p += 2
                }
                p += 1
            }
            guard p > start else { return false }
        }
        if p == v.count { return true }
        guard v[p] == UInt8(ascii: ":") else { return false }
        return v[(p + 1)...].allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    static func request(leading: Int, version: String = "1.1", fields: [UInt8]) -> [UInt8] {
        Array(repeating: Array("\r\n".utf8), count: leading).flatMap { $0 } + Array("GET / HTTP/\(version)\r\n".utf8) + fields + Array("\r\n".utf8)
    }

    /// Field name "xq…" (never a name the parser treats specially, whatever one byte becomes)
    /// with one byte replaced by every value; the reference splits at the first colon like the
    /// grammar does and judges the name (tchar, non-empty) and the value bytes.
    @Test func fieldNamesMatchTheByteRuleAtEveryLengthAlignmentAndByte() {
        var mismatches: [String] = []
        let letters = Array("xqAbCdEf-0123456789zZyY".utf8)
        for length in 1...20 {
            let base = (0..<length).map { letters[$0 % letters.count] }
            Self.forEachOneByteChange(of: base, lineBreaks: true) { name, leading in
                let line = name + Array(": v\r\n".utf8)
                let input = Self.request(leading: leading, fields: Array("Host: a\r\n".utf8) + line)
                let expected: Bool
                if name.contains(0x0D) || name.contains(0x0A) {
                    expected = false
                } else {
                    let colon = line.firstIndex(of: UInt8(ascii: ":"))!
                    let fieldName = Array(line[..<colon])
                    let value = Array(line[(colon + 1)..<(line.count - 2)])
                    expected = !fieldName.isEmpty && fieldName.allSatisfy(Self.tchar.contains) && value.allSatisfy(Self.isFieldValueByte)
                }
                let got = Self.parse(input)
                let accepted: Bool
                if case .accepted(let summary) = got {
                    accepted = true
                    // The name ends exactly at the first colon.
                    let colon = line.firstIndex(of: UInt8(ascii: ":"))!
                    if summary.names.last != Array(line[..<colon]) { mismatches.append("name split \(name) leading \(leading)") }
                } else {
                    accepted = false
                }
                if accepted != expected { mismatches.append("name \(name) leading \(leading): got \(accepted)") }
            }
        }
        let clean = mismatches.isEmpty
        #expect(clean, "\(mismatches.prefix(5)) (\(mismatches.count))")
    }

    /// Host values of letters, digits, '-' and '.' with one byte replaced by every value, and
    /// with a ":port" or "%41" suffix, judged against the byte-loop reference.
    @Test func hostValuesMatchTheByteRuleAtEveryLengthAlignmentAndByte() {
        var mismatches: [String] = []
        let letters = Array("a1-B.c2-D.e3f4g5h6i7".utf8)
        for length in 1...20 {
            let base = (0..<length).map { letters[$0 % letters.count] }
            for suffix in ["", ":80", "%4", "]"] {
                Self.forEachOneByteChange(of: base, lineBreaks: false) { changed, leading in
                    let value = changed + Array(suffix.utf8)
                    let input = Self.request(leading: leading, fields: Array("Host: ".utf8) + value + Array("\r\n".utf8))
                    let expected = value.allSatisfy(Self.isFieldValueByte) && Self.referenceAuthority(Self.trimmed(value))
                    let accepted: Bool
                    if case .accepted = Self.parse(input) { accepted = true } else { accepted = false }
                    if accepted != expected { mismatches.append("host \(value) leading \(leading): got \(accepted)") }
                }
            }
        }
        let clean = mismatches.isEmpty
        #expect(clean, "\(mismatches.prefix(5)) (\(mismatches.count))")
    }

    /// A Connection value of ten bytes around "keep-alive" (every byte value at every
    /// position, every case) read by the fast path gives what the list path gives: the same
    /// keep-alive and close decisions and the same fields marked hop-by-hop. The list path is
    /// reached by the same value with a trailing ", " element, which changes nothing.
    @Test func keepAliveFastPathAgreesWithTheListPathForEveryNearMiss() {
        var mismatches: [String] = []
        let word = Array("kEeP-AlIvE".utf8)
        Self.forEachOneByteChange(of: word, lineBreaks: false) { value, leading in
            // A field the option might name, present in the head.
            let named = Array("X-Opt: 1\r\n".utf8)
            let fast = Self.parse(Self.request(
                leading: leading, version: "1.0", fields: Array("Host: a\r\n".utf8) + named + Array("Connection: ".utf8) + value + Array("\r\n".utf8)))
            let list = Self.parse(Self.request(
                leading: leading, version: "1.0", fields: Array("Host: a\r\n".utf8) + named + Array("Connection: ".utf8) + value + Array(", \r\n".utf8)))
            switch (fast, list) {
            case (.rejected, .rejected): break
            case (.accepted(let x), .accepted(let y)):
                if x.keepAlive != y.keepAlive || x.hopByHop != y.hopByHop {
                    mismatches.append("\(value) leading \(leading)")
                }
            default:
                // A trailing SP/HTAB in the value changes trimming identically on both.
                mismatches.append("\(value) leading \(leading): \(fast) vs \(list)")
            }
        }
        let clean = mismatches.isEmpty
        #expect(clean, "\(mismatches.prefix(5)) (\(mismatches.count))")
    }
}

extension RequestHead {
    /// What the differential compares of a parsed head.
    struct Summary: Equatable {
        var names: [[UInt8]]
        var keepAlive: Bool
        var hopByHop: [Bool]

        init(_ head: RequestHead, _ raw: UnsafeRawBufferPointer) {
            names = head.fields.map { Array(raw[$0.name]) }
            keepAlive = head.keepAlive
            hopByHop = head.hopByHop
        }
    }
}
