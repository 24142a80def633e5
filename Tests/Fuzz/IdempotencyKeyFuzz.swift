// libFuzzer target `idempotency-key`: IdempotencyKeyParser.parse (Sources/Idempotency).
//
// The input is split at LF into field values (one `Idempotency-Key` field line each; a field
// value can never hold an LF) and parsed under both syntaxes with the default maximum length
// and with a small one taken from the input. Invariants:
// - an accepted key comes from exactly one field line, has 1...maxLength characters, and all of
//   them are printable ASCII (no control characters, nothing that does not survive a header);
// - the key written as an sf-string (quoted, `"` and `\` escaped) parses back to the same key
//   under the strict syntax: what the proxy stores can be sent again by a client;
// - strict accepts nothing lenient refuses, and both agree on quoted values;
// - a lenient unquoted key is exactly the value without its OWS;
// - SP and HTAB around the value change nothing (RFC 9110 §5.5);
// - the maximum length only adds the `tooLong` refusal: any other outcome is the same.

private func serialized(_ key: String) -> [UInt8] {
    var out: [UInt8] = [UInt8(ascii: "\"")]
    for byte in key.utf8 {
        if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
        out.append(byte)
    }
    out.append(UInt8(ascii: "\""))
    return out
}

private func describe(_ values: [ArraySlice<UInt8>]) -> String {
    "[" + values.map { "\"" + escaped($0) + "\"" }.joined(separator: ", ") + "]"
}

private func check(_ values: [ArraySlice<UInt8>], syntax: KeySyntax, maxLength: Int) -> Result<String, KeyError> {
    let result = IdempotencyKeyParser.parse(fieldValues: values, syntax: syntax, maxLength: maxLength)
    // Built only when a check fails: formatting the values on every input would dominate.
    var label: String { "\(syntax), maxLength \(maxLength), values \(describe(values))" }
    guard case .success(let key) = result else { return result }

    fuzzCheck(values.count == 1, "\(label): a key was accepted from \(values.count) field lines")
    let bytes = Array(key.utf8)
    fuzzCheck((1...maxLength).contains(bytes.count) && key.count == bytes.count,
              "\(label): key \"\(escaped(bytes))\" has \(bytes.count) bytes, \(key.count) characters")
    fuzzCheck(bytes.allSatisfy { (0x20...0x7E).contains($0) }, "\(label): key \"\(escaped(bytes))\" has a byte outside printable ASCII")

    let quoted = serialized(key)
    let again = IdempotencyKeyParser.parse(fieldValues: [quoted[...]], syntax: .strict, maxLength: maxLength)
    fuzzCheck(again == .success(key), "\(label): key \"\(escaped(bytes))\" written as \(escaped(quoted)) parses as \(again)")

    let trimmed = IdempotencyKeyParser.trimOWS(values[0])
    if syntax == .lenient, trimmed.first != UInt8(ascii: "\"") {
        fuzzCheck(bytes.elementsEqual(trimmed), "\(label): unquoted key \"\(escaped(bytes))\" is not the trimmed value")
    }
    return result
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let bytes = Array(input)
    let values = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
    var rng = SplitMix64(hashing: input)
    let small = rng.upTo(24)
    var label: String { "values \(describe(values))" }

    for maxLength in [IdempotencyKeyParser.defaultMaxLength, small] {
        let lenient = check(values, syntax: .lenient, maxLength: maxLength)
        let strict = check(values, syntax: .strict, maxLength: maxLength)
        if case .success(let key) = strict {
            fuzzCheck(lenient == .success(key), "\(label), maxLength \(maxLength): strict accepts \(key), lenient gives \(lenient)")
        }
        if values.count == 1, IdempotencyKeyParser.trimOWS(values[0]).first == UInt8(ascii: "\"") {
            fuzzCheck(lenient == strict, "\(label), maxLength \(maxLength): a quoted value gives \(lenient) lenient, \(strict) strict")
        }
        // OWS around the value is not part of it.
        if values.count == 1 {
            let padded = [ArraySlice([0x20, 0x09] + values[0] + [0x09, 0x20])]
            for (syntax, expected) in [(KeySyntax.lenient, lenient), (.strict, strict)] {
                let result = check(padded, syntax: syntax, maxLength: maxLength)
                fuzzCheck(result == expected, "\(label), \(syntax), maxLength \(maxLength): padded with OWS \(result), bare \(expected)")
            }
        }
    }

    // A smaller maximum only turns accepted keys that are too long into `tooLong`.
    for syntax in [KeySyntax.lenient, .strict] {
        let large = IdempotencyKeyParser.parse(fieldValues: values, syntax: syntax, maxLength: IdempotencyKeyParser.defaultMaxLength)
        let limited = IdempotencyKeyParser.parse(fieldValues: values, syntax: syntax, maxLength: small)
        switch (large, limited) {
        case (.success(let key), _) where key.utf8.count > small:
            if case .failure(let error) = limited, error.kind == .tooLong { break }
            fuzzFail("\(label), \(syntax): \(key) accepted with maxLength 255 and \(limited) with \(small)")
        case (.failure(let error), _) where error.kind == .tooLong:
            if case .failure(let other) = limited, other.kind == .tooLong { break }
            fuzzFail("\(label), \(syntax): too long for 255 but \(limited) with \(small)")
        default:
            fuzzCheck(large == limited, "\(label), \(syntax): \(large) with maxLength 255 but \(limited) with \(small)")
        }
    }
    return 0
}
