import CLibCrypto

/// Incremental SHA-256 (FIPS 180-4) through OpenSSL's EVP interface.
///
/// OpenSSL 3.0 deprecates `SHA256_Init`/`SHA256_Update`/`SHA256_Final`; the
/// `EVP_Digest*` family is the supported path and is what this wraps.
///
/// The value has copy-on-write semantics: copying a hasher and feeding the
/// copies different bytes yields independent digests (the shared `EVP_MD_CTX`
/// is duplicated with `EVP_MD_CTX_copy_ex` on the first mutation of a copy).
/// That keeps the type an honest value even though the digest state lives in
/// a C allocation.
public struct SHA256Hasher {
    /// Length of a SHA-256 digest in bytes.
    public static let digestLength = 32

    private var context: DigestContext

    public init() {
        context = DigestContext()
    }

    /// Feeds raw bytes into the digest.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        makeContextUnique()
        let ok = EVP_DigestUpdate(context.pointer, base, bytes.count)
        precondition(ok == 1, "EVP_DigestUpdate failed")
    }

    /// Feeds the UTF-8 encoding of `s` into the digest.
    public mutating func update(_ s: String) {
        var s = s
        s.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Returns the 32-byte digest of everything fed so far and resets the
    /// hasher to the empty state, so the same value can be reused.
    public mutating func finalize() -> [UInt8] {
        makeContextUnique()
        var digest = [UInt8](repeating: 0, count: Self.digestLength)
        var length: UInt32 = 0
        let ok = digest.withUnsafeMutableBufferPointer {
            EVP_DigestFinal_ex(context.pointer, $0.baseAddress, &length)
        }
        precondition(ok == 1 && Int(length) == Self.digestLength, "EVP_DigestFinal_ex failed")
        context.reset()
        return digest
    }

    /// One-shot digest of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }

    public static func hash(_ s: String) -> [UInt8] {
        var hasher = SHA256Hasher()
        hasher.update(s)
        return hasher.finalize()
    }

    /// Lowercase hexadecimal rendering of a digest (or any bytes).
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        Hex.encode(bytes)
    }

    private mutating func makeContextUnique() {
        if !isKnownUniquelyReferenced(&context) {
            context = context.copy()
        }
    }
}

/// Owns one `EVP_MD_CTX` and frees it when the last hasher value sharing it
/// goes away.
private final class DigestContext {
    let pointer: OpaquePointer

    /// The SHA-256 implementation, fetched once. OpenSSL 3 otherwise looks the algorithm up
    /// in its provider tables on every `EVP_DigestInit_ex(ctx, EVP_sha256(), nil)`, which
    /// costs more than hashing a small request.
    nonisolated(unsafe) static let sha256: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("EVP_MD_fetch(SHA256) failed") }
        return md
    }()

    init() {
        guard let ctx = EVP_MD_CTX_new() else {
            fatalError("EVP_MD_CTX_new: out of memory")
        }
        pointer = ctx
        reset()
    }

    private init(copying other: DigestContext) {
        guard let ctx = EVP_MD_CTX_new() else {
            fatalError("EVP_MD_CTX_new: out of memory")
        }
        let ok = EVP_MD_CTX_copy_ex(ctx, other.pointer)
        precondition(ok == 1, "EVP_MD_CTX_copy_ex failed")
        pointer = ctx
    }

    func copy() -> DigestContext {
        DigestContext(copying: self)
    }

    /// (Re)initialises the context for SHA-256. `EVP_DigestInit_ex` on an
    /// existing context discards any previous state.
    func reset() {
        let ok = EVP_DigestInit_ex(pointer, Self.sha256, nil)
        precondition(ok == 1, "EVP_DigestInit_ex(SHA-256) failed")
    }

    deinit {
        EVP_MD_CTX_free(pointer)
    }
}
