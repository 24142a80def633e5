/// A parsed JSON value (RFC 8259), shaped for canonical serialisation.
///
/// - Object members are kept sorted by key in UTF-16 code-unit order, the
///   order RFC 8785 (JCS) §3.2.3 uses, and keys are unique (the parser
///   refuses duplicates). Keys are compared by code units, never with
///   `String ==`, because Swift's string equality is Unicode canonical
///   equivalence: `"\u00e9"` and `"e\u0301"` are different JSON keys.
/// - Numbers hold their canonical text (see `JSONNumber`), so no precision is
///   lost: two large integer IDs that differ in the last digit stay different.
indirect enum JSONValue {
    case object([JSONMember])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null
}

/// One object member. Kept as a struct rather than a tuple so the recursive
/// enum stays simple for the type checker.
struct JSONMember {
    var key: String
    var value: JSONValue
}

extension JSONValue: Equatable {
    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy {
                $0.key.utf16.elementsEqual($1.key.utf16) && $0.value == $1.value
            }
        case (.array(let a), .array(let b)): return a == b
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.number(let a), .number(let b)): return a.utf8.elementsEqual(b.utf8)
        case (.bool(let a), .bool(let b)): return a == b
        case (.null, .null): return true
        default: return false
        }
    }
}

extension JSONValue {

    /// The key order used for objects: UTF-16 code units, as in RFC 8785.
    static func keyPrecedes(_ a: String, _ b: String) -> Bool {
        a.utf16.lexicographicallyPrecedes(b.utf16)
    }

    static func keysEqual(_ a: String, _ b: String) -> Bool {
        a.utf16.elementsEqual(b.utf16)
    }

    /// Canonical UTF-8 serialisation: members in key order, no insignificant
    /// whitespace (RFC 8259 §2 allows it, so it carries no meaning), strings
    /// escaped as `writeString` describes, numbers in their canonical text.
    func canonicalBytes() -> [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    func write(into out: inout [UInt8]) {
        switch self {
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                element.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .string(let s):
            Self.writeString(s, into: &out)
        case .number(let text):
            out.append(contentsOf: text.utf8)
        case .bool(let b):
            out.append(contentsOf: (b ? "true" : "false").utf8)
        case .null:
            out.append(contentsOf: "null".utf8)
        }
    }

    /// Minimal, deterministic escaping, the rules of RFC 8785 §3.2.2.2:
    /// `"` and `\` are escaped; U+0008, U+0009, U+000A, U+000C, U+000D use
    /// their two-character forms; other controls below U+0020 use `\u00xx`
    /// with lowercase hex; everything else, including `/`, U+007F and all
    /// non-ASCII characters, is written as literal UTF-8 (RFC 8259 §7 only
    /// requires escaping quote, backslash and the controls).
    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
