@testable import HTTP1
import TestRandom
import Testing

/// The grammar bit masks are checked against the RFC definitions spelled out
/// as character lists, for every byte value.
@Suite struct ByteClassTests {
    @Test func tcharMaskMatchesRFC9110() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for b in 0...255 {
            #expect(ByteClass.isTchar(UInt8(b)) == tchar.contains(UInt8(b)), "byte \(b)")
        }
    }

    @Test func hostMaskMatchesRFC3986() {
        let host = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:%[]".utf8)
        for b in 0...255 {
            #expect(ByteClass.isHostByte(UInt8(b)) == host.contains(UInt8(b)), "byte \(b)")
        }
    }

    @Test func fieldValueBytesMatchRFC9110() {
        for b in 0...255 {
            let allowed = b == 0x09 || (0x20...0x7E).contains(b) || b >= 0x80
            #expect(ByteClass.isFieldValueByte(UInt8(b)) == allowed, "byte \(b)")
        }
    }

    @Test func swarFindsEveryLowByteAtEveryPosition() {
        for position in 0..<8 {
            for low in [0x00, 0x09, 0x0A, 0x0D, 0x1F] as [UInt8] {
                var word = [UInt8](repeating: 0x41, count: 8)
                word[position] = low
                let x = word.withUnsafeBytes { SWAR.load($0, 0) }
                #expect(SWAR.hasByteLess(than: 0x20, in: x))
                #expect(SWAR.hasByteLess(than: 0x0E, in: x) == (low < 0x0E))
            }
            var word = [UInt8](repeating: 0xFF, count: 8)
            word[position] = 0x7F
            let x = word.withUnsafeBytes { SWAR.load($0, 0) }
            #expect(SWAR.hasByte(0x7F, in: x))
            #expect(!SWAR.hasByteLess(than: 0x20, in: x))
        }
        let clean = [UInt8](repeating: 0x80, count: 8).withUnsafeBytes { SWAR.load($0, 0) }
        #expect(!SWAR.hasByteLess(than: 0x20, in: clean))
        #expect(!SWAR.hasByte(0x7F, in: clean))
    }

    /// Every byte value at every position, next to neighbours that provoke a borrow or carry
    /// (0x00, 0x2C after '-', 0xFF), and seeded random words: the word-at-a-time name tests
    /// agree with the byte-at-a-time ones.
    @Test func wordTestsAgreeWithByteTests() {
        func word(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { SWAR.load($0, 0) } }
        func check(_ bytes: [UInt8]) {
            let expectedNameWord = bytes.allSatisfy { ByteClass.isDigit($0) || $0 == 0x2D || (ByteClass.lowercased($0) &- 0x61) < 26 }
            #expect(SWAR.allAlphanumericOrDash(word(bytes)) == expectedNameWord, "\(bytes)")
            let expectedHostWord = bytes.allSatisfy { ByteClass.isDigit($0) || $0 == 0x2D || $0 == 0x2E || (ByteClass.lowercased($0) &- 0x61) < 26 }
            #expect(SWAR.allAlphanumeric(word(bytes), or: 0x2D, 0x2E) == expectedHostWord, "\(bytes)")
            #expect(NameMatch.lowercasedWord(word(bytes)) == word(bytes.map(ByteClass.lowercased)), "\(bytes)")
        }
        for position in 0..<8 {
            for b in 0...255 {
                for filler in [0x61, 0x2D, 0x2E, 0x00, 0x2C, 0x2F, 0xFF, 0x5A] as [UInt8] {
                    var bytes = [UInt8](repeating: filler, count: 8)
                    bytes[position] = UInt8(b)
                    check(bytes)
                }
            }
        }
        var generator = SeededRandom(state: 0x5EED)
        let alphabet = Array("-azAZ09,.:_^~@[`{/".utf8) + [0x00, 0x7F, 0x80, 0xC0, 0xFF]
        for _ in 0..<20_000 {
            check((0..<8).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
        }
    }

    @Test func namesMatchIgnoringCaseOnlyWhenEveryByteDoes() {
        let names = ["idempotency-key", "content-type", "a", "x-tenant-0123456789", "a^b", "a~b"]
        let candidates = ["Idempotency-Key", "IDEMPOTENCY-KEY", "idempotency-kez", "Idempotency_Key", "Content-Type",
                          "content-typE", "A", "b", "X-Tenant-0123456789", "x-tenant-0123456788", "A^B", "a~b", "a^b"]
        for name in names {
            for candidate in candidates {
                // Padded after the name, as a field name is followed by ": value" in a head.
                let source = Array((candidate + ": v\r\n").utf8)
                let expected = Array(candidate.utf8).map(ByteClass.lowercased) == Array(name.utf8)
                source.withUnsafeBytes { bytes in
                    #expect(NameMatch.equals(bytes, 0..<candidate.utf8.count, Array(name.utf8)) == expected, "\(name) \(candidate)")
                }
                // And at the very end of a buffer, where a whole word cannot be loaded.
                Array(candidate.utf8).withUnsafeBytes { bytes in
                    #expect(NameMatch.equals(bytes, 0..<bytes.count, Array(name.utf8)) == expected, "\(name) \(candidate) at the end")
                }
            }
        }
    }

    /// The word comparison of a configured name against every name length from 0 to 33 (one,
    /// two and more whole words, with and without an overlapping last word), a one-byte change
    /// at every position (case flip, high bit, the folding neighbours '@' '[' '`' '{'), with the
    /// name both inside a buffer and ending at an inaccessible page.
    @Test func wordNameMatchAgreesWithByteComparisonForEveryLength() {
        let memory = GuardedMemory()
        var generator = SeededRandom(state: 0xC0FFEE)
        let alphabet = Array("abcxyz0189-_.~!".utf8)
        func byteEquals(_ candidate: [UInt8], _ name: [UInt8]) -> Bool {
            candidate.count == name.count && zip(candidate, name).allSatisfy { ByteClass.lowercased($0) == $1 }
        }
        for length in 0...33 {
            let name = (0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }
            var candidates: [[UInt8]] = [name, name.map { $0 &- 0x61 < 26 ? $0 & ~0x20 : $0 }, name + [0x61], Array(name.dropLast())]
            for position in 0..<length {
                for change: (UInt8) -> UInt8 in [{ $0 ^ 0x20 }, { $0 ^ 0x80 }, { $0 | 0x80 }, { _ in 0x40 }, { _ in 0x5B }, { _ in 0x60 }, { _ in 0x7B }, { $0 ^ 0x01 }] {
                    var candidate = name
                    candidate[position] = change(candidate[position])
                    candidates.append(candidate)
                }
            }
            for candidate in candidates {
                let expected = byteEquals(candidate, name)
                let padded = [0x41, 0x42, 0x43] + candidate + Array(": v\r\n".utf8)
                padded.withUnsafeBytes { bytes in
                    #expect(NameMatch.equals(bytes, 3..<(3 + candidate.count), name) == expected, "\(name) \(candidate)")
                }
                memory.withBytesAtEnd(candidate[...]) { bytes in
                    #expect(NameMatch.equals(bytes, 0..<bytes.count, name) == expected, "\(name) \(candidate) at the end")
                }
            }
        }
    }

    @Test func statusPhrases() {
        #expect(StatusReason.phrase(for: 200) == "OK")
        #expect(StatusReason.phrase(for: 431) == "Request Header Fields Too Large")
        #expect(StatusReason.phrase(for: 599) == "Server Error")
        #expect(StatusReason.phrase(for: 1000) == "Unknown")
    }
}
