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
/// layer (one slice per field line) and never allocates for the common case
/// beyond the resulting `String`.
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
            return .failure(KeyError(.missing, "the Idempotency-Key header is missing"))
        }
        guard fieldValues.count == 1 else {
            return .failure(KeyError(
                .multipleFieldLines,
                "the Idempotency-Key header must appear exactly once, found \(fieldValues.count) field lines"))
        }
        let value = trimOWS(first)
        guard let lead = value.first else {
            return .failure(KeyError(.empty, "the Idempotency-Key header is empty"))
        }
        let parsed: Result<[UInt8], KeyError>
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
            if key.isEmpty {
                return .failure(KeyError(.empty, "the Idempotency-Key is empty"))
            }
            if key.count > maxLength {
                return .failure(KeyError(
                    .tooLong, "the Idempotency-Key is \(key.count) characters long; at most \(maxLength) are allowed"))
            }
            // Every accepted byte is ASCII, so this decoding is lossless.
            return .success(String(decoding: key, as: UTF8.self))
        }
    }

    /// RFC 9651 §4.2.5 "Parsing a String", followed by the §4.2 rule that
    /// nothing but trailing spaces may follow the Item (here the caller has
    /// already trimmed OWS, so nothing may follow at all).
    private static func parseString(_ value: ArraySlice<UInt8>) -> Result<[UInt8], KeyError> {
        var out: [UInt8] = []
        var index = value.index(after: value.startIndex)
        while index < value.endIndex {
            let c = value[index]
            index = value.index(after: index)
            switch c {
            case UInt8(ascii: "\\"):
                guard index < value.endIndex else {
                    return .failure(KeyError(.unterminatedString, "the Idempotency-Key ends inside an escape"))
                }
                let next = value[index]
                index = value.index(after: index)
                guard next == UInt8(ascii: "\"") || next == UInt8(ascii: "\\") else {
                    return .failure(KeyError(
                        .invalidEscape, "the Idempotency-Key contains an invalid escape; only \\\" and \\\\ are allowed"))
                }
                out.append(next)
            case UInt8(ascii: "\""):
                return checkNothingFollows(value[index...]).map { out }
            case 0x00...0x1F, 0x7F:
                return .failure(controlCharacter)
            case 0x20...0x7E:
                out.append(c)
            default:
                return .failure(nonASCII)
            }
        }
        return .failure(KeyError(.unterminatedString, "the Idempotency-Key string has no closing quote"))
    }

    /// Lenient form: one run of %x21-7E, excluding `"` (it would start or
    /// end an sf-string), `,` (list separator) and `;` (parameter start).
    private static func parseBareToken(_ value: ArraySlice<UInt8>) -> Result<[UInt8], KeyError> {
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
        return .success(Array(value))
    }

    private static func checkNothingFollows(_ rest: ArraySlice<UInt8>) -> Result<Void, KeyError> {
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
    static func trimOWS(_ value: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var start = value.startIndex
        var end = value.endIndex
        while start < end, value[start] == 0x20 || value[start] == 0x09 { start += 1 }
        while end > start, value[end - 1] == 0x20 || value[end - 1] == 0x09 { end -= 1 }
        return value[start..<end]
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
