/// The store key for one (caller scope, idempotency key) pair:
/// `prefix + "{" + hex(SHA-256(framed scope, framed key)) + "}"`.
///
/// - Neither the raw idempotency key nor the caller's credential reaches the
///   store; only their digest does (SPEC §3; the idempotency-key draft's
///   security considerations recommend a composite key with client identity
///   so one client can never replay or observe another's result).
/// - The digest sits inside a Redis Cluster hash tag. Cluster hashes only the
///   text between the first `{` and the next `}`, so every key of one record
///   lands on one slot, and a client-chosen key containing braces cannot pick
///   the slot because it never appears in the store key. The prefix itself
///   must not contain `{` (see `StorageKey.isValidPrefix`), or the tag would
///   start inside the prefix.
/// - Scope and key are length-prefixed, and an absent scope is tagged
///   differently from an empty one, so (scope "ab", key "c") and
///   (scope "a", key "bc") differ, and "scoping disabled / header absent"
///   differs from "header present but empty".
///
/// - Parameters:
///   - prefix: the configured key prefix, e.g. `idem:`.
///   - scope: the raw value of the caller-identifying header, or `nil` when
///     scoping is disabled or the request has no such header.
///   - key: the parsed (unquoted) idempotency key.
public func storageKey(prefix: String, scope: [UInt8]?, key: String) -> String {
    prefix + "{" + StorageKey.digestHex(scope: scope, key: key) + "}"
}

public enum StorageKey {
    /// Domain label at the head of the hash input; bump the suffix if the
    /// framing ever changes so old and new digests cannot be confused.
    static let domain = "idemproxy/storage-key/v1"

    /// Length of the hex digest inside the braces.
    public static let digestHexLength = 64

    /// The 64 lowercase hex characters placed between the braces.
    public static func digestHex(scope: [UInt8]?, key: String) -> String {
        var input = FramedHasher(domain: domain)
        input.appendOptionalField(scope)
        input.appendField(key)
        return Hex.encode(input.finalize())
    }

    /// A prefix is usable when it cannot open or close a hash tag of its own.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.utf8.contains(UInt8(ascii: "{")) && !prefix.utf8.contains(UInt8(ascii: "}"))
    }
}
