/// Builds raw test input from a string, expanding `\xHH` escapes to single
/// bytes so that fixtures can contain obs-text and stray bytes that a Swift
/// string literal would otherwise encode as multi-byte UTF-8.
func raw(_ text: String) -> [UInt8] {
    let source = Array(text.utf8)
    var out: [UInt8] = []
    out.reserveCapacity(source.count)
    var i = 0
    while i < source.count {
        if source[i] == 0x5C, i + 3 < source.count, source[i + 1] == 0x78,
           let hi = hexNibble(source[i + 2]), let lo = hexNibble(source[i + 3]) {
            out.append(hi << 4 | lo)
            i += 4
        } else {
            out.append(source[i])
            i += 1
        }
    }
    return out
}

private func hexNibble(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: return b - 0x30
    case 0x41...0x46: return b - 0x41 + 10
    case 0x61...0x66: return b - 0x61 + 10
    default: return nil
    }
}

/// Decodes bytes for readable test expectations; invalid UTF-8 becomes U+FFFD.
func text(_ bytes: some Sequence<UInt8>) -> String {
    String(decoding: Array(bytes), as: UTF8.self)
}

func text(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
    String(decoding: UnsafeRawBufferPointer(rebasing: buffer[range]), as: UTF8.self)
}
