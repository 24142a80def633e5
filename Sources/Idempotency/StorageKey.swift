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
    guard let scope else { return StorageKey.make(prefix: prefix, scope: nil, key: key) }
    return scope.withUnsafeBytes { StorageKey.make(prefix: prefix, scope: $0, key: key) }
}

public enum StorageKey {
    /// Domain label at the head of the hash input; bump the suffix if the
    /// framing ever changes so old and new digests cannot be confused.
    static let domain: StaticString = "idemproxy/storage-key/v1"

    /// Length of the hex digest inside the braces.
    public static let digestHexLength = 64

    /// `storageKey(prefix:scope:key:)` for a scope still in the request's buffer. The key is
    /// built in one allocation (the digest and its hex never exist apart from it), since it is
    /// computed for every guarded request.
    public static func make(prefix: String, scope: UnsafeRawBufferPointer?, key: String) -> String {
        var key = key
        return key.withUTF8 { make(prefix: prefix, scope: scope, key: UnsafeRawBufferPointer($0)) }
    }

    /// The same for a key given as its bytes (the proxy parses a request's key into a buffer it
    /// keeps): the same bytes give the same storage key.
    public static func make(prefix: String, scope: UnsafeRawBufferPointer?, key: UnsafeRawBufferPointer) -> String {
        var prefix = prefix
        return prefix.withUTF8 { prefixBytes in
            let length = prefixBytes.count + 2 + digestHexLength
            return String(unsafeUninitializedCapacity: length) { out in
                write(prefix: UnsafeRawBufferPointer(prefixBytes), scope: scope, key: key, to: out.baseAddress!)
                return length
            }
        }
    }

    /// The same bytes, written over `out` (resized in place, its capacity kept): the proxy keeps
    /// them in a buffer it reuses, so a replay finds its record without making a String.
    public static func write(prefix: String, scope: UnsafeRawBufferPointer?, key: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var prefix = prefix
        prefix.withUTF8 { prefixBytes in
            let length = prefixBytes.count + 2 + digestHexLength
            if out.count != length {
                out.removeAll(keepingCapacity: true)
                out.append(contentsOf: repeatElement(0, count: length))
            }
            out.withUnsafeMutableBufferPointer { write(prefix: UnsafeRawBufferPointer(prefixBytes), scope: scope, key: key, to: $0.baseAddress!) }
        }
    }

    /// `prefix{hex digest}` at `base`, which has room for the prefix and 66 more bytes.
    private static func write(prefix: UnsafeRawBufferPointer, scope: UnsafeRawBufferPointer?, key: UnsafeRawBufferPointer, to base: UnsafeMutablePointer<UInt8>) {
        var digest: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digest) { StorageKey.digest(scope: scope, key: key, into: $0.baseAddress!) }
        if let prefixBase = prefix.baseAddress { UnsafeMutableRawPointer(base).copyMemory(from: prefixBase, byteCount: prefix.count) }
        base[prefix.count] = UInt8(ascii: "{")
        withUnsafeBytes(of: &digest) { Hex.write($0, to: base + prefix.count + 1) }
        base[prefix.count + 1 + digestHexLength] = UInt8(ascii: "}")
    }

    /// The 64 lowercase hex characters placed between the braces.
    public static func digestHex(scope: [UInt8]?, key: String) -> String {
        var digest: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digest) { raw in
            if let scope {
                scope.withUnsafeBytes { StorageKey.digest(scope: $0, key: key, into: raw.baseAddress!) }
            } else {
                StorageKey.digest(scope: nil, key: key, into: raw.baseAddress!)
            }
        }
        return withUnsafeBytes(of: &digest) { Hex.encode($0) }
    }

    /// SHA-256 of the framed scope and key, written to `out` (32 bytes).
    private static func digest(scope: UnsafeRawBufferPointer?, key: String, into out: UnsafeMutableRawPointer) {
        var key = key
        key.withUTF8 { digest(scope: scope, key: UnsafeRawBufferPointer($0), into: out) }
    }

    private static func digest(scope: UnsafeRawBufferPointer?, key: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) {
        var input = FramedHasher(domain: domain)
        if let scope {
            input.appendTag(FramedHasher.present)
            input.appendField(scope)
        } else {
            input.appendTag(FramedHasher.absent)
        }
        input.appendField(key)
        input.finalize(into: out)
    }

    /// A prefix is usable when it cannot open or close a hash tag of its own.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.utf8.contains(UInt8(ascii: "{")) && !prefix.utf8.contains(UInt8(ascii: "}"))
    }
}
