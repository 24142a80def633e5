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

    @Test func bracesInTheKeyCannotChooseTheSlot() {
        let key = storageKey(prefix: "idem:", scope: nil, key: "{evil}")
        #expect(key.filter { $0 == "{" }.count == 1)
        #expect(StorageKey.isValidPrefix("idem:"))
        #expect(!StorageKey.isValidPrefix("idem:{x}"))
    }
}
