import Testing
@testable import Idempotency
@testable import Proxy

/// A token is written into the previous request's buffer only when nothing else holds it: a
/// stored claim must keep the token it was made with.
@Suite struct OwnerTokenSourceTests {
    @Test func aHeldTokenIsNeverOverwrittenAndAFreeOneIsReused() {
        var source = OwnerTokenSource()
        var token = source.next()
        let held = token  // what a store or a settler would keep
        source.next(into: &token)
        #expect(held.count == OwnerToken.length && token.count == OwnerToken.length)
        #expect(held != token)
        #expect(held.prefix(8) == token.prefix(8), "one prefix per source")
        let before = token.withUnsafeBufferPointer { $0.baseAddress }
        let third = source.next()
        source.next(into: &token)
        #expect(token.withUnsafeBufferPointer { $0.baseAddress } == before, "a token nobody holds is rewritten in place")
        #expect(Set([held, third, token]).count == 3)
    }

    @Test func aDigestWrittenIntoABufferEqualsTheReturnedOne() {
        func hasher() -> FramedHasher {
            var input = FramedHasher(domain: "test/domain")
            input.appendField("payload")
            return input
        }
        var digest = [UInt8](repeating: 9, count: 40)
        let held = digest
        hasher().finalize(replacing: &digest)
        #expect(digest == hasher().finalize())
        #expect(held == [UInt8](repeating: 9, count: 40))
    }
}
