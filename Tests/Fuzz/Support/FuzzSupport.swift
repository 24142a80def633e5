import Glibc

// Helpers shared by every libFuzzer target in Tests/Fuzz. scripts/fuzz compiles this file
// together with one target file and the sources of the module under test, so nothing here
// may depend on a module.

/// Reports a broken invariant and aborts, so libFuzzer saves the input as a crash file.
/// A plain `precondition` would do the same, but the message names what was compared.
func fuzzFail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "\n==fuzz== invariant violated at \(file):\(line): \(message)\n"
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

@inline(__always)
func fuzzCheck(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String,
    file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fuzzFail(message(), file: file, line: line) }
}

/// Shows bytes for a failure message: printable ASCII as is, everything else as `\xHH`.
func escaped(_ bytes: some Sequence<UInt8>) -> String {
    var out = ""
    for b in bytes {
        switch b {
        case 0x0D: out += "\\r"
        case 0x0A: out += "\\n"
        case 0x20...0x7E where b != 0x5C: out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            let hex = Array("0123456789abcdef".unicodeScalars)
            out += "\\x"
            out.unicodeScalars.append(hex[Int(b >> 4)])
            out.unicodeScalars.append(hex[Int(b & 0xF)])
        }
    }
    return out
}

/// SplitMix64 (`Tests/TestRandom/SeededRandom.swift`, compiled into every harness),
/// seeded from the input itself so that a crash file reproduces exactly.
typealias SplitMix64 = SeededRandom

extension SeededRandom {
    /// FNV-1a of `bytes`, mixed with `salt` so that several generators can be drawn from one input.
    init(hashing bytes: UnsafeRawBufferPointer, salt: UInt64 = 0) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ salt
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        self.init(state: h)
    }

    /// A value in `1...bound` (bound >= 1).
    mutating func upTo(_ bound: Int) -> Int {
        Int(next() % UInt64(bound)) + 1
    }
}

/// The ends of the pieces an input of `count` bytes is delivered in: strictly increasing,
/// the last one `count`. An empty input is one empty piece.
enum Cuts {
    static func whole(_ count: Int) -> [Int] { [count] }

    static func byteByByte(_ count: Int) -> [Int] { count == 0 ? [0] : Array(1...count) }

    /// Two pieces split at `offset` (clamped into 1..<count), or one piece for short inputs.
    static func split(_ count: Int, at offset: Int) -> [Int] {
        guard count >= 2 else { return [count] }
        return [1 + offset % (count - 1), count]
    }

    /// Random piece sizes, mostly small (as TCP segments of a slow or hostile peer are) with
    /// an occasional large one.
    static func random(_ count: Int, _ rng: inout SplitMix64) -> [Int] {
        guard count > 0 else { return [0] }
        var cuts: [Int] = []
        var end = 0
        while end < count {
            let size = rng.next() % 4 == 0 ? rng.upTo(count) : rng.upTo(8)
            end = min(count, end + size)
            cuts.append(end)
        }
        return cuts
    }
}

/// Runs `body` on a copy of `bytes[0..<count]` in an allocation of exactly `count` bytes, so
/// that AddressSanitizer reports any read past the bytes a parser was given (the fuzzer's own
/// buffer continues past a prefix and would hide such a read).
func withExactCopy<R, E: Error>(
    _ bytes: UnsafeRawBufferPointer,
    count: Int,
    _ body: (UnsafeRawBufferPointer) throws(E) -> R
) throws(E) -> R {
    precondition(count <= bytes.count)
    let copy = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 1)
    defer { copy.deallocate() }
    if count > 0, let base = bytes.baseAddress { copy.copyMemory(from: base, byteCount: count) }
    return try body(UnsafeRawBufferPointer(start: copy, count: count))
}
