/// Why a body is not (acceptable) JSON. Only used to decide the fingerprint's
/// fallback to raw bytes and to make tests precise; never shown to clients.
struct JSONParseError: Error, Equatable {
    var reason: String
    var offset: Int
}

/// A small strict JSON parser (RFC 8259) for request fingerprinting.
///
/// Strict on purpose: a canonical form is only meaningful for documents that
/// every reasonable receiver reads the same way. So it refuses what RFC 8259
/// leaves ambiguous or implementation-defined, and the fingerprint then falls
/// back to the raw bytes, which is still deterministic:
/// - duplicate object keys (§4: "the behavior of software that receives such
///   an object is unpredictable");
/// - strings that are not valid UTF-8 (§8.1) and unpaired surrogate escapes
///   (§8.2);
/// - a byte order mark (§8.1 lets parsers ignore it; refusing is simpler);
/// - nesting deeper than `maxDepth`, and exponents too large to normalise
///   (§9 allows limits on nesting depth and on the range of numbers).
struct JSONParser {
    /// Deepest nesting of arrays and objects accepted.
    static let maxDepth = 64

    static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        var result: Result<JSONValue, JSONParseError> = .failure(JSONParseError(reason: "empty", offset: 0))
        bytes.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(input: buffer)
            result = Result { () throws(JSONParseError) -> JSONValue in try parser.parseDocument() }
        }
        return try result.get()
    }

    private let input: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0

    private init(input: UnsafeBufferPointer<UInt8>) {
        self.input = input
    }

    private mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard index == input.count else { throw fail("trailing characters after the JSON value") }
        return value
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard index < input.count else { throw fail("unexpected end of input") }
        switch input[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character")
        }
    }

    private mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth)") }
        index += 1
        skipWhitespace()
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        defer { depth -= 1 }
        var members: [JSONMember] = []
        if peek() == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            let key = try parseString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            members.append(JSONMember(key: key, value: value))
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case UInt8(ascii: "}"):
                index += 1
                members.sort { JSONValue.keyPrecedes($0.key, $1.key) }
                for i in members.indices.dropFirst() where JSONValue.keysEqual(members[i - 1].key, members[i].key) {
                    throw fail("duplicate member name")
                }
                return .object(members)
            default:
                throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        defer { depth -= 1 }
        var elements: [JSONValue] = []
        if peek() == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue())
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            default:
                throw fail("expected ',' or ']'")
            }
        }
    }

    /// RFC 8259 §7. Escapes are decoded; `\uXXXX` pairs for characters
    /// outside the BMP are combined (§7: "a 12-character sequence, encoding
    /// the UTF-16 surrogate pair").
    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1  // opening quote
        // Fast path: most strings have no escapes and can be validated and
        // copied straight out of the input.
        var end = index
        while end < input.count, input[end] != UInt8(ascii: "\""), input[end] != UInt8(ascii: "\\"), input[end] >= 0x20 {
            end += 1
        }
        if end < input.count, input[end] == UInt8(ascii: "\"") {
            guard let string = String(validating: UnsafeBufferPointer(rebasing: input[index..<end]), as: UTF8.self)
            else { throw fail("string is not valid UTF-8") }
            index = end + 1
            return string
        }
        var bytes: [UInt8] = Array(input[index..<end])
        index = end
        while true {
            guard index < input.count else { throw fail("unterminated string") }
            let c = input[index]
            index += 1
            switch c {
            case UInt8(ascii: "\""):
                // Escapes only ever add complete UTF-8 sequences, so any
                // invalid raw byte remains invalid in the combined buffer.
                guard let string = String(validating: bytes, as: UTF8.self) else {
                    throw fail("string is not valid UTF-8")
                }
                return string
            case UInt8(ascii: "\\"):
                try parseEscape(into: &bytes)
            case 0x00..<0x20:
                throw fail("unescaped control character in string")
            default:
                bytes.append(c)
            }
        }
    }

    private mutating func parseEscape(into bytes: inout [UInt8]) throws(JSONParseError) {
        guard index < input.count else { throw fail("unterminated escape") }
        let c = input[index]
        index += 1
        switch c {
        case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
        case UInt8(ascii: "/"): bytes.append(UInt8(ascii: "/"))
        case UInt8(ascii: "b"): bytes.append(0x08)
        case UInt8(ascii: "f"): bytes.append(0x0C)
        case UInt8(ascii: "n"): bytes.append(0x0A)
        case UInt8(ascii: "r"): bytes.append(0x0D)
        case UInt8(ascii: "t"): bytes.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try parseHex4())
            if (0xD800...0xDBFF).contains(scalar) {
                guard index + 1 < input.count, input[index] == UInt8(ascii: "\\"), input[index + 1] == UInt8(ascii: "u")
                else { throw fail("unpaired high surrogate") }
                index += 2
                let low = UInt32(try parseHex4())
                guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired high surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw fail("unpaired low surrogate")
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid code point") }
            bytes.append(contentsOf: UTF8.encode(unicode)!)
        default:
            throw fail("invalid escape")
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt16 {
        guard index + 4 <= input.count else { throw fail("truncated \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let c = input[index]
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: throw fail("invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    /// RFC 8259 §6: `[ minus ] int [ frac ] [ exp ]`, with no leading zeros,
    /// no leading `+`, and digits required after `.` and after `e`.
    private mutating func parseNumber() throws(JSONParseError) -> String {
        let negative = peek() == UInt8(ascii: "-")
        if negative { index += 1 }
        let intStart = index
        if peek() == UInt8(ascii: "0") {
            index += 1
        } else {
            guard skipDigits() > 0 else { throw fail("expected a digit") }
        }
        let integer = input[intStart..<index]
        var fraction = input[index..<index]
        if peek() == UInt8(ascii: ".") {
            index += 1
            let start = index
            guard skipDigits() > 0 else { throw fail("expected a digit after '.'") }
            fraction = input[start..<index]
        }
        var exponentNegative = false
        var exponent = input[index..<index]
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") {
                exponentNegative = peek() == UInt8(ascii: "-")
                index += 1
            }
            let start = index
            guard skipDigits() > 0 else { throw fail("expected a digit in the exponent") }
            exponent = input[start..<index]
        }
        guard let text = JSONNumber.canonical(
            negative: negative, integer: integer, fraction: fraction,
            exponentNegative: exponentNegative, exponent: exponent)
        else { throw fail("number exponent out of range") }
        return text
    }

    private mutating func skipDigits() -> Int {
        let start = index
        while index < input.count, input[index] >= UInt8(ascii: "0"), input[index] <= UInt8(ascii: "9") {
            index += 1
        }
        return index - start
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= input.count else { throw fail("unexpected end of input") }
        let matches = literal.withUTF8Buffer { expected in
            expected.elementsEqual(input[index..<index + count])
        }
        guard matches else { throw fail("invalid literal") }
        index += count
    }

    /// RFC 8259 §2: `ws = *( %x20 / %x09 / %x0A / %x0D )`.
    private mutating func skipWhitespace() {
        while index < input.count {
            switch input[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func peek() -> UInt8? {
        index < input.count ? input[index] : nil
    }

    private func fail(_ reason: String) -> JSONParseError {
        JSONParseError(reason: reason, offset: index)
    }
}
