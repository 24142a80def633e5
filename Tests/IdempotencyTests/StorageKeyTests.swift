import Testing
@testable import Idempotency

@Suite struct StorageKeyTests {
    @Test func shapeIsPrefixAndHashTag() {
        let key = storageKey(prefix: "idem:", scope: bytes("Bearer t0k3n"), key: "8e03978e-40d5")
        #expect(key.hasPrefix("idem:{"))
        #expect(key.hasSuffix("}"))
        let hex = key.dropFirst("idem:{".count).dropLast()
        #expect(hex.count == 64)
        #expect(hex.allSatisfy { "0123456789abcdef".contains($0) })
        // Neither the key nor the credential leaks into the store key.
        #expect(!key.contains("8e03978e"))
        #expect(!key.contains("t0k3n"))
    }

    @Test func deterministic() {
        #expect(storageKey(prefix: "p:", scope: bytes("s"), key: "k") == storageKey(prefix: "p:", scope: bytes("s"), key: "k"))
    }

    @Test func scopesAreSeparated() {
        let alice = storageKey(prefix: "", scope: bytes("Bearer alice"), key: "k1")
        let bob = storageKey(prefix: "", scope: bytes("Bearer bob"), key: "k1")
        #expect(alice != bob)
    }

    @Test func framingIsUnambiguous() {
        #expect(
            storageKey(prefix: "", scope: bytes("ab"), key: "c") != storageKey(prefix: "", scope: bytes("a"), key: "bc"))
        #expect(storageKey(prefix: "", scope: nil, key: "k") != storageKey(prefix: "", scope: [], key: "k"))
        #expect(storageKey(prefix: "", scope: nil, key: "k") != storageKey(prefix: "", scope: bytes("k"), key: ""))
    }

    /// Records already in a store are found only if the key's bytes never change: these
    /// digests were computed outside Swift (Python's hashlib over the documented framing).
    @Test func theDigestBytesArePinned() {
        #expect(storageKey(prefix: "idem:", scope: bytes("Bearer t"), key: "k1")
            == "idem:{20fcceafe1c3aa81fccd40c4f5a07d969d5653e0b2796ea2311efe9db100949c}")
        #expect(storageKey(prefix: "idem:", scope: nil, key: "k")
            == "idem:{1abaa3c7a057f934e825bf9f718acbc38f2c20b6741ca9be61396aa4cd3b70dd}")
        #expect(StorageKey.digestHex(scope: nil, key: "k")
            == "1abaa3c7a057f934e825bf9f718acbc38f2c20b6741ca9be61396aa4cd3b70dd")
    }

    /// The same for fingerprints: a changed fingerprint would answer every retry across an
    /// upgrade with 422 mismatch.
    @Test func theFingerprintBytesArePinned() {
        let raw = Fingerprinter.fingerprint(
            method: "POST", target: "/v1/charges?x=1",
            headers: [("Content-Type", "application/json"), ("X-Tenant", "a"), ("x-tenant", "b")],
            body: Array(#"{"b": 2, "a": 1}"#.utf8), policy: FingerprintPolicy(headers: ["X-Tenant", "Accept"]))
        #expect(Hex.encode(raw) == "4d5bd51a815619e1de183be4ac2c88224884f4960ccb5c8e70b7f9bbcf8fda92")
        let json = Fingerprinter.fingerprint(
            method: "POST", target: "/v1/charges", headers: [("Content-Type", "application/json")],
            body: Array(#"{"b": 2, "a": 1}"#.utf8), policy: FingerprintPolicy(body: .json))
        #expect(Hex.encode(json) == "eba138b810a4ff9c0016161211e8e76de4194631a1b767b447cbdc75fcdc9e50")
    }

    @Test func bracesInTheKeyCannotChooseTheSlot() {
        let key = storageKey(prefix: "idem:", scope: nil, key: "{evil}")
        #expect(key.filter { $0 == "{" }.count == 1)
        #expect(StorageKey.isValidPrefix("idem:"))
        #expect(!StorageKey.isValidPrefix("idem:{x}"))
    }

    /// The proxy derives storage keys from the key's bytes; tools and stored records use the
    /// `String` form. Both must name the same record.
    @Test func aKeyGivenAsBytesNamesTheSameRecord() {
        for key in ["a", "8e03978e-40d5-43e8-bc93-6894a57f9324", "a\"b\\c", String(repeating: "k", count: 255)] {
            for scope in [nil, Array("tenant-1".utf8), []] as [[UInt8]?] {
                let fromString = scope.map { s in s.withUnsafeBytes { StorageKey.make(prefix: "idem:", scope: $0, key: key) } }
                    ?? StorageKey.make(prefix: "idem:", scope: nil, key: key)
                let fromBytes = Array(key.utf8).withUnsafeBytes { keyBytes in
                    scope.map { s in s.withUnsafeBytes { StorageKey.make(prefix: "idem:", scope: $0, key: keyBytes) } }
                        ?? StorageKey.make(prefix: "idem:", scope: nil, key: keyBytes)
                }
                #expect(fromString == fromBytes, "\(key) \(String(describing: scope))")
            }
        }
    }

    /// The bytes written into a reused buffer are the String's, whatever the buffer held before
    /// (a longer or shorter key, from another prefix).
    @Test func theKeyWrittenIntoABufferIsTheStringsBytes() {
        var buffer: [UInt8] = Array(repeating: 0x5A, count: 200)
        for prefix in ["idem:", "", "a-much-longer-prefix:with:parts:", "x"] {
            for key in ["a", "8e03978e-40d5-43e8-bc93-6894a57f9324"] {
                for scope in [nil, Array("Bearer caller-1".utf8)] as [[UInt8]?] {
                    let expected = storageKey(prefix: prefix, scope: scope, key: key)
                    Array(key.utf8).withUnsafeBytes { keyBytes in
                        if let scope {
                            scope.withUnsafeBytes { StorageKey.write(prefix: prefix, scope: $0, key: keyBytes, into: &buffer) }
                        } else {
                            StorageKey.write(prefix: prefix, scope: nil, key: keyBytes, into: &buffer)
                        }
                    }
                    #expect(buffer == Array(expected.utf8), "\(prefix) \(key) \(String(describing: scope))")
                }
            }
        }
    }
}
