/// A SHA-256 input built from self-delimiting parts.
///
/// Hashing a plain concatenation is ambiguous: ("ab", "c") and ("a", "bc")
/// would collide, and so would "header absent" and "header empty". Every
/// variable-length part is therefore written as an 8-byte big-endian length
/// followed by the bytes, and optional parts carry a one-byte presence tag
/// before them. With that framing, two different sequences of parts can never
/// produce the same byte stream, so equal digests imply equal inputs (up to
/// SHA-256 collisions).
struct FramedHasher {
    /// Tag written before an optional part that is absent.
    static let absent: UInt8 = 0x00
    /// Tag written before an optional part that is present.
    static let present: UInt8 = 0x01

    private var hasher = SHA256Hasher()

    /// Starts the input with a fixed domain-separation label, so digests made
    /// for one purpose (storage keys, fingerprints) can never be replayed as
    /// digests for another.
    init(domain: String) {
        appendField(domain)
    }

    mutating func appendTag(_ tag: UInt8) {
        var tag = tag
        withUnsafeBytes(of: &tag) { hasher.update($0) }
    }

    mutating func appendLength(_ length: Int) {
        var bigEndian = UInt64(length).bigEndian
        withUnsafeBytes(of: &bigEndian) { hasher.update($0) }
    }

    mutating func appendField(_ bytes: UnsafeRawBufferPointer) {
        appendLength(bytes.count)
        hasher.update(bytes)
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

    /// Writes a presence tag, then, when `parts` is not empty, one framed part made of the
    /// parts joined by `separator` (field lines combined as RFC 9110 §5.3 allows), without
    /// building the joined bytes.
    mutating func appendOptionalJoinedField(_ parts: [ArraySlice<UInt8>], separator: StaticString) {
        guard !parts.isEmpty else {
            appendTag(Self.absent)
            return
        }
        appendTag(Self.present)
        var total = separator.utf8CodeUnitCount * (parts.count - 1)
        for part in parts { total += part.count }
        appendLength(total)
        for (index, part) in parts.enumerated() {
            if index > 0 { hasher.update(UnsafeRawBufferPointer(start: separator.utf8Start, count: separator.utf8CodeUnitCount)) }
            part.withUnsafeBytes { hasher.update($0) }
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

    mutating func finalize() -> [UInt8] {
        hasher.finalize()
    }
}
