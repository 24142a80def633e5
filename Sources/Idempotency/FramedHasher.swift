import CLibCrypto

/// A SHA-256 input built from self-delimiting parts.
///
/// Hashing a plain concatenation is ambiguous: ("ab", "c") and ("a", "bc")
/// would collide, and so would "header absent" and "header empty". Every
/// variable-length part is therefore written as an 8-byte big-endian length
/// followed by the bytes, and optional parts carry a one-byte presence tag
/// before them. With that framing, two different sequences of parts can never
/// produce the same byte stream, so equal digests imply equal inputs (up to
/// SHA-256 collisions).
///
/// Non-copyable and one-shot: it hashes one input on a SHA-256 context held inline (see the
/// CLibCrypto shim), so hashing allocates nothing here but the digest.
struct FramedHasher: ~Copyable {
    /// Tag written before an optional part that is absent.
    static let absent: UInt8 = 0x00
    /// Tag written before an optional part that is present.
    static let present: UInt8 = 0x01

    private var context = SHA256_CTX()

    /// Input not yet handed to OpenSSL. A framed input is many small parts (an 8-byte length,
    /// a tag, a short value), and each `SHA256_Update` is a call and a copy into SHA-256's
    /// block buffer; gathered here, a storage key's whole input is one call and a
    /// fingerprint's a few.
    private var staged: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                         UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    private var stagedCount = 0
    private static let stageCapacity = 128

    /// Starts the input with a fixed domain-separation label, so digests made
    /// for one purpose (storage keys, fingerprints) can never be replayed as
    /// digests for another.
    init(domain: StaticString) {
        SHA256_Init(&context)
        appendField(UnsafeRawBufferPointer(start: domain.utf8Start, count: domain.utf8CodeUnitCount))
    }

    @inline(__always)
    private mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        if stagedCount + bytes.count > Self.stageCapacity {
            flushStaged()
            if bytes.count >= Self.stageCapacity {
                SHA256_Update(&context, base, bytes.count)
                return
            }
        }
        let offset = stagedCount
        withUnsafeMutableBytes(of: &staged) { ($0.baseAddress! + offset).copyMemory(from: base, byteCount: bytes.count) }
        stagedCount += bytes.count
    }

    private mutating func flushStaged() {
        guard stagedCount > 0 else { return }
        let count = stagedCount
        _ = withUnsafeBytes(of: &staged) { SHA256_Update(&context, $0.baseAddress!, count) }  // returns 1 (success) always
        stagedCount = 0
    }

    mutating func appendTag(_ tag: UInt8) {
        var tag = tag
        withUnsafeBytes(of: &tag) { update($0) }
    }

    mutating func appendLength(_ length: Int) {
        var bigEndian = UInt64(length).bigEndian
        withUnsafeBytes(of: &bigEndian) { update($0) }
    }

    mutating func appendField(_ bytes: UnsafeRawBufferPointer) {
        appendLength(bytes.count)
        update(bytes)
    }

    mutating func appendField(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { appendField($0) }
    }

    mutating func appendField(_ text: String) {
        var text = text
        text.withUTF8 { appendField(UnsafeRawBufferPointer($0)) }
    }

    /// Writes a presence tag, then the framed bytes when present.
    mutating func appendOptionalField(_ bytes: [UInt8]?) {
        if let bytes {
            appendTag(Self.present)
            appendField(bytes)
        } else {
            appendTag(Self.absent)
        }
    }

    /// Writes a presence tag, then, when there are parts, one framed part made of the parts
    /// joined by `separator` (field lines combined as RFC 9110 §5.3 allows), without building
    /// the joined bytes. `forEachPart` is called twice (for the length, then for the bytes)
    /// and must list the same parts both times.
    mutating func appendOptionalJoinedField(
        separator: StaticString, _ forEachPart: ((UnsafeRawBufferPointer) -> Void) -> Void
    ) {
        var count = 0
        var total = 0
        forEachPart { part in
            count += 1
            total += part.count
        }
        guard count > 0 else {
            appendTag(Self.absent)
            return
        }
        appendTag(Self.present)
        appendLength(total + separator.utf8CodeUnitCount * (count - 1))
        let separatorBytes = UnsafeRawBufferPointer(start: separator.utf8Start, count: separator.utf8CodeUnitCount)
        var first = true
        forEachPart { part in
            if !first { update(separatorBytes) }
            first = false
            update(part)
        }
    }

    mutating func appendOptionalField(_ text: String?) {
        if let text {
            appendTag(Self.present)
            appendField(text)
        } else {
            appendTag(Self.absent)
        }
    }

    /// Writes the 32-byte digest to `digest` (which must have room for it) and ends the hasher.
    consuming func finalize(into digest: UnsafeMutableRawPointer) {
        flushStaged()
        SHA256_Final(digest.assumingMemoryBound(to: UInt8.self), &context)
    }

    consuming func finalize() -> [UInt8] {
        var digest: [UInt8] = []
        finalize(replacing: &digest)
        return digest
    }

    /// The digest written into `digest`'s buffer when nothing else holds it (else a new one).
    /// Not `finalize(into:)`: `&array` would also convert to the raw-pointer overload.
    consuming func finalize(replacing digest: inout [UInt8]) {
        flushStaged()
        var bytes: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        _ = withUnsafeMutableBytes(of: &bytes) { SHA256_Final($0.baseAddress!.assumingMemoryBound(to: UInt8.self), &context) }  // likewise
        digest.removeAll(keepingCapacity: true)
        withUnsafeBytes(of: &bytes) { digest.append(contentsOf: $0) }
    }
}
