import CLibCrypto

/// Incremental SHA-256 (FIPS 180-4) through OpenSSL's `SHA256_*` functions on a context held
/// inline (see the CLibCrypto shim for why not EVP): a plain value, so copying a hasher and
/// feeding the copies different bytes yields independent digests, and hashing allocates
/// nothing but the returned digest.
public struct SHA256Hasher {
    /// Length of a SHA-256 digest in bytes.
    public static let digestLength = 32

    private var context = SHA256_CTX()

    public init() {
        SHA256_Init(&context)
    }

    /// Feeds raw bytes into the digest.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        SHA256_Update(&context, base, bytes.count)
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
        let digest = [UInt8](unsafeUninitializedCapacity: Self.digestLength) { buffer, initialized in
            SHA256_Final(buffer.baseAddress, &context)
            initialized = Self.digestLength
        }
        SHA256_Init(&context)
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
}
