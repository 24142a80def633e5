/// Appending functions for the output buffers. None of them allocate beyond the
/// growth of the buffer itself: numbers are written digit by digit instead of
/// going through `String(n)`.
extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendBytes(_ source: UnsafeRawBufferPointer, _ range: Range<Int>) {
        guard !range.isEmpty else { return }
        UnsafeRawBufferPointer(rebasing: source[range]).withMemoryRebound(to: UInt8.self) { append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func appendBytes(_ source: UnsafeRawBufferPointer) {
        guard source.count > 0 else { return }
        source.withMemoryRebound(to: UInt8.self) { append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func appendLiteral(_ literal: StaticString) {
        literal.withUTF8Buffer { append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func appendString(_ string: String) {
        // Through the contiguous UTF-8 bytes: one copy, not an iteration of the UTF-8 view.
        var string = string
        string.withUTF8 { append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func appendCRLF() {
        append(ASCII.cr)
        append(ASCII.lf)
    }

    mutating func appendDecimal(_ value: UInt64) {
        // Digits are produced last to first into a stack buffer and appended at once: dividing
        // by the constant 10 compiles to a multiplication, where dividing by a running power of
        // ten took a hardware division per step (two per digit).
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for UInt64.max's 20 digits
        Swift.withUnsafeMutableBytes(of: &digits) { buffer in
            var index = buffer.count
            var rest = value
            repeat {
                index &-= 1
                buffer[index] = UInt8(truncatingIfNeeded: rest % 10) &+ 0x30
                rest /= 10
            } while rest > 0
            appendBytes(UnsafeRawBufferPointer(rebasing: buffer[index...]))
        }
    }

    /// Lowercase hexadecimal without leading zeros, as chunk sizes are usually
    /// written (RFC 9112 §7.1 accepts either case).
    mutating func appendHex(_ value: UInt64) {
        var shift: UInt64 = 60
        while shift > 0 && (value >> shift) & 0xF == 0 { shift -= 4 }
        while true {
            let digit = UInt8(truncatingIfNeeded: (value >> shift) & 0xF)
            append(digit < 10 ? digit &+ 0x30 : digit &+ 0x57)
            if shift == 0 { break }
            shift -= 4
        }
    }

    mutating func appendField(_ name: String, _ value: String) {
        appendString(name)
        append(ASCII.colon)
        append(ASCII.sp)
        appendString(value)
        appendCRLF()
    }

    /// Writes the framing field for a re-framed message. `.none` and
    /// `.untilClose` need none: the first has no body and the second ends when
    /// the connection closes.
    mutating func appendFraming(_ framing: BodyFraming) {
        switch framing {
        case .contentLength(let length):
            appendLiteral("Content-Length: ")
            appendDecimal(length)
            appendCRLF()
        case .chunked:
            appendLiteral("Transfer-Encoding: chunked\r\n")
        case .none, .untilClose:
            break
        }
    }
}
