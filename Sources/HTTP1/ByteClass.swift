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

    @inline(__always)
    static func isTchar(_ b: UInt8) -> Bool {
        if b < 64 { return (tcharLow >> UInt64(b)) & 1 != 0 }
        if b < 128 { return (tcharHigh >> UInt64(b &- 64)) & 1 != 0 }
        return false
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

    /// True when some byte of `x` is below `n` (n ≤ 128). False positives are
    /// impossible for the question "is there any such byte"; only which byte is
    /// flagged can be imprecise, which is why callers fall back to a byte loop.
    @inline(__always)
    static func hasByteLess(than n: UInt8, in x: UInt64) -> Bool {
        (x &- ones &* UInt64(n)) & ~x & highs != 0
    }

    /// True when some byte of `x` equals `b`.
    @inline(__always)
    static func hasByte(_ b: UInt8, in x: UInt64) -> Bool {
        hasByteLess(than: 1, in: x ^ (ones &* UInt64(b)))
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
        var name = lowercase
        return name.withUTF8 { lit in
            guard lit.count == range.count else { return false }
            let s = range.lowerBound
            for i in 0..<lit.count where ByteClass.lowercased(bytes[s + i]) != lit[i] { return false }
            return true
        }
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
