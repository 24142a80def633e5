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
/// With `FingerprintBodyMode.json` the body is parsed (`JSONParser`), the
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
    ///   - method: the request method as received.
    ///   - target: the request target (path and query) as received.
    ///   - headers: all of the request's fields, in order.
    ///   - body: the complete request body.
    /// - Returns: 32 bytes.
    public static func fingerprint(
        method: String,
        target: String,
        headers: [(name: String, value: String)],
        body: [UInt8],
        policy: FingerprintPolicy
    ) -> [UInt8] {
        var input = FramedHasher(domain: domain)
        input.appendField(method)
        input.appendField(target)
        input.appendLength(policy.headers.count)
        for name in policy.headers {
            input.appendField(ASCII.lowercased(name))
            input.appendOptionalField(joinedValue(of: name, in: headers))
        }
        let (tag, bytes) = bodyContribution(body, policy: policy)
        input.appendTag(tag)
        input.appendField(bytes)
        return input.finalize()
    }

    /// All field lines named `name`, combined as RFC 9110 §5.3 allows
    /// (comma-space separated, in order), or `nil` when there are none.
    static func joinedValue(of name: String, in headers: [(name: String, value: String)]) -> String? {
        var joined: String?
        for field in headers where ASCII.equalsIgnoringCase(field.name, name) {
            if joined == nil {
                joined = field.value
            } else {
                joined! += ", " + field.value
            }
        }
        return joined
    }

    /// The tag and bytes the body contributes under `policy`.
    static func bodyContribution(_ body: [UInt8], policy: FingerprintPolicy) -> (UInt8, [UInt8]) {
        guard policy.body == .json, let canonical = canonicalJSON(body, ignoring: policy.ignoredTokenPaths) else {
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
