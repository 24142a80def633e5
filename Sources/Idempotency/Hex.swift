/// Lowercase hexadecimal encoding (RFC 4648 §8 "base16", lowercase alphabet).
///
/// Storage keys embed a hex SHA-256 inside a Redis Cluster hash tag, so the
/// alphabet must never contain `{` or `}`; lowercase is chosen so the same
/// digest always renders to the same key.
public enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        // Contiguous bytes (every caller's digest) are written straight into the string.
        if let encoded = bytes.withContiguousStorageIfAvailable({ buffer in
            String(unsafeUninitializedCapacity: buffer.count * 2) { out in
                write(UnsafeRawBufferPointer(buffer), to: out.baseAddress!)
                return buffer.count * 2
            }
        }) {
            return encoded
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes the `2 * bytes.count` hex digits of `bytes` to `out`.
    @inline(__always)
    static func write(_ bytes: UnsafeRawBufferPointer, to out: UnsafeMutablePointer<UInt8>) {
        let alphabet: StaticString = "0123456789abcdef"
        let table = alphabet.utf8Start
        var i = 0
        for byte in bytes {
            out[i] = table[Int(byte >> 4)]
            out[i &+ 1] = table[Int(byte & 0x0F)]
            i &+= 2
        }
    }

    /// Decodes upper- or lowercase hex; `nil` on odd length or a non-hex digit.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = digitValue(utf8[index]), let low = digitValue(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    /// The value of one hex digit, either case; `nil` for any other byte.
    public static func digitValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
