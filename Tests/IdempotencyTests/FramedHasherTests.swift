import Testing
@testable import Idempotency

/// `FramedHasher` gathers small parts before handing them to OpenSSL. Whatever the sizes and
/// however they fall across its staging buffer, the digest must be SHA-256 of exactly the
/// framed byte stream, computed here independently by `SHA256Hasher` over bytes framed by hand.
@Suite struct FramedHasherTests {
    /// The stream `FramedHasher` documents: each field as an 8-byte big-endian length, then
    /// its bytes; tags as one byte.
    struct Expected {
        var stream: [UInt8] = []
        mutating func field(_ bytes: [UInt8]) {
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { stream.append(contentsOf: $0) }
            stream.append(contentsOf: bytes)
        }
        mutating func tag(_ tag: UInt8) { stream.append(tag) }
    }

    static func part(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ 1) }
    }

    @Test(arguments: [
        [0, 1, 2, 3],
        [119, 0, 1],  // the domain and one 119-byte field fill the stage to its last byte, then more
        [120, 5],  // a field that overflows the stage by one byte
        [127, 128, 129],  // parts at the stage's size: never split wrongly
        [300, 7, 1000, 0, 64, 64, 64],  // parts larger than the stage go straight through
        Array(repeating: 9, count: 40),  // many small parts over several stage flushes
    ])
    func digestIsTheFramedStreamsSHA256(sizes: [Int]) {
        var hasher = FramedHasher(domain: "test/framed")
        var expected = Expected()
        expected.field(Array("test/framed".utf8))
        for (index, size) in sizes.enumerated() {
            let bytes = Self.part(size, seed: index)
            if index % 3 == 2 {
                hasher.appendTag(FramedHasher.present)
                expected.tag(FramedHasher.present)
            }
            hasher.appendField(bytes)
            expected.field(bytes)
        }
        #expect(hasher.finalize() == SHA256Hasher.hash(expected.stream))
    }

    /// The joined form frames the parts as one field, separators included.
    @Test func joinedPartsAcrossTheStage() {
        let parts = [Self.part(100, seed: 1), Self.part(50, seed: 2), Self.part(0, seed: 3), Self.part(200, seed: 4)]
        var hasher = FramedHasher(domain: "test/joined")
        hasher.appendOptionalJoinedField(separator: ", ") { visit in
            for part in parts { part.withUnsafeBytes(visit) }
        }
        var expected = Expected()
        expected.field(Array("test/joined".utf8))
        expected.tag(FramedHasher.present)
        var joined: [UInt8] = []
        for (index, part) in parts.enumerated() {
            if index > 0 { joined.append(contentsOf: Array(", ".utf8)) }
            joined.append(contentsOf: part)
        }
        expected.field(joined)
        var digest: [UInt8] = [1, 2, 3]
        hasher.finalize(replacing: &digest)
        #expect(digest == SHA256Hasher.hash(expected.stream))
    }
}
