/// Which forms of `Idempotency-Key` value are accepted (SPEC §2, `key_syntax`).
public enum KeySyntax: Sendable, Equatable {
    /// An RFC 9651 sf-string, or a bare token of visible ASCII without spaces,
    /// quotes, commas or semicolons. Many clients send `Idempotency-Key: abc`
    /// without quotes; accepting that is the default.
    case lenient
    /// Only the sf-string form the draft defines
    /// (draft-ietf-httpapi-idempotency-key-header §2: `Idempotency-Key = sf-string`).
    case strict
}

/// Why an `Idempotency-Key` field was refused. The proxy answers `400` with
/// problem type `invalid-key`; `reason` is written for the API client that
/// sent the header and goes into the problem's `detail`, while `kind` is the
/// closed set the proxy and tests switch on.
public struct KeyError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// No field line at all (the caller decides whether that is an error).
        case missing
        /// The field appeared on more than one line; the draft allows one key.
        case multipleFieldLines
        /// `""`, or a field line holding only whitespace.
        case empty
        /// More than `maxLength` characters after unquoting.
        case tooLong
        /// A control character (%x00-1F, %x7F) anywhere in the value.
        case controlCharacter
        /// A byte outside the allowed set (non-ASCII, or a character the
        /// chosen syntax forbids).
        case invalidCharacter
        /// A backslash followed by anything but `"` or `\` (RFC 9651 §4.2.5).
        case invalidEscape
        /// An opening quote without its closing quote.
        case unterminatedString
        /// Several comma-separated members: a list, not one key.
        case list
        /// `;` after the value: Structured Field parameters are not allowed.
        case parameters
        /// Anything else after the closing quote.
        case trailingCharacters
        /// `key_syntax: strict` and the value is not quoted.
        case notAString
    }

    public let kind: Kind
    public let reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { reason }
}
