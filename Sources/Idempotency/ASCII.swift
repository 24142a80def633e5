/// ASCII-only case folding for HTTP field names.
///
/// Field names are tokens (RFC 9110 §5.1) and compare case-insensitively;
/// only A–Z fold. Full Unicode case mapping (`String.lowercased()`) could
/// make a non-token byte sequence equal to a real field name, so it is not
/// used.
enum ASCII {
    static func lowercased(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return s }
        return String(decoding: s.utf8.map(fold), as: UTF8.self)
    }

    static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && a.utf8.elementsEqual(b.utf8) { fold($0) == fold($1) }
    }

    static func equalsIgnoringCase(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && a.elementsEqual(b) { fold($0) == fold($1) }
    }

    static func equalsIgnoringCase(_ a: ArraySlice<UInt8>, _ b: String) -> Bool {
        a.count == b.utf8.count && a.elementsEqual(b.utf8) { fold($0) == fold($1) }
    }

    static func equalsIgnoringCase(_ a: [UInt8], _ b: String) -> Bool {
        a.count == b.utf8.count && a.elementsEqual(b.utf8) { fold($0) == fold($1) }
    }

    static func equalsIgnoringCase(_ a: UnsafeRawBufferPointer, _ b: String) -> Bool {
        guard a.count == b.utf8.count else { return false }
        var b = b  // native strings lend their UTF-8 without a copy
        return b.withUTF8 { equalsIgnoringCase(a, UnsafeRawBufferPointer($0)) }
    }

    static func equalsIgnoringCase(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for index in 0..<a.count where fold(a[index]) != fold(b[index]) { return false }
        return true
    }

    static func fold(_ c: UInt8) -> UInt8 {
        c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c
    }
}
