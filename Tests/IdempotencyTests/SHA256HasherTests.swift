import Testing
@testable import Idempotency

@Suite struct SHA256HasherTests {
    // FIPS 180-4 / NIST CSRC example vectors.
    @Test func knownVectors() {
        #expect(Hex.encode(SHA256Hasher.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Hex.encode(SHA256Hasher.hash("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Hex.encode(SHA256Hasher.hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func incrementalEqualsOneShot() {
        let message = bytes("The quick brown fox jumps over the lazy dog")
        var hasher = SHA256Hasher()
        hasher.update(message[0..<10])
        hasher.update("")
        hasher.update(Array(message[10...]))
        let digest = hasher.finalize()
        #expect(digest.count == 32)
        #expect(digest == SHA256Hasher.hash(message))
    }

    @Test func finalizeResetsAndCopiesAreIndependent() {
        var a = SHA256Hasher()
        a.update("ab")
        var b = a  // shares the C context until one of them mutates
        a.update("c")
        b.update("x")
        #expect(a.finalize() == SHA256Hasher.hash("abc"))
        #expect(b.finalize() == SHA256Hasher.hash("abx"))
        // After finalize the hasher starts over.
        a.update("abc")
        #expect(a.finalize() == SHA256Hasher.hash("abc"))
    }

    @Test func hexRoundTrip() {
        let raw: [UInt8] = [0x00, 0x0f, 0xa5, 0xff]
        #expect(SHA256Hasher.hex(raw) == "000fa5ff")
        #expect(Hex.decode("000FA5ff") == raw)
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }
}
