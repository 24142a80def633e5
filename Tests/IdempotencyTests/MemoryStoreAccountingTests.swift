import Synchronization
import TestRandom
import Testing
@testable import Idempotency

/// The memory store's charged bytes against a reference, exactly, under a tight bound (claims
/// refused as full), with claims given as borrowed bytes and as Strings, lease-expired holds and
/// releases, completions, marks and refreshes; after a sweep at the current time, usedBytes is
/// the sum of the live records' costs and every record the model holds is still there.
@Suite struct MemoryStoreAccountingTests {
    private final class Clock: Sendable {
        let millis = Atomic<UInt64>(9_000_000)
        var now: UInt64 { millis.load(ordering: .relaxed) }
    }

    struct M { var state: RecordState; var owner: [UInt8]; var lease: UInt64; var expiry: UInt64; var cost: Int }

    static let fp = [UInt8](repeating: 3, count: 32)

    @Test(arguments: [11, 12, 13, 14])
    func exactAccountingUnderATightBound(seed: Int) {
        var random = SeededRandom(state: UInt64(seed))
        func next() -> UInt64 { random.next() }
        let clock = Clock()
        let response = StoredResponse(status: 201, body: Array("a stored body".utf8))
        func cost(_ key: String, _ withResponse: Bool) -> Int {
            MemoryStore.recordOverhead + key.utf8.count + 32 + 16 + (withResponse ? response.storedBytes : 0)
        }
        let maxBytes = cost("key-00", true) * 6
        let store = MemoryStore(maxBytes: maxBytes, clock: { clock.now }, wallClock: { 0 })
        var model: [String: M] = [:]
        let keys = (0..<14).map { String(format: "key-%02d", $0) }
        var nextOwner = 1
        for step in 0..<20_000 {
            let now = clock.now
            let key = keys[Int(next() % UInt64(keys.count))]
            if let m = model[key], m.expiry <= now { model[key] = nil }
            let lease = UInt64([1, 50, 1_000][Int(next() % 3)])
            let ttl = UInt64([0, 10, 2_000][Int(next() % 3)])
            let pick = model[key].map { next() % 4 != 0 ? $0.owner : ownerToken(999) } ?? ownerToken(999)
            switch next() % 10 {
            case 0..<4:
                let policy: IndeterminatePolicy = next() % 2 == 0 ? .hold : .release
                let owner = ownerToken(nextOwner)
                nextOwner += 1
                let result: Result<ClaimOutcome, StoreError>?
                if next() % 2 == 0 {
                    var bytes = Array(key.utf8)
                    result = bytes.withUnsafeMutableBytes { buffer in
                        defer { for i in buffer.indices { buffer[i] = 0x5A } }
                        return store.claimNow(
                            storageKey: UnsafeRawBufferPointer(buffer), text: { key }, owner: owner, fingerprint: Self.fp,
                            lease: .milliseconds(Int64(lease)), ttl: .milliseconds(Int64(ttl)), expiredLease: policy)
                    }
                } else {
                    result = store.claimNow(
                        key: key, owner: owner, fingerprint: Self.fp, lease: .milliseconds(Int64(lease)), ttl: .milliseconds(Int64(ttl)),
                        expiredLease: policy)
                }
                let used = model.values.reduce(0) { $0 + $1.cost }
                if var m = model[key] {
                    if m.state == .inFlight && m.lease <= now {
                        if policy == .hold {
                            m.state = .unknown; m.expiry = now + ttl; model[key] = m
                        } else {
                            model[key] = M(state: .inFlight, owner: owner, lease: now + lease, expiry: now + lease + ttl, cost: cost(key, false))
                            if case .success(.claimed) = result {} else { Issue.record("step \(step): release-claim \(String(describing: result))") }
                        }
                    }
                } else if used + cost(key, false) <= maxBytes {
                    model[key] = M(state: .inFlight, owner: owner, lease: now + lease, expiry: now + lease + ttl, cost: cost(key, false))
                    if case .success(.claimed) = result {} else { Issue.record("step \(step): claim \(String(describing: result))") }
                } else {
                    if case .failure(.full) = result {} else { Issue.record("step \(step): wanted full, got \(String(describing: result))") }
                }
            case 4..<6:
                let ok = store.completeNow(key, owner: pick, response: response, ttl: .milliseconds(Int64(ttl)))
                var want = false
                if var m = model[key], m.owner == pick {
                    if m.state == .completed { want = true } else if m.state == .inFlight {
                        want = true; m.state = .completed; m.expiry = now + ttl; m.cost = cost(key, true); model[key] = m
                    }
                }
                #expect(ok == want, "step \(step): complete")
            case 6:
                let ok = store.markUnknownNow(key, owner: pick, ttl: .milliseconds(Int64(ttl)))
                var want = false
                if var m = model[key], m.owner == pick {
                    if m.state == .unknown { want = true } else if m.state == .inFlight {
                        want = true; m.state = .unknown; m.expiry = now + ttl; model[key] = m
                    }
                }
                #expect(ok == want, "step \(step): markUnknown")
            case 7:
                let ok = store.refreshNow(key, owner: pick, lease: .milliseconds(Int64(lease)), ttl: .milliseconds(Int64(ttl)))
                var want = false
                if var m = model[key], m.state == .inFlight, m.owner == pick {
                    want = true; m.lease = now + lease; m.expiry = max(m.expiry, m.lease + ttl); model[key] = m
                }
                #expect(ok == want, "step \(step): refresh")
            case 8:
                let ok = store.releaseNow(key, owner: pick)
                var want = false
                if let m = model[key], m.state == .inFlight, m.owner == pick { want = true; model[key] = nil }
                #expect(ok == want, "step \(step): release")
            default:
                clock.millis.store(now + [0, 1, 9, 30, 700, 2_500][Int(next() % 6)], ordering: .relaxed)
            }
            // Sweep at the current time: what is left is exactly what the model holds.
            let at = clock.now
            store.sweep(now: at)
            for (k, m) in model where m.expiry <= at { _ = k; model[k] = nil }
            let want = model.values.reduce(0) { $0 + $1.cost }
            if store.usedBytes != want || store.storedCount != model.count {
                Issue.record("step \(step) seed \(seed): usedBytes \(store.usedBytes) want \(want); stored \(store.storedCount) want \(model.count)")
                return
            }
            for (k, m) in model {
                let got = store.getNow(k)
                if got?.state != m.state || got?.owner != m.owner {
                    Issue.record("step \(step): \(k) got \(String(describing: got?.state)) want \(m.state)")
                    return
                }
            }
        }
        clock.millis.store(clock.now + 10_000_000, ordering: .relaxed)
        store.sweep()
        #expect(store.usedBytes == 0)
        #expect(store.expiryNoteCount == 0)
    }
}
