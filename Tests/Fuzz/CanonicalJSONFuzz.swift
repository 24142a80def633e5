// libFuzzer target `canonical-json`: Fingerprinter.canonicalJSON and the JSON body fingerprint
// (Sources/Idempotency).
//
// Invariants:
// - canonical JSON is a fixed point: its canonical form is itself, so it parses, and it parses
//   to the same value as the input (members, strings by scalars, numbers by canonical text);
// - it is valid UTF-8 and contains no whitespace outside strings;
// - it composes: the input inside an array or as an object member canonicalises to the
//   canonical form inside the same array or member (unless that crosses the nesting limit);
// - with `ignore_fields` taken from the document itself the result is still canonical, and the
//   body and its canonical form reduce to the same bytes (pointers are not applied again to
//   the result: removing array elements shifts the indices after them);
// - the fingerprint of a JSON body uses the canonical form when there is one and the raw bytes
//   when there is none, and the body and its canonical form have the same fingerprint.

private func parsed(_ bytes: [UInt8]) -> JSONValue? {
    try? JSONParser.parse(bytes)
}

private func depth(_ value: JSONValue) -> Int {
    switch value {
    case .object(let members): return 1 + (members.map { depth($0.value) }.max() ?? 0)
    case .array(let elements): return 1 + (elements.map(depth).max() ?? 0)
    default: return 0
    }
}

/// A pointer (as tokens) to some location in `value`, chosen by `rng`; member names and array
/// indices are those of the document, with an occasional one that names nothing.
private func randomPath(in value: JSONValue, _ rng: inout SplitMix64) -> [String] {
    var tokens: [String] = []
    var current = value
    while tokens.count < 8 {
        switch current {
        case .object(let members) where !members.isEmpty:
            let member = members[Int(rng.next() % UInt64(members.count))]
            tokens.append(member.key)
            current = member.value
        case .array(let elements) where !elements.isEmpty:
            let index = Int(rng.next() % UInt64(elements.count))
            tokens.append(String(index))
            current = elements[index]
        default:
            if tokens.isEmpty || rng.next() % 4 == 0 { tokens.append(rng.next() % 2 == 0 ? "missing" : "0") }
            return tokens
        }
        if rng.next() % 3 == 0 { return tokens }
    }
    return tokens
}

/// True when no byte outside a string is whitespace (canonical form has none).
private func hasNoInsignificantWhitespace(_ bytes: [UInt8]) -> Bool {
    var inString = false
    var escape = false
    for b in bytes {
        if inString {
            if escape { escape = false } else if b == UInt8(ascii: "\\") { escape = true } else if b == UInt8(ascii: "\"") { inString = false }
        } else if b == UInt8(ascii: "\"") {
            inString = true
        } else if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D {
            return false
        }
    }
    return true
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let body = Array(input)
    // Built only when a check fails.
    var show: String { escaped(body) }
    let canonical = Fingerprinter.canonicalJSON(body)

    // The fingerprint falls back to the raw body exactly when there is no canonical form.
    let policy = FingerprintPolicy(headers: [], body: .json)
    let contribution = Fingerprinter.bodyContribution(body, contentType: Array("application/json".utf8)[...], policy: policy)
    if let canonical {
        fuzzCheck(contribution.0 == Fingerprinter.jsonBodyTag && contribution.1 == canonical,
                  "the body contributes \(contribution.0) \(escaped(contribution.1)), not its canonical form; input \(show)")
    } else {
        fuzzCheck(contribution.0 == Fingerprinter.rawBodyTag && contribution.1 == body,
                  "a body without canonical form contributes \(contribution.0) \(escaped(contribution.1)); input \(show)")
    }
    let headers = [(name: "Content-Type", value: "application/json")]
    let print = Fingerprinter.fingerprint(method: "POST", target: "/v1/x", headers: headers, body: body, policy: policy)
    fuzzCheck(print.count == 32, "the fingerprint has \(print.count) bytes; input \(show)")

    guard let canonical else { return 0 }
    var text: String { escaped(canonical) }
    fuzzCheck(String(validating: canonical, as: UTF8.self) != nil, "canonical form \(text) is not UTF-8; input \(show)")
    fuzzCheck(hasNoInsignificantWhitespace(canonical), "canonical form \(text) has whitespace; input \(show)")
    let again = Fingerprinter.canonicalJSON(canonical)
    fuzzCheck(again == canonical, "canonical form \(text) canonicalises to \(again.map(escaped) ?? "nil"); input \(show)")
    guard let value = parsed(body), let reparsed = parsed(canonical) else {
        fuzzFail("input or canonical form \(text) does not parse; input \(show)")
    }
    fuzzCheck(value == reparsed, "canonical form \(text) parses to a different value; input \(show)")
    fuzzCheck(Fingerprinter.fingerprint(method: "POST", target: "/v1/x", headers: headers, body: canonical, policy: policy) == print,
              "the canonical form \(text) has another fingerprint than the body; input \(show)")

    // Composition with a surrounding array and object.
    let nested = depth(value) >= JSONParser.maxDepth
    for (open, close) in [(Array("[".utf8), Array("]".utf8)), (Array("{\"k\":".utf8), Array("}".utf8))] {
        let wrapped = Fingerprinter.canonicalJSON(open + body + close)
        if nested {
            fuzzCheck(wrapped == nil, "wrapped in \(escaped(open)) past the nesting limit, still accepted; input \(show)")
        } else {
            fuzzCheck(wrapped == open + canonical + close,
                      "wrapped in \(escaped(open)) it canonicalises to \(wrapped.map(escaped) ?? "nil"), not around \(text); input \(show)")
        }
    }

    // Ignored fields: the reduced form is canonical, and reducing the canonical form gives it too.
    var rng = SplitMix64(hashing: input)
    let paths = [randomPath(in: value, &rng), randomPath(in: value, &rng)]
    guard let reduced = Fingerprinter.canonicalJSON(body, ignoring: paths) else {
        fuzzFail("with ignored \(paths) the body has no canonical form; input \(show)")
    }
    var reducedText: String { escaped(reduced) }
    fuzzCheck(Fingerprinter.canonicalJSON(reduced) == reduced, "with ignored \(paths): \(reducedText) is not canonical; input \(show)")
    fuzzCheck(Fingerprinter.canonicalJSON(canonical, ignoring: paths) == reduced,
              "with ignored \(paths) the canonical form reduces differently from the body; input \(show)")
    return 0
}
