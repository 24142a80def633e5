/// Canonical text for JSON numbers, computed exactly on the decimal digits.
///
/// RFC 8785 (JCS) canonicalises numbers through IEEE 754 doubles. That is
/// unsafe for fingerprints: two integer IDs above 2^53 that differ in their
/// last digit become the same double, so two different requests would get
/// the same fingerprint and the second would be answered with the first's
/// stored response. Instead the number's exact decimal value is normalised:
///
/// - The value is reduced to `sign × D × 10^e` with `D` free of leading and
///   trailing zeros. `1`, `1.0`, `1.000`, `10e-1`, `0.1E1` and `1E0` all
///   become `1`; `-0`, `0.0` and `0e7` become `0`.
/// - It is rendered like ECMAScript's Number-to-String (ECMA-262
///   §6.1.6.1.20, the form JCS also emits) but on the exact digits: plain
///   integers up to 21 digits, plain decimals when the point falls inside or
///   up to six zeros after `0.`, otherwise `d.ddde±x` with a lowercase `e`
///   and an explicit exponent sign.
///
/// Exponents written with more than 15 significant digits are refused
/// (RFC 8259 §9 lets a parser limit the range of numbers), and so are numbers
/// whose canonical exponent would need more than 15 digits, so that every
/// canonical form parses back to itself; such a body then fingerprints as raw
/// bytes.
enum JSONNumber {
    static let maxExponentDigits = 15
    /// The largest exponent with `maxExponentDigits` digits.
    static let maxExponent = 999_999_999_999_999

    static func canonical(
        negative: Bool,
        integer: Slice<UnsafeBufferPointer<UInt8>>,
        fraction: Slice<UnsafeBufferPointer<UInt8>>,
        exponentNegative: Bool,
        exponent: Slice<UnsafeBufferPointer<UInt8>>
    ) -> String? {
        // Exponent value, bounded so the arithmetic below cannot overflow.
        let exponentDigits = exponent.drop { $0 == UInt8(ascii: "0") }
        guard exponentDigits.count <= maxExponentDigits else { return nil }
        var written = 0
        for digit in exponentDigits { written = written * 10 + Int(digit - UInt8(ascii: "0")) }
        if exponentNegative { written = -written }

        // All significant digits, then strip leading zeros (they carry no
        // value) and trailing zeros (moved into the exponent).
        var digits = Array(integer)
        digits.append(contentsOf: fraction)
        var scale = written - fraction.count
        let leading = digits.prefix { $0 == UInt8(ascii: "0") }.count
        digits.removeFirst(leading)
        if digits.isEmpty { return "0" }
        while digits.last == UInt8(ascii: "0") {
            digits.removeLast()
            scale += 1
        }
        // The exponent `render` writes in `d.ddde±x` form. Digits moved across
        // the point can push it past what the parser reads (`10e999999999999999`
        // is `1e+1000000000000000`), and a canonical form that does not parse
        // would not be canonical: found by Tests/Fuzz canonical-json.
        guard (digits.count + scale - 1).magnitude <= maxExponent else { return nil }
        return render(negative: negative, digits: digits, scale: scale)
    }

    /// Renders `(negative ? -1 : 1) × digits × 10^scale`, `digits` non-empty
    /// with no leading or trailing zeros.
    private static func render(negative: Bool, digits: [UInt8], scale: Int) -> String {
        var out: [UInt8] = negative ? [UInt8(ascii: "-")] : []
        let count = digits.count
        let point = count + scale  // position of the decimal point within `digits`
        if scale >= 0 && point <= 21 {
            out.append(contentsOf: digits)
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: scale))
        } else if scale < 0 && point > 0 {
            out.append(contentsOf: digits[..<point])
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: digits[point...])
        } else if point <= 0 && point > -6 {
            out.append(contentsOf: [UInt8(ascii: "0"), UInt8(ascii: ".")])
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: -point))
            out.append(contentsOf: digits)
        } else {
            out.append(digits[0])
            if count > 1 {
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: digits[1...])
            }
            let magnitude = point - 1
            out.append(UInt8(ascii: "e"))
            out.append(magnitude < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            out.append(contentsOf: String(magnitude.magnitude).utf8)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
