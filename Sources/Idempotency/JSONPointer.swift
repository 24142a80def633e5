/// A JSON Pointer (RFC 6901), as used by `fingerprint.ignore_fields`.
public struct JSONPointer: Sendable, Equatable, CustomStringConvertible {
    /// Why a pointer string is malformed; worded for the operator who wrote
    /// the configuration.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public let pointer: String
        public let reason: String
        public var description: String { "invalid JSON Pointer \"\(pointer)\": \(reason)" }
    }

    /// Unescaped reference tokens, outermost first.
    public let tokens: [String]
    /// The pointer as written.
    public let description: String

    /// RFC 6901 §3: `json-pointer = *( "/" reference-token )`, where `~0`
    /// stands for `~` and `~1` for `/`; any other `~` sequence is an error
    /// (§3, §7). §4: `~1` is decoded before `~0`, so `~01` means `~1`
    /// literally; decoding left to right in one pass gives the same result.
    ///
    /// The empty pointer refers to the whole document, which is not a member
    /// and cannot be ignored, so it is refused here.
    public init(_ text: String) throws(SyntaxError) {
        description = text
        guard !text.isEmpty else {
            throw SyntaxError(pointer: text, reason: "the empty pointer names the whole document, not a field")
        }
        guard text.utf8.first == UInt8(ascii: "/") else {
            throw SyntaxError(pointer: text, reason: "a pointer must start with \"/\"")
        }
        var tokens: [String] = []
        for raw in text.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            var token: [UInt8] = []
            var iterator = raw.makeIterator()
            while let c = iterator.next() {
                guard c == UInt8(ascii: "~") else {
                    token.append(c)
                    continue
                }
                switch iterator.next() {
                case UInt8(ascii: "0"): token.append(UInt8(ascii: "~"))
                case UInt8(ascii: "1"): token.append(UInt8(ascii: "/"))
                default: throw SyntaxError(pointer: text, reason: "\"~\" must be followed by 0 or 1")
                }
            }
            tokens.append(String(decoding: token, as: UTF8.self))
        }
        self.tokens = tokens
    }

    /// RFC 6901 §4: an array index is `0` or digits without a leading zero;
    /// `-` (past the end) and anything else never match an element.
    static func arrayIndex(_ token: String) -> Int? {
        let utf8 = token.utf8
        guard let first = utf8.first, utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        if first == UInt8(ascii: "0") && utf8.count > 1 { return nil }
        guard utf8.count <= 18 else { return nil }  // beyond any real array
        return Int(token)
    }
}

extension JSONValue {
    /// Removes every location named by `pointers`. All pointers are resolved
    /// against the original document, so the result does not depend on
    /// their order even when several remove elements of one array (array
    /// indices do not shift between removals). Pointers that name nothing
    /// are ignored. Object member names match by exact code units.
    func removing(_ pointers: [[String]]) -> JSONValue {
        let live = pointers.filter { !$0.isEmpty }
        guard !live.isEmpty else { return self }
        switch self {
        case .object(let members):
            var kept: [JSONMember] = []
            kept.reserveCapacity(members.count)
            for member in members {
                let matching = live.filter { JSONValue.keysEqual($0[0], member.key) }
                if matching.contains(where: { $0.count == 1 }) { continue }
                let deeper = matching.map { Array($0.dropFirst()) }
                kept.append(JSONMember(key: member.key, value: member.value.removing(deeper)))
            }
            return .object(kept)
        case .array(let elements):
            var kept: [JSONValue] = []
            kept.reserveCapacity(elements.count)
            for (position, element) in elements.enumerated() {
                let matching = live.filter { JSONPointer.arrayIndex($0[0]) == position }
                if matching.contains(where: { $0.count == 1 }) { continue }
                let deeper = matching.map { Array($0.dropFirst()) }
                kept.append(element.removing(deeper))
            }
            return .array(kept)
        default:
            return self
        }
    }
}
