@testable import HTTP1
import TestRandom
import Testing

/// Differential checks for the word-at-a-time and copy-as-one-run fast paths: each is compared
/// with a plain byte-by-byte reference written here from the RFC grammar (or from the code the
/// fast path replaced), over many generated inputs.
@Suite struct StartLineDifferentialTests {
    private static func firstLine(_ out: [UInt8]) -> [UInt8] {
        var i = 0
        while i + 1 < out.count && !(out[i] == 0x0D && out[i + 1] == 0x0A) { i += 1 }
        return Array(out[0..<min(out.count, i + 2)])
    }

    // MARK: request line

    /// RFC 9110 §2.5 and RFC 9112 §3.2: method SP origin-form (the prefix, then "/" when the
    /// path is empty or only a query) SP "HTTP/1.1" CRLF; "*" gets no prefix.
    private static func referenceRequestLine(_ head: RequestHead, _ source: UnsafeRawBufferPointer, prefix: [UInt8]) -> [UInt8] {
        var line = Array(source[head.methodRange])
        line.append(0x20)
        let target = Array(source[head.target])
        var origin: [UInt8]
        if target.first == UInt8(ascii: "/") || target.first == UInt8(ascii: "*") {
            origin = target
        } else {
            // scheme "://" authority, then the path and query (authority-form has neither).
            if let afterScheme = target.indices.first(where: { i in i + 2 < target.count && target[i] == 0x3A && target[i + 1] == 0x2F && target[i + 2] == 0x2F }) {
                var i = afterScheme + 3
                while i < target.count && target[i] != 0x2F && target[i] != 0x3F { i += 1 }
                origin = Array(target[i...])
            } else {
                origin = []
            }
        }
        if origin != [UInt8(ascii: "*")] { line += prefix }
        if origin.isEmpty || origin.first == UInt8(ascii: "?") { origin.insert(UInt8(ascii: "/"), at: 0) }
        line += origin
        line += Array(" HTTP/1.1\r\n".utf8)
        return line
    }

    @Test func requestLineMatchesAReferenceWriter() throws {
        var rng = SeededRandom(state: 0x5EED_0001)
        let pathBytes = Array("abcXYZ019-._~!$&'()*+,;=:@/%?".utf8)
        var accepted = 0, fast = 0
        for _ in 0..<20_000 {
            var input: [UInt8] = []
            for _ in 0..<rng.pick([0, 0, 0, 1, 2]) { input += [0x0D, 0x0A] }
            let method = rng.pick(["GET", "POST", "PUT", "OPTIONS", "CONNECT", "X-Y!", "get", "M"])
            input += Array(method.utf8)
            input.append(0x20)
            var target: [UInt8] = []
            func path() -> [UInt8] { (0..<rng.below(12)).map { _ in rng.pick(pathBytes) } }
            switch rng.below(6) {
            case 0, 1: target = [0x2F] + path()
            case 2: target = Array("*".utf8)
            case 3: target = Array(rng.pick(["http://a.example", "https://h:8080", "http://x"]).utf8) + (rng.chance(50) ? [0x2F] + path() : [])
            case 4: target = Array(rng.pick(["http://a.example?", "http://h:1?q="]).utf8) + path()
            default: target = Array(rng.pick(["a.example:443", "h:1", "[::1]:80"]).utf8)
            }
            input += target
            input += Array(rng.pick([" HTTP/1.1", " HTTP/1.0"]).utf8)
            input += Array("\r\nHost: a\r\nX-A: b\r\n\r\n".utf8)
            let prefix: [UInt8] = rng.chance(70) ? [] : Array(rng.pick(["/api", "/", "/a/b"]).utf8)
            try input.withUnsafeBytes { bytes in
                var head = RequestHead()
                let parsed: Bool
                do { parsed = try RequestHeadParser.parse(bytes, into: &head, limits: .init()) } catch { return }
                guard parsed else { return }
                accepted += 1
                if prefix.isEmpty && bytes[head.target.lowerBound] == 0x2F { fast += 1 }
                var out = Array("before|".utf8)
                HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: .none, targetPrefix: prefix, into: &out)
                let written = Self.firstLine(Array(out.dropFirst(7)))
                let expected = Self.referenceRequestLine(head, bytes, prefix: prefix)
                #expect(written == expected, "\(text(input)) prefix \(text(prefix)): \(text(written)) != \(text(expected))")
                // The field lines after the start line are the writer's own (not under test here),
                // but they must follow the start line unchanged.
                #expect(text(out.dropFirst(7 + written.count)) == "Host: a\r\nX-A: b\r\n\r\n")
                _ = try #require(out.starts(with: Array("before|".utf8)))
            }
        }
        #expect(accepted > 5_000)
        #expect(fast > 1_000)
    }

    // MARK: status line

    @Test func statusLineMatchesAReferenceWriter() throws {
        var rng = SeededRandom(state: 0x5EED_0002)
        // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ), plus bytes it refuses.
        let reasonBytes: [UInt8] = [0x09, 0x20, 0x20, 0x41, 0x7A, 0x21, 0x7E, 0x80, 0xE9, 0xFF, 0x7F, 0x00, 0x0B]
        var accepted = 0
        for _ in 0..<20_000 {
            var input = Array(rng.pick(["HTTP/1.1 ", "HTTP/1.0 ", "HTTP/1.1 ", "HTTP/2.0 "]).utf8)
            let status = rng.pick([100, 101, 200, 204, 299, 304, 404, 599, 999, 0, 42])
            input += Array((status < 100 ? "0\(status)" : "\(status)").utf8)
            switch rng.below(4) {
            case 0: break  // "HTTP/1.1 200" CRLF (named leniency)
            case 1: input.append(0x20)  // empty reason
            default:
                input.append(0x20)
                for _ in 0..<(1 + rng.below(20)) { input.append(rng.pick(reasonBytes)) }
            }
            input += Array("\r\nX-A: b\r\n\r\n".utf8)
            try input.withUnsafeBytes { bytes in
                var head = ResponseHead()
                let parsed: Bool
                do { parsed = try ResponseHeadParser.parse(bytes, into: &head, requestMethod: .get, limits: .init()) } catch { return }
                guard parsed else { return }
                accepted += 1
                var out = Array("before|".utf8)
                HeadWriter.writeResponseHead(&head, source: bytes, extra: [], framing: .none, close: false, into: &out)
                var expected = Array("HTTP/1.1 \(head.status) ".utf8)
                expected += head.reason.isEmpty ? Array(StatusReason.phrase(for: head.status).utf8) : Array(bytes[head.reason])
                expected += [0x0D, 0x0A]
                let written = Self.firstLine(Array(out.dropFirst(7)))
                #expect(written == expected, "\(text(input)): \(text(written)) != \(text(expected))")
                #expect(text(out.dropFirst(7 + written.count)) == "X-A: b\r\n\r\n")
                #expect(out.starts(with: Array("before|".utf8)))
            }
        }
        #expect(accepted > 5_000)
    }

    // MARK: Host values

    private static let hostBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:%[]".utf8)
    private static let hexBytes = Set("0123456789abcdefABCDEF".utf8)

    /// The authority check as it was before the word loop: byte by byte.
    private static func referenceIsValidAuthority(_ bytes: [UInt8]) -> Bool {
        func isHostByte(_ b: UInt8) -> Bool { hostBytes.contains(b) }
        func isHex(_ b: UInt8) -> Bool { hexBytes.contains(b) }
        var p = 0
        let end = bytes.count
        guard p < end else { return false }
        if bytes[p] == 0x5B {
            p += 1
            let literalStart = p
            while p < end && bytes[p] != 0x5D {
                let b = bytes[p]
                guard isHostByte(b), b != 0x5B, b != 0x25 else { return false }
                p += 1
            }
            guard p < end, p > literalStart else { return false }
            p += 1
        } else {
            let hostStart = p
            while p < end && bytes[p] != 0x3A {
                let b = bytes[p]
                guard isHostByte(b), b != 0x5B, b != 0x5D else { return false }
                if b == 0x25 {
                    guard p + 2 < end, isHex(bytes[p + 1]), isHex(bytes[p + 2]) else { return false }
                    p += 2
                }
                p += 1
            }
            guard p > hostStart else { return false }
        }
        if p == end { return true }
        guard bytes[p] == 0x3A else { return false }
        p += 1
        while p < end {
            guard bytes[p] >= 0x30 && bytes[p] <= 0x39 else { return false }
            p += 1
        }
        return true
    }

    @Test func authorityMatchesTheByteLoop() {
        var rng = SeededRandom(state: 0x5EED_0003)
        let common = Array("abcxyzABCXYZ0189-.".utf8)
        let rare: [UInt8] = Array(":%[]_~!@ /?#".utf8) + [0x00, 0x0D, 0x2C, 0x2F, 0x40, 0x5B, 0x60, 0x7B, 0x7F, 0x80, 0xAD, 0xAE, 0xC1, 0xE1, 0xFF]
        for _ in 0..<100_000 {
            let length = rng.below(40)
            let value: [UInt8] = (0..<length).map { _ in rng.chance(92) ? rng.pick(common) : rng.pick(rare) }
            // The value sits between bytes that would pass the word test, so a read past either
            // end would change the answer.
            let before = rng.below(9)
            let buffer = [UInt8](repeating: 0x61, count: before) + value + [UInt8](repeating: rng.pick([0x61, 0x3A, 0x25]), count: 16)
            let got = buffer.withUnsafeBytes { FieldValueSyntax.isValidAuthority($0, before..<(before + length)) }
            #expect(got == Self.referenceIsValidAuthority(value), "\(value)")
        }
    }

    @Test func wordTestIsExactForEveryByteAtEveryPosition() {
        func reference(_ b: UInt8, _ a: UInt8, _ c: UInt8) -> Bool {
            (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == a || b == c
        }
        for (a, c) in [(UInt8(0x2D), UInt8(0x2E)), (0x2D, 0x2D), (0x00, 0x7F), (0x5F, 0x7E)] {
            for filler in [UInt8(0x61), 0x5A, 0x30, 0x39, 0x2D, 0x41, 0x7A] where reference(filler, a, c) {
                for position in 0..<8 {
                    for b in 0...255 {
                        var word = [UInt8](repeating: filler, count: 8)
                        word[position] = UInt8(b)
                        let x = word.withUnsafeBytes { SWAR.load($0, 0) }
                        #expect(SWAR.allAlphanumeric(x, or: a, c) == reference(UInt8(b), a, c), "byte \(b) at \(position), or \(a) \(c)")
                    }
                }
            }
        }
        var rng = SeededRandom(state: 0x5EED_0004)
        for _ in 0..<200_000 {
            let word: [UInt8] = (0..<8).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let x = word.withUnsafeBytes { SWAR.load($0, 0) }
            #expect(SWAR.allAlphanumeric(x, or: 0x2D, 0x2E) == word.allSatisfy { reference($0, 0x2D, 0x2E) })
        }
    }

    // MARK: response head scanning

    enum ScanOutcome: Equatable { case complete(Int), more, failed(String) }

    /// The response head's framing as the byte-by-byte scanner judged it: the status line ends
    /// at its first CR or LF (LF alone refused, CR must be followed by LF), then field lines.
    private static func referenceScan(_ bytes: [UInt8], limits: HTTPParserLimits) -> ScanOutcome {
        let end = min(bytes.count, limits.maxHeaderBytes)
        var i = 0
        func tail() -> ScanOutcome { bytes.count >= limits.maxHeaderBytes ? .failed("\(HTTPParseError.headTooLarge)") : .more }
        /// Moves `i` past the CR LF ending the line it is in; an outcome when it cannot.
        func endLine() -> ScanOutcome? {
            while i < end && bytes[i] != 0x0D && bytes[i] != 0x0A { i += 1 }
            guard i < end else { return tail() }
            if bytes[i] == 0x0A { return .failed("\(HTTPParseError.bareLF)") }
            i += 1
            guard i < end else { return tail() }
            guard bytes[i] == 0x0A else { return .failed("\(HTTPParseError.bareCR)") }
            i += 1
            return nil
        }
        if let outcome = endLine() { return outcome }
        var lines = 0
        while true {
            guard i < end else { return tail() }
            let first = bytes[i]
            if first == 0x0D {
                guard i + 1 < end else { return tail() }
                guard bytes[i + 1] == 0x0A else { return .failed("\(HTTPParseError.bareCR)") }
                return .complete(i + 2)
            }
            if first == 0x0A { return .failed("\(HTTPParseError.bareLF)") }
            if first == 0x20 || first == 0x09 { return .failed("\(HTTPParseError.obsFold)") }
            i += 1
            if let outcome = endLine() { return outcome }
            lines += 1
            if lines > limits.maxHeaders { return .failed("\(HTTPParseError.tooManyFields)") }
        }
    }

    /// Scans growing prefixes of `input`, cut at `cuts`, as a connection receiving it would.
    private static func scan(_ input: [UInt8], cuts: [Int], limits: HTTPParserLimits) -> ScanOutcome {
        var scanner = HeadScanner(forRequest: false)
        for cut in cuts + [input.count] {
            let piece = Array(input[0..<cut])
            do {
                if let length = try piece.withUnsafeBytes({ try scanner.scan($0, limits: limits) }) { return .complete(length) }
            } catch {
                return .failed("\(error)")
            }
        }
        return .more
    }

    @Test func responseScanningMatchesTheByteLoopAtEverySegmentation() {
        var rng = SeededRandom(state: 0x5EED_0005)
        let alphabet: [UInt8] = Array("HTP/1. 20OKab:".utf8) + [0x0D, 0x0A, 0x0D, 0x0A, 0x09, 0x00, 0x0B, 0x0C, 0x0E, 0x1F, 0x80, 0x8D, 0x8A, 0xFF]
        for _ in 0..<20_000 {
            var input: [UInt8] = rng.chance(60) ? Array("HTTP/1.1 200 ".utf8) : []
            for _ in 0..<rng.below(30) { input.append(rng.chance(70) ? rng.pick(Array("abcdefgh OK".utf8)) : rng.pick(alphabet)) }
            if rng.chance(60) { input += Array(rng.pick(["\r\n", "\r\nA: b\r\n", "\r\nA: b\r\n\r\n", "\r\n\r\n", "\n", "\r"]).utf8) }
            var limits = HTTPParserLimits()
            if rng.chance(50) { limits.maxHeaderBytes = 1 + rng.below(48) }
            if rng.chance(30) { limits.maxHeaders = rng.below(3) }
            let expected = Self.referenceScan(input, limits: limits)
            let whole = Self.scan(input, cuts: [], limits: limits)
            #expect(whole == expected, "\(input) limits \(limits.maxHeaderBytes)")
            let byteByByte = Self.scan(input, cuts: Array(0..<input.count), limits: limits)
            #expect(byteByByte == expected, "\(input) byte by byte")
            let cuts = (0..<rng.below(4)).map { _ in rng.below(input.count + 1) }.sorted()
            #expect(Self.scan(input, cuts: cuts, limits: limits) == expected, "\(input) cut at \(cuts)")
        }
    }
}
