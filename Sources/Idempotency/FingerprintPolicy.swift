/// How request bodies enter the fingerprint (`fingerprint.body`).
public enum FingerprintBodyMode: String, Sendable, Equatable {
    /// The body bytes exactly as received.
    case raw
    /// JSON bodies in canonical form (see `Fingerprinter`), minus the
    /// `ignore_fields`; bodies that are not acceptable JSON fall back to raw.
    case json
}

/// What makes two requests "the same request" for one idempotency key
/// (SPEC §3, `fingerprint:`). The idempotency-key draft lets servers use "a
/// fingerprint of the request payload" to detect a key reused for a
/// different request, which is then refused with 422.
public struct FingerprintPolicy: Sendable, Equatable {
    /// Request fields that take part, matched case-insensitively, hashed in
    /// this order. Default: `Content-Type`.
    public var headers: [String] {
        didSet { lowercasedHeaderBytes = headers.map { Array(ASCII.lowercased($0).utf8) } }
    }
    /// Default: `.raw`.
    public var body: FingerprintBodyMode
    /// JSON Pointers (RFC 6901) of members to drop before hashing a JSON
    /// body, e.g. `/meta/request_id`. Only used with `.json`.
    public var ignoreFields: [String]

    /// `headers`, ASCII-lowercased, as bytes (computed once, hashed per request).
    public private(set) var lowercasedHeaderBytes: [[UInt8]]

    public init(headers: [String] = ["Content-Type"], body: FingerprintBodyMode = .raw, ignoreFields: [String] = []) {
        self.headers = headers
        self.lowercasedHeaderBytes = headers.map { Array(ASCII.lowercased($0).utf8) }
        self.body = body
        self.ignoreFields = ignoreFields
    }

    /// Checks the `ignore_fields` pointers once, at configuration time.
    /// At request time a malformed pointer is skipped rather than failing
    /// the request.
    public func validate() throws(JSONPointer.SyntaxError) {
        for field in ignoreFields {
            _ = try JSONPointer(field)
        }
    }

    /// Parsed `ignoreFields`, skipping malformed ones.
    var ignoredTokenPaths: [[String]] {
        ignoreFields.compactMap { try? JSONPointer($0).tokens }
    }
}
