/// Computes the request fingerprint: SHA-256 over a framed encoding of
/// method, target, the policy's headers and the body (SPEC §3).
///
/// Hash input, each "field" being an 8-byte big-endian length followed by
/// the bytes (see `FramedHasher`):
///
///     field  "idemproxy/fingerprint/v1"        domain label
///     field  method                            case-sensitive (RFC 9110 §9.1)
///     field  target                            path and query, as received
///     u64    number of policy headers
///     per policy header, in policy order:
///       field  name, ASCII-lowercased
///       tag    0x00 absent | 0x01 present, then field value
///              (several field lines joined with ", ", RFC 9110 §5.3)
///     tag    'R' raw body | 'J' canonical JSON
///     field  body bytes
///
/// Because every part is length-prefixed and tagged, no two different
/// requests share a hash input: a header that is absent differs from one
/// that is present and empty, and bytes cannot migrate between parts.
///
/// With `FingerprintBodyMode.json` a body whose `Content-Type` is a JSON media type
/// (`application/json`, `*/*+json`) is parsed (`JSONParser`), the
/// `ignoreFields` members are removed (`JSONValue.removing`), and the result
/// is serialised canonically (`JSONValue.canonicalBytes`): object members in
/// UTF-16 code-unit key order (as RFC 8785 §3.2.3), no insignificant
/// whitespace, minimal string escaping (as RFC 8785 §3.2.2.2), numbers by
/// exact decimal value (`JSONNumber`). A body that is not acceptable JSON
/// (syntax error, duplicate keys, invalid UTF-8, nesting over 64, …) is
/// hashed as raw bytes under the `'R'` tag, so it still fingerprints
/// deterministically and can never equal a canonical JSON fingerprint.
public enum Fingerprinter {
    static let domain = "idemproxy/fingerprint/v1"
    static let rawBodyTag = UInt8(ascii: "R")
    static let jsonBodyTag = UInt8(ascii: "J")

    /// - Parameters:
    ///   - method: the request method's bytes as received.
    ///   - target: the request target (path and query) as received.
    ///   - headers: the request's fields (at least those the policy names), in order, as the
    ///     exact bytes received: obs-text bytes count, nothing is decoded as text (SPEC §3).
    ///   - contentType: the request's `Content-Type` value; `fingerprint.body: json` applies
    ///     only to JSON media types.
    ///   - body: the complete request body.
    /// - Returns: 32 bytes.
    public static func fingerprint(
        method: UnsafeRawBufferPointer,
        target: UnsafeRawBufferPointer,
        headers: [(name: [UInt8], value: ArraySlice<UInt8>)],
        contentType: ArraySlice<UInt8>?,
        body: [UInt8],
        policy: FingerprintPolicy
    ) -> [UInt8] {
        var input = FramedHasher(domain: domain)
        input.appendField(method)
        input.appendField(target)
        input.appendLength(policy.headers.count)
        for lowercased in policy.lowercasedHeaderBytes {
            input.appendField(lowercased)
            var values: [ArraySlice<UInt8>] = []
            for field in headers where ASCII.equalsIgnoringCase(field.name, lowercased) {
                values.append(field.value)
            }
            // Several field lines combine with ", " (RFC 9110 §5.3), hashed without joining.
            input.appendOptionalJoinedField(values, separator: ", ")
        }
        let (tag, bytes) = bodyContribution(body, contentType: contentType, policy: policy)
        input.appendTag(tag)
        input.appendField(bytes)
        return input.finalize()
    }

    /// Text convenience (tests, tools): the same hash as the byte form for the UTF-8 bytes of
    /// each string; the content type is taken from `headers`.
    public static func fingerprint(
        method: String,
        target: String,
        headers: [(name: String, value: String)],
        body: [UInt8],
        policy: FingerprintPolicy
    ) -> [UInt8] {
        let fields = headers.map { (name: Array($0.name.utf8), value: Array($0.value.utf8)[...]) }
        let contentType = fields.first { ASCII.equalsIgnoringCase($0.name, Array("content-type".utf8)) }?.value
        let methodBytes = Array(method.utf8), targetBytes = Array(target.utf8)
        return methodBytes.withUnsafeBytes { m in
            targetBytes.withUnsafeBytes { t in
                fingerprint(method: m, target: t, headers: fields, contentType: contentType, body: body, policy: policy)
            }
        }
    }

    /// True for `application/json` and any `<type>/<subtype>+json` (RFC 6839 §3.1), compared
    /// case-insensitively with parameters ignored (RFC 9110 §8.3.1).
    public static func isJSONMediaType(_ value: ArraySlice<UInt8>) -> Bool {
        var end = value.startIndex
        while end < value.endIndex && value[end] != UInt8(ascii: ";") { end += 1 }
        let mediaType = IdempotencyKeyParser.trimOWS(value[value.startIndex..<end]).map(ASCII.fold)
        guard let slash = mediaType.firstIndex(of: UInt8(ascii: "/")), slash > 0 else { return false }
        if mediaType.elementsEqual("application/json".utf8) { return true }
        let subtype = mediaType[(slash + 1)...]
        return subtype.count > 5 && subtype.suffix(5).elementsEqual("+json".utf8)
    }

    /// The tag and bytes the body contributes under `policy`.
    static func bodyContribution(_ body: [UInt8], contentType: ArraySlice<UInt8>?, policy: FingerprintPolicy) -> (UInt8, [UInt8]) {
        guard policy.body == .json, let contentType, isJSONMediaType(contentType),
              let canonical = canonicalJSON(body, ignoring: policy.ignoredTokenPaths) else {
            return (rawBodyTag, body)
        }
        return (jsonBodyTag, canonical)
    }

    /// The canonical form of `body` with the `ignoring` paths removed, or
    /// `nil` if `body` is not acceptable JSON.
    static func canonicalJSON(_ body: [UInt8], ignoring paths: [[String]] = []) -> [UInt8]? {
        guard let value = try? JSONParser.parse(body) else { return nil }
        return value.removing(paths).canonicalBytes()
    }
}
