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
    static let domain: StaticString = "idemproxy/fingerprint/v1"
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
        let fields = FieldList(headers: headers)
        var digest: [UInt8] = []
        guard let contentType else {
            fingerprint(method: method, target: target, fields: fields, contentType: nil, body: body, policy: policy, into: &digest)
            return digest
        }
        contentType.withUnsafeBytes {
            fingerprint(method: method, target: target, fields: fields, contentType: $0, body: body, policy: policy, into: &digest)
        }
        return digest
    }

    /// The same fingerprint, reading the policy's fields through `fields`, so a caller holding
    /// a parsed head passes its bytes where they are, without collecting them first. Written into
    /// `digest`, in its buffer when nothing else holds it (a reused exchange's last fingerprint).
    public static func fingerprint<Fields: FingerprintFields>(
        method: UnsafeRawBufferPointer,
        target: UnsafeRawBufferPointer,
        fields: Fields,
        contentType: UnsafeRawBufferPointer?,
        body: [UInt8],
        policy: FingerprintPolicy,
        into digest: inout [UInt8]
    ) {
        var input = FramedHasher(domain: domain)
        input.appendField(method)
        input.appendField(target)
        input.appendLength(policy.headers.count)
        for lowercased in policy.lowercasedHeaderBytes {
            input.appendField(lowercased)
            // Several field lines combine with ", " (RFC 9110 §5.3), hashed without joining.
            input.appendOptionalJoinedField(separator: ", ") { part in
                fields.forEachValue(named: lowercased, part)
            }
        }
        if policy.body == .json, let contentType, isJSONMediaType(contentType),
           let canonical = canonicalJSON(body, ignoring: policy.ignoredTokenPaths) {
            input.appendTag(jsonBodyTag)
            input.appendField(canonical)
        } else {
            input.appendTag(rawBodyTag)
            input.appendField(body)
        }
        input.finalize(replacing: &digest)
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
        value.withUnsafeBytes { isJSONMediaType($0) }
    }

    /// As above, comparing in place (folding case byte by byte, no lowercased copy).
    public static func isJSONMediaType(_ value: UnsafeRawBufferPointer) -> Bool {
        var end = 0
        while end < value.count && value[end] != UInt8(ascii: ";") { end += 1 }
        var start = 0
        while start < end && (value[start] == 0x20 || value[start] == 0x09) { start += 1 }
        while end > start && (value[end - 1] == 0x20 || value[end - 1] == 0x09) { end -= 1 }
        let mediaType = UnsafeRawBufferPointer(rebasing: value[start..<end])
        guard let slash = mediaType.firstIndex(of: UInt8(ascii: "/")), slash > 0 else { return false }
        if equalsFolded(mediaType, "application/json") { return true }
        let subtype = UnsafeRawBufferPointer(rebasing: mediaType[(slash + 1)...])
        return subtype.count > 5 && equalsFolded(UnsafeRawBufferPointer(rebasing: subtype[(subtype.count - 5)...]), "+json")
    }

    /// `bytes`, ASCII-lowercased, equal `lowercase`.
    private static func equalsFolded(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let literal = lowercase.utf8Start
        for index in 0..<bytes.count where ASCII.fold(bytes[index]) != literal[index] { return false }
        return true
    }

    /// The tag and bytes the body contributes under `policy` (the fuzz target checks the
    /// canonical form through it).
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

/// The request fields a fingerprint reads, as the exact bytes received.
public protocol FingerprintFields {
    /// Calls `body` with the value of every field line named `lowercasedName` (ASCII,
    /// lowercase), in order of appearance; names compare case-insensitively (RFC 9110 §5.1).
    func forEachValue(named lowercasedName: [UInt8], _ body: (UnsafeRawBufferPointer) -> Void)
}

/// Fields given as a list of name and value bytes.
private struct FieldList: FingerprintFields {
    let headers: [(name: [UInt8], value: ArraySlice<UInt8>)]

    func forEachValue(named lowercasedName: [UInt8], _ body: (UnsafeRawBufferPointer) -> Void) {
        for field in headers where ASCII.equalsIgnoringCase(field.name, lowercasedName) {
            field.value.withUnsafeBytes(body)
        }
    }
}
