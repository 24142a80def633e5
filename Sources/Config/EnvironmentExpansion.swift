/// `${VAR}` and `${VAR:-default}` expansion inside one scalar value.
///
/// - `${VAR}` is the variable's value; unset is an error (empty is allowed).
/// - `${VAR:-default}` is the default when VAR is unset or empty.
/// - `$${` is a literal `${`; any other `$` is kept as written.
/// Expansion never creates YAML structure: the result is the scalar's text.
enum EnvironmentExpansion {
    enum Failure: Error, Equatable {
        case unset(name: String)
        case malformed(reference: String, reason: String)
    }

    static func expand(_ text: String, environment: [String: String]) throws(Failure) -> String {
        guard text.utf8.contains(UInt8(ascii: "$")) else { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "$") else {
                out.append(byte)
                index += 1
                continue
            }
            let next = index + 1 < bytes.count ? bytes[index + 1] : 0
            if next == UInt8(ascii: "$"), index + 2 < bytes.count, bytes[index + 2] == UInt8(ascii: "{") {
                out.append(contentsOf: "${".utf8)
                index += 3
                continue
            }
            guard next == UInt8(ascii: "{") else {
                out.append(byte)
                index += 1
                continue
            }
            guard let close = bytes[(index + 2)...].firstIndex(of: UInt8(ascii: "}")) else {
                let reference = String(decoding: bytes[index...], as: UTF8.self)
                throw .malformed(reference: reference, reason: "missing closing }")
            }
            let reference = String(decoding: bytes[index...close], as: UTF8.self)
            let inner = bytes[(index + 2)..<close]
            let nameEnd = inner.firstIndex(where: { !isNameByte($0) }) ?? inner.endIndex
            let name = String(decoding: inner[inner.startIndex..<nameEnd], as: UTF8.self)
            guard let first = name.utf8.first, !ValueParser.isDigit(first) else {
                throw .malformed(reference: reference, reason: "expected a variable name of letters, digits and _")
            }
            let rest = inner[nameEnd...]
            let value: String
            if rest.isEmpty {
                guard let set = environment[name] else { throw .unset(name: name) }
                value = set
            } else if rest.starts(with: ":-".utf8) {
                let fallback = String(decoding: rest.dropFirst(2), as: UTF8.self)
                if let set = environment[name], !set.isEmpty {
                    value = set
                } else {
                    value = fallback
                }
            } else {
                throw .malformed(reference: reference, reason: "use ${NAME} or ${NAME:-default}")
            }
            out.append(contentsOf: value.utf8)
            index = close + 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        ValueParser.isDigit(byte) || ValueParser.isLetter(byte) || byte == UInt8(ascii: "_")
    }
}
