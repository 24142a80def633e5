/// Byte classification for the HTTP/1.1 grammar, written as bit masks so that
/// every test is a shift and an AND with no table lookup through a lazily
/// initialised global.
enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let comma: UInt8 = 0x2C
    static let equals: UInt8 = 0x3D
    static let dquote: UInt8 = 0x22
    static let backslash: UInt8 = 0x5C
    static let slash: UInt8 = 0x2F
    static let asterisk: UInt8 = 0x2A
}

enum ByteClass {
    /// tchar (RFC 9110 §5.6.2): "!#$%&'*+-.^_`|~", DIGIT and ALPHA, split into
    /// the bits for 0x00–0x3F and 0x40–0x7F. Bytes from 0x80 are never tchar.
    private static let tcharLow: UInt64 = 0x03FF_6CFA_0000_0000
    private static let tcharHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE

    /// Bytes allowed in a Host value: unreserved, sub-delims, ':' and '%' from
    /// RFC 3986 §3.2.2, plus '[' and ']' for IP literals. The structure (brackets,
    /// port digits, percent-encoding) is checked separately.
    private static let hostLow: UInt64 = 0x2FFF_7FF2_0000_0000
    private static let hostHigh: UInt64 = 0x47FF_FFFE_AFFF_FFFE

    /// Written without branches: names mix bytes from both halves ('-' is
    /// low, letters are high), and a branch on the half mispredicts constantly.
    @inline(__always)
    static func isTchar(_ b: UInt8) -> Bool {
        let mask = b < 64 ? tcharLow : tcharHigh
        return (mask >> UInt64(b & 63)) & UInt64(~b >> 7) & 1 != 0
    }

    @inline(__always)
    static func isHostByte(_ b: UInt8) -> Bool {
        if b < 64 { return (hostLow >> UInt64(b)) & 1 != 0 }
        if b < 128 { return (hostHigh >> UInt64(b &- 64)) & 1 != 0 }
        return false
    }

    /// field-vchar / SP / HTAB (RFC 9110 §5.5): everything except NUL, the other
    /// control characters and DEL. obs-text (0x80–0xFF) is allowed in values.
    @inline(__always)
    static func isFieldValueByte(_ b: UInt8) -> Bool {
        b >= 0x20 ? b != 0x7F : b == ASCII.htab
    }

    /// VCHAR (0x21–0x7E): the only bytes a request-target may contain.
    @inline(__always)
    static func isVisibleASCII(_ b: UInt8) -> Bool {
        b &- 0x21 < 0x5E
    }

    @inline(__always)
    static func isWhitespace(_ b: UInt8) -> Bool {
        b == ASCII.sp || b == ASCII.htab
    }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool {
        b &- 0x30 < 10
    }

    /// The value of a hexadecimal digit, or nil. Used for chunk sizes, which
    /// RFC 9112 §7.1 defines as 1*HEXDIG, and for percent-encoding.
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        if b &- 0x30 < 10 { return b &- 0x30 }
        let lower = b | 0x20
        if lower &- 0x61 < 6 { return lower &- 0x61 &+ 10 }
        return nil
    }

    @inline(__always)
    static func lowercased(_ b: UInt8) -> UInt8 {
        b &- 0x41 < 26 ? b | 0x20 : b
    }
}

/// Word-at-a-time scanning. Eight bytes are tested with a few integer
/// operations, which lets long field values and targets be skipped quickly.
enum SWAR {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The high bit of each byte of `x` that is below `n` (n ≤ 128). Borrows
    /// can also flag bytes above a genuinely flagged one, but never below it, so
    /// the mask is exact about whether any byte qualifies and about which one
    /// comes first; callers only rely on those two facts.
    @inline(__always)
    static func bytesLess(than n: UInt8, in x: UInt64) -> UInt64 {
        (x &- ones &* UInt64(n)) & ~x & highs
    }

    /// The high bit of each byte of `x` equal to `b`, with the same guarantee.
    @inline(__always)
    static func bytesEqual(to b: UInt8, in x: UInt64) -> UInt64 {
        bytesLess(than: 1, in: x ^ (ones &* UInt64(b)))
    }

    @inline(__always)
    static func hasByteLess(than n: UInt8, in x: UInt64) -> Bool {
        bytesLess(than: n, in: x) != 0
    }

    @inline(__always)
    static func hasByte(_ b: UInt8, in x: UInt64) -> Bool {
        bytesEqual(to: b, in: x) != 0
    }

    /// Whether all eight bytes are ASCII letters, digits or '-', the bytes nearly every field
    /// name is made of (all of them tchar).
    @inline(__always)
    static func allAlphanumericOrDash(_ x: UInt64) -> Bool {
        allAlphanumeric(x, or: 0x2D, 0x2D)
    }

    /// Whether all eight bytes are ASCII letters, digits, `a` or `b` (`a` and `b` are ASCII).
    /// Each test is exact: the range tests work on the low seven bits, where adding a constant
    /// cannot carry into the next byte, the equality tests are exact zero tests, and a byte with
    /// its high bit set fails.
    @inline(__always)
    static func allAlphanumeric(_ x: UInt64, or a: UInt8, _ b: UInt8) -> Bool {
        let low7 = x & ~highs
        let folded = NameMatch.lowercasedWord(x) & ~highs
        let letter = (folded &+ 0x1F1F_1F1F_1F1F_1F1F) & ~(folded &+ 0x0505_0505_0505_0505)  // 0x61...0x7A
        let digit = (low7 &+ 0x5050_5050_5050_5050) & ~(low7 &+ 0x4646_4646_4646_4646)      // 0x30...0x39
        return ((letter | digit) & ~x & highs) | exactlyEqual(a, in: x) | exactlyEqual(b, in: x) == highs
    }

    /// The high bit of each byte of `x` equal to `b` and of no other (unlike `bytesEqual`, which
    /// may also flag a byte after a match): a zero test of `x ^ b…b` on seven bits, plus the eighth.
    @inline(__always)
    static func exactlyEqual(_ b: UInt8, in x: UInt64) -> UInt64 {
        let y = x ^ (ones &* UInt64(b))
        return ~(((y & ~highs) &+ ~highs) | y) & highs
    }

    /// The index (0–7) of the first byte flagged in a non-zero mask.
    @inline(__always)
    static func firstIndex(_ mask: UInt64) -> Int {
        mask.trailingZeroBitCount &>> 3
    }

    @inline(__always)
    static func load(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

/// Case-insensitive comparison of buffer bytes with a lowercase ASCII name,
/// which is how field names are matched (RFC 9110 §5.1).
enum NameMatch {
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: StaticString) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { lit in
            var i = 0
            let s = range.lowerBound
            while i < lit.count {
                if ByteClass.lowercased(bytes[s + i]) != lit[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// Same comparison against a runtime string; the string is expected to be
    /// lowercase already, so only the buffer side is folded.
    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: String) -> Bool {
        let utf8 = lowercase.utf8
        guard utf8.count == range.count else { return false }
        var i = range.lowerBound
        for c in utf8 {
            if ByteClass.lowercased(bytes[i]) != c { return false }
            i &+= 1
        }
        return true
    }

    /// Same comparison against lowercase bytes, eight at a time: a configured name (the key,
    /// scope and fingerprint headers) is looked for in every field line of a guarded request.
    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: [UInt8]) -> Bool {
        let count = range.count
        guard lowercase.count == count else { return false }
        return lowercase.withUnsafeBytes { literal in
            let start = range.lowerBound
            guard count >= 8 else {
                return lowercasedWord(WordMatch.load(bytes, start, count)) == WordMatch.load(literal, 0, count)
            }
            // Whole words, the last one overlapping the one before it so that no load reaches
            // past either name.
            var i = 0
            while i < count &- 8 {
                if lowercasedWord(SWAR.load(bytes, start &+ i)) != SWAR.load(literal, i) { return false }
                i &+= 8
            }
            return lowercasedWord(SWAR.load(bytes, start &+ count &- 8)) == SWAR.load(literal, count &- 8)
        }
    }

    /// `word` with every ASCII uppercase letter made lowercase and every other byte unchanged:
    /// the high bit marks the bytes from 'A' and those past 'Z' (computed on the low seven bits,
    /// so no carry crosses a byte), and 0x20 is added where a byte is the first and not the second.
    @inline(__always)
    static func lowercasedWord(_ word: UInt64) -> UInt64 {
        let highs: UInt64 = 0x8080_8080_8080_8080
        let low7 = word & ~highs
        let fromA = low7 &+ 0x3F3F_3F3F_3F3F_3F3F
        let pastZ = low7 &+ 0x2525_2525_2525_2525
        let upper = fromA & ~pastZ & ~word & highs
        return word | (upper &>> 2)
    }

    /// Case-insensitive comparison of two ranges of the same buffer.
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        var i = 0
        while i < a.count {
            if ByteClass.lowercased(bytes[a.lowerBound + i]) != ByteClass.lowercased(bytes[b.lowerBound + i]) {
                return false
            }
            i += 1
        }
        return true
    }
}

/// Whole-word comparison of short names. Up to eight bytes are loaded as one
/// little-endian integer and compared with a constant, instead of a byte loop.
///
/// Case folding ORs 0x20 into every byte. That is exact for the literals used
/// here, which contain only lowercase letters and '-': a folded byte equals a
/// letter only if it was that letter in either case, and equals '-' (0x2D) only
/// if it was '-' or CR, and a CR never occurs inside a validated name.
enum WordMatch {
    @inline(__always)
    private static func mask(_ count: Int) -> UInt64 {
        count >= 8 ? ~0 : (1 &<< (UInt64(count) &* 8)) &- 1
    }

    /// The `count` (1...8) bytes at `offset`, as a little-endian word with the
    /// bytes past `count` zeroed. Never reads outside `bytes`.
    @inline(__always)
    static func load(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> UInt64 {
        if offset &+ 8 <= bytes.count {
            return SWAR.load(bytes, offset) & mask(count)
        }
        var word: UInt64 = 0
        var i = 0
        while i < count {
            word |= UInt64(bytes[offset &+ i]) &<< (UInt64(i) &* 8)
            i &+= 1
        }
        return word
    }

    /// Like `load`, with ASCII letters folded to lowercase (see above for
    /// when this is exact).
    @inline(__always)
    static func folded(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> UInt64 {
        load(bytes, offset, count) | (0x2020_2020_2020_2020 & mask(count))
    }
}

/// The field-line grammar for bytes that come from elsewhere than the parser (a record read
/// back from the store) and are written to clients as they are.
public enum FieldSyntax {
    /// field-name = token (RFC 9110 §5.1).
    public static func isName(_ bytes: UnsafeRawBufferPointer) -> Bool {
        !bytes.isEmpty && bytes.allSatisfy(ByteClass.isTchar)
    }

    /// Every byte a field-value may hold (RFC 9110 §5.5): no CR, LF, NUL or other control.
    public static func isValue(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.allSatisfy(ByteClass.isFieldValueByte)
    }
}
