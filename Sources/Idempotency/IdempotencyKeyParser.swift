/// Parses the `Idempotency-Key` request header.
///
/// draft-ietf-httpapi-idempotency-key-header §2 defines the field as an
/// Item Structured Header whose value is an sf-string:
///
///     sf-string = DQUOTE *chr DQUOTE                  ; RFC 9651 §3.3.3
///     chr       = unescaped / escaped
///     unescaped = %x20-21 / %x23-5B / %x5D-7E
///     escaped   = "\" ( DQUOTE / "\" )
///
/// and says clients "MUST NOT include more than one" key. Parameters are
/// legal on a Structured Field Item in general, but a key carrying them is
/// almost certainly a client bug, and silently dropping them would let two
/// different header values map to one key, so they are refused.
///
/// The parser works on the raw field-line bytes handed over by the HTTP/1.1
/// layer and allocates nothing but the resulting `String` (or nothing at all, writing the
/// key's bytes into a buffer the caller keeps).
public enum IdempotencyKeyParser {
    /// Default for `key_max_length` (SPEC §2; Stripe's limit as well).
    public static let defaultMaxLength = 255

    /// - Parameters:
    ///   - fieldValues: the value of each `Idempotency-Key` field line, in
    ///     order of appearance.
    ///   - syntax: `key_syntax`.
    ///   - maxLength: `key_max_length`; the unquoted key must have
    ///     1...maxLength characters.
    /// - Returns: the unquoted key, or why it was refused.
    public static func parse(
        fieldValues: [ArraySlice<UInt8>], syntax: KeySyntax, maxLength: Int
    ) -> Result<String, KeyError> {
        guard let first = fieldValues.first else {
            return parse(fieldValue: UnsafeRawBufferPointer(start: nil, count: 0), lineCount: 0, syntax: syntax, maxLength: maxLength)
        }
        return first.withUnsafeBytes {
            parse(fieldValue: $0, lineCount: fieldValues.count, syntax: syntax, maxLength: maxLength)
        }
    }

    /// The same parse for a key still in the request's buffer: `fieldValue` is the first
    /// field line's value and `lineCount` the number of `Idempotency-Key` field lines. Only
    /// the resulting `String` is allocated (nothing for a key of up to 15 bytes).
    public static func parse(
        fieldValue: UnsafeRawBufferPointer, lineCount: Int, syntax: KeySyntax, maxLength: Int
    ) -> Result<String, KeyError> {
        locate(fieldValue: fieldValue, lineCount: lineCount, syntax: syntax, maxLength: maxLength).map { found in
            // Every accepted byte is ASCII, so this decoding is lossless.
            found.key.string(in: found.value)
        }
    }

    /// The same parse, writing the unquoted key's bytes into `key` (emptied first): the proxy
    /// keeps one such buffer per connection, so a request's key allocates nothing. Returns why
    /// the key was refused, or nil.
    public static func parse(
        fieldValue: UnsafeRawBufferPointer, lineCount: Int, syntax: KeySyntax, maxLength: Int, into key: inout [UInt8]
    ) -> KeyError? {
        switch locate(fieldValue: fieldValue, lineCount: lineCount, syntax: syntax, maxLength: maxLength) {
        case .failure(let error):
            return error
        case .success(let found):
            found.key.write(in: found.value, into: &key)
            return nil
        }
    }

    /// Where the accepted key lies in the trimmed field value, or why it was refused.
    private static func locate(
        fieldValue: UnsafeRawBufferPointer, lineCount: Int, syntax: KeySyntax, maxLength: Int
    ) -> Result<(value: UnsafeRawBufferPointer, key: Unquoted), KeyError> {
        guard lineCount > 0 else {
            return .failure(KeyError(.missing, "the Idempotency-Key header is missing"))
        }
        guard lineCount == 1 else {
            return .failure(KeyError(
                .multipleFieldLines,
                "the Idempotency-Key header must appear exactly once, found \(lineCount) field lines"))
        }
        let value = trimOWS(fieldValue)
        guard let lead = value.first else {
            return .failure(KeyError(.empty, "the Idempotency-Key header is empty"))
        }
        let parsed: Result<Unquoted, KeyError>
        if lead == UInt8(ascii: "\"") {
            parsed = parseString(value)
        } else {
            switch syntax {
            case .lenient:
                parsed = parseBareToken(value)
            case .strict:
                // Still classify obvious list/parameter/control-character
                // shapes so the client learns the real problem.
                if case .failure(let error) = parseBareToken(value), error.kind != .invalidCharacter {
                    return .failure(error)
                }
                return .failure(KeyError(
                    .notAString,
                    "the Idempotency-Key must be a quoted string (RFC 9651 sf-string), e.g. \"8e03978e-40d5\""))
            }
        }
        switch parsed {
        case .failure(let error):
            return .failure(error)
        case .success(let key):
            if key.length == 0 {
                return .failure(KeyError(.empty, "the Idempotency-Key is empty"))
            }
            if key.length > maxLength {
                return .failure(KeyError(
                    .tooLong, "the Idempotency-Key is \(key.length) characters long; at most \(maxLength) are allowed"))
            }
            return .success((value, key))
        }
    }

    /// Where an accepted key lies in the trimmed field value: its bytes, still escaped when
    /// `escapes` is not zero (each `\"` or `\\` stands for its second byte).
    private struct Unquoted {
        var range: Range<Int>
        var escapes: Int

        var length: Int { range.count - escapes }

        /// Writes the unescaped key (`length` bytes) to `out`; returns how many were written.
        private func unescape(in value: UnsafeRawBufferPointer, to out: UnsafeMutableBufferPointer<UInt8>) -> Int {
            let bytes = UnsafeRawBufferPointer(rebasing: value[range])
            guard escapes > 0 else {  // the common key: one copy
                UnsafeMutableRawBufferPointer(out).copyMemory(from: bytes)
                return bytes.count
            }
            var written = 0
            var index = 0
            while index < bytes.count {
                if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                out[written] = bytes[index]
                written += 1
                index += 1
            }
            return written
        }

        /// The unescaped bytes, written into `out` (emptied first, its capacity kept).
        func write(in value: UnsafeRawBufferPointer, into out: inout [UInt8]) {
            out.removeAll(keepingCapacity: true)
            guard escapes > 0 else {
                UnsafeRawBufferPointer(rebasing: value[range]).withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) }
                return
            }
            out.append(contentsOf: repeatElement(0, count: length))
            _ = out.withUnsafeMutableBufferPointer { unescape(in: value, to: $0) }
        }

        func string(in value: UnsafeRawBufferPointer) -> String {
            String(unsafeUninitializedCapacity: length) { unescape(in: value, to: $0) }
        }
    }

    /// RFC 9651 §4.2.5 "Parsing a String", followed by the §4.2 rule that
    /// nothing but trailing spaces may follow the Item (here the caller has
    /// already trimmed OWS, so nothing may follow at all).
    private static func parseString(_ value: UnsafeRawBufferPointer) -> Result<Unquoted, KeyError> {
        var escapes = 0
        var index = 1
        while index < value.count {
            let c = value[index]
            index += 1
            switch c {
            case UInt8(ascii: "\\"):
                guard index < value.count else {
                    return .failure(KeyError(.unterminatedString, "the Idempotency-Key ends inside an escape"))
                }
                let next = value[index]
                index += 1
                guard next == UInt8(ascii: "\"") || next == UInt8(ascii: "\\") else {
                    return .failure(KeyError(
                        .invalidEscape, "the Idempotency-Key contains an invalid escape; only \\\" and \\\\ are allowed"))
                }
                escapes += 1
            case UInt8(ascii: "\""):
                return checkNothingFollows(UnsafeRawBufferPointer(rebasing: value[index...]))
                    .map { Unquoted(range: 1..<(index - 1), escapes: escapes) }
            case 0x00...0x1F, 0x7F:
                return .failure(controlCharacter)
            case 0x20...0x7E:
                continue
            default:
                return .failure(nonASCII)
            }
        }
        return .failure(KeyError(.unterminatedString, "the Idempotency-Key string has no closing quote"))
    }

    /// Lenient form: one run of %x21-7E, excluding `"` (it would start or
    /// end an sf-string), `,` (list separator) and `;` (parameter start).
    private static func parseBareToken(_ value: UnsafeRawBufferPointer) -> Result<Unquoted, KeyError> {
        // Classify the worst problem first so the error names the real shape.
        if value.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return .failure(controlCharacter) }
        if value.contains(UInt8(ascii: ",")) { return .failure(listError) }
        if value.contains(UInt8(ascii: ";")) { return .failure(parametersError) }
        for c in value {
            switch c {
            case UInt8(ascii: "\""):
                return .failure(KeyError(.invalidCharacter, "an unquoted Idempotency-Key must not contain a quote"))
            case UInt8(ascii: " "), UInt8(ascii: "\t"):
                return .failure(KeyError(.invalidCharacter, "an unquoted Idempotency-Key must not contain spaces"))
            case 0x21...0x7E:
                continue
            default:
                return .failure(nonASCII)
            }
        }
        return .success(Unquoted(range: 0..<value.count, escapes: 0))
    }

    private static func checkNothingFollows(_ rest: UnsafeRawBufferPointer) -> Result<Void, KeyError> {
        let rest = trimOWS(rest)
        guard let c = rest.first else { return .success(()) }
        if rest.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return .failure(controlCharacter) }
        switch c {
        case UInt8(ascii: ","): return .failure(listError)
        case UInt8(ascii: ";"): return .failure(parametersError)
        default:
            return .failure(KeyError(.trailingCharacters, "the Idempotency-Key has characters after its closing quote"))
        }
    }

    /// Removes leading and trailing SP / HTAB. RFC 9110 §5.5 excludes OWS
    /// around a field value from the value, and RFC 9651 §4.2 discards
    /// leading and trailing SP before and after the Item.
    public static func trimOWS(_ value: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var start = value.startIndex
        var end = value.endIndex
        while start < end, value[start] == 0x20 || value[start] == 0x09 { start += 1 }
        while end > start, value[end - 1] == 0x20 || value[end - 1] == 0x09 { end -= 1 }
        return value[start..<end]
    }

    static func trimOWS(_ value: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = 0
        var end = value.count
        while start < end, value[start] == 0x20 || value[start] == 0x09 { start += 1 }
        while end > start, value[end - 1] == 0x20 || value[end - 1] == 0x09 { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: value[start..<end])
    }

    private static let controlCharacter = KeyError(
        .controlCharacter, "the Idempotency-Key contains a control character")
    private static let nonASCII = KeyError(
        .invalidCharacter, "the Idempotency-Key must contain only printable ASCII characters")
    private static let listError = KeyError(
        .list, "the Idempotency-Key must be a single value, not a comma-separated list")
    private static let parametersError = KeyError(
        .parameters, "the Idempotency-Key must not carry parameters (\";...\")")
}
