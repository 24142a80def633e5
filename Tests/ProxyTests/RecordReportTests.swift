import Config
import Foundation
import Idempotency
import Testing
import TestSupport
@testable import Proxy

/// The pure parts of `/records` and `idemproxy records`: query decoding, key normalisation,
/// and what a record looks like to an operator.
@Suite struct RecordReportTests {
    @Test func queryValuesAreFormDecoded() {
        #expect(AdminRecords.percentDecoded("Bearer+sk_1%2Fx%3d") == Array("Bearer sk_1/x=".utf8))
        #expect(AdminRecords.percentDecoded("%e9") == [0xE9])
        #expect(AdminRecords.percentDecoded("a%2") == nil)
        #expect(AdminRecords.percentDecoded("a%zz") == nil)
        #expect(AdminRecords.percentDecoded("") == [])
    }

    @Test func theQueryNamesTheSameStorageKeyAsTheProxy() throws {
        let expected = storageKey(prefix: "idem:", scope: Array("Bearer t 1".utf8), key: "order-7")
        #expect(try AdminRecords.lookup(query: "key=order-7&scope=Bearer+t%201", prefix: "idem:").get().storageKey == expected)
        // The key as sent, in its sf-string form, or bare; parameters in any order.
        #expect(try AdminRecords.lookup(query: "scope=Bearer+t+1&key=%22order-7%22", prefix: "idem:").get().storageKey == expected)
        // No scope (scoping off) and an empty one are the same: the proxy never stores under "".
        let unscoped = storageKey(prefix: "idem:", scope: nil, key: "order-7")
        #expect(try AdminRecords.lookup(query: "key=order-7", prefix: "idem:").get().storageKey == unscoped)
        #expect(try AdminRecords.lookup(query: "key=order-7&scope=", prefix: "idem:").get().storageKey == unscoped)
    }

    @Test func aScopeIsRequiredWhenEveryGuardIsScoped() {
        let scoping = RecordScoping.required(headers: ["X-Tenant"])
        guard case .failure(let failure) = AdminRecords.lookup(query: "key=k", prefix: "p:", scoping: scoping) else {
            Issue.record("a lookup without scope passed")
            return
        }
        #expect(failure.message.contains("X-Tenant"))
        #expect((try? AdminRecords.lookup(query: "key=k&scope=", prefix: "p:", scoping: scoping).get()) == nil)
        #expect((try? AdminRecords.lookup(query: "key=k&scope=t1", prefix: "p:", scoping: scoping).get()) != nil)
    }

    /// With scoping off no record has a scope: a lookup that gives one could only miss.
    @Test func aScopeIsAnErrorWhenScopingIsOff() {
        guard case .failure(let failure) = AdminRecords.lookup(query: "key=k&scope=t1", prefix: "p:", scoping: .off) else {
            Issue.record("a scoped lookup passed with scoping off")
            return
        }
        #expect(failure.message.contains("scoping is off"))
        // An empty scope is none.
        #expect((try? AdminRecords.lookup(query: "key=k&scope=", prefix: "p:", scoping: .off).get()) != nil)
        #expect((try? AdminRecords.lookup(query: "key=k", prefix: "p:", scoping: .off).get()) != nil)
        // Some routes scope, some do not: either lookup may find something.
        #expect((try? AdminRecords.lookup(query: "key=k&scope=t1", prefix: "p:", scoping: .mixed).get()) != nil)
        #expect((try? AdminRecords.lookup(query: "key=k", prefix: "p:", scoping: .mixed).get()) != nil)
    }

    /// `force=1` asks a DELETE to purge even a record whose request is still in flight.
    @Test func forceIsAQueryFlag() throws {
        #expect(try AdminRecords.lookup(query: "key=k", prefix: "p:").get().force == false)
        #expect(try AdminRecords.lookup(query: "key=k&force=1", prefix: "p:").get().force == true)
        #expect(try AdminRecords.lookup(query: "force=1&key=k", prefix: "p:").get().storageKey
            == AdminRecords.lookup(query: "key=k", prefix: "p:").get().storageKey)
        #expect((try? AdminRecords.lookup(query: "key=k&force=0", prefix: "p:").get()) == nil)
        #expect((try? AdminRecords.lookup(query: "key=k&force=", prefix: "p:").get()) == nil)
        #expect((try? AdminRecords.lookup(query: "key=k&force=1&force=1", prefix: "p:").get()) == nil)
    }

    /// Purging a live claim would let a retry run upstream beside the original: refused unless
    /// forced. Once the lease has run out (the owner is gone) nothing runs any more.
    @Test func aPurgeLeavesALiveClaimAloneUnlessForced() {
        let clock = ManualClock()
        let store = MemoryStore(clock: { clock.nowMillis })
        func purge(_ key: String, force: Bool) -> RecordPurge.Outcome? {
            var outcome: RecordPurge.Outcome?
            RecordPurge.run(store: store, key: key, force: force) { outcome = $0 }
            return outcome
        }
        func claim(_ key: String) {
            store.claim(key: key, owner: Array(repeating: 1, count: 16), fingerprint: Array(repeating: 2, count: 32),
                        lease: .seconds(10), ttl: .seconds(60), expiredLease: .hold) { #expect((try? $0.get()) == .claimed) }
        }
        #expect(purge("p:{live}", force: false) == .absent)
        claim("p:{live}")
        #expect(purge("p:{live}", force: false) == .stillInFlight(leaseRemainingMillis: 10_000))
        #expect(purge("p:{live}", force: true) == .purged)
        #expect(purge("p:{live}", force: true) == .absent)
        claim("p:{gone}")
        clock.advance(millis: 10_001)
        #expect(purge("p:{gone}", force: false) == .purged)
    }

    @Test func theRefusalSaysTheRequestIsStillInFlight() {
        let message = RecordPurge.refusal(leaseRemainingMillis: 12_500, override: "add force=1")
        #expect(message.hasPrefix("the request is still in flight (lease 12s left)"))
        #expect(message.contains("add force=1"))
    }

    @Test func badQueriesSayWhat() {
        func failure(_ query: Substring) -> String? {
            if case .failure(let failure) = AdminRecords.lookup(query: query, prefix: "p:") { return failure.message }
            return nil
        }
        #expect(failure("")?.contains("key=") == true)
        #expect(failure("key=")?.contains("key=") == true)
        #expect(failure("key=a&key=b")?.contains("twice") == true)
        #expect(failure("key=a&scope=x&scope=y")?.contains("twice") == true)
        #expect(failure("key=a&sope=x")?.contains("sope") == true)
        #expect(failure("key=two+words")?.contains("spaces") == true)
        #expect(failure("key=%22unterminated")?.contains("not an idempotency key") == true)
    }

    static let completed = RecordInspection(
        record: IdempotencyRecord(
            state: .completed, fingerprint: [UInt8](repeating: 0xAB, count: 32), owner: [UInt8](repeating: 1, count: 16),
            leaseDeadlineMillis: 0, createdAtMillis: 1_796_068_578_611,
            response: StoredResponse(status: 201, body: Array("{\"id\":1}".utf8))),
        expiresInMillis: 86_399_909, leaseRemainingMillis: 0)

    @Test func theJSONCarriesTheSpecFields() throws {
        let key = storageKey(prefix: "idem:", scope: nil, key: "k")
        let report = RecordReport(Self.completed, storageKey: key, expiredLease: .hold)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        #expect(object["state"] as? String == "completed")
        #expect(object["status"] as? Int == 201)
        #expect(object["fingerprint"] as? String == String(repeating: "ab", count: 32))
        #expect(object["created_at"] as? String == "2026-11-30T19:56:18.611Z")
        #expect(object["expires_in_ms"] as? Int == 86_399_909)
        #expect(object["body_bytes"] as? Int == 8)
        #expect(object["key_hash"] as? String == String(StorageKey.digestHex(scope: nil, key: "k").prefix(16)))
        #expect(object["lease_expires_in_ms"] == nil)
        #expect(object["lease_expired"] == nil)
        #expect(object["effective_state"] as? String == "completed")
    }

    @Test func inFlightAndOldRecordsReadSensibly() throws {
        var inspection = Self.completed
        inspection.record.state = .inFlight
        inspection.record.response = nil
        inspection.record.createdAtMillis = 0  // written before records carried it
        inspection.leaseRemainingMillis = 12_500
        let report = RecordReport(inspection, storageKey: "p:{00}", expiredLease: .hold)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        #expect(object["status"] is NSNull)
        #expect(object["created_at"] is NSNull)
        #expect(object["lease_expires_in_ms"] as? Int == 12_500)
        #expect(object["lease_expired"] as? Bool == false)
        #expect(object["effective_state"] as? String == "in_flight")
        let text = report.text(nowMillis: 1_796_068_600_000)
        #expect(text.contains("state        in_flight\n"))
        #expect(text.contains("lease        12s left"))
        #expect(text.contains("created      unknown"))
        #expect(!text.contains("status"))
    }

    /// An in-flight record whose lease ran out (its owner died) is not "in flight" to the next
    /// request: under `hold` it gets `409 outcome-unknown`, under `release` it executes. The
    /// stored state stays in `state`; what the next request sees is added beside it.
    @Test(arguments: [(IndeterminateMode?.some(.hold), "unknown"), (.release, "absent"), (nil, nil)] as [(IndeterminateMode?, String?)])
    func anExpiredLeaseReadsAsWhatTheNextRequestSees(_ policy: IndeterminateMode?, _ effective: String?) throws {
        var inspection = Self.completed
        inspection.record.state = .inFlight
        inspection.record.response = nil
        inspection.leaseRemainingMillis = 0
        let report = RecordReport(inspection, storageKey: "p:{00}", expiredLease: policy)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        #expect(object["state"] as? String == "in_flight")
        #expect(object["lease_expires_in_ms"] as? Int == 0)
        #expect(object["lease_expired"] as? Bool == true)
        if let effective {
            #expect(object["effective_state"] as? String == effective)
        } else {
            #expect(object["effective_state"] is NSNull)
        }
        let text = report.text(nowMillis: 1_796_068_600_000)
        let stateLine = try #require(text.split(separator: "\n").first { $0.hasPrefix("state") })
        switch policy {
        case .hold?: #expect(stateLine == "state        in_flight (lease expired: the next request gets 409 outcome-unknown)")
        case .release?: #expect(stateLine == "state        in_flight (lease expired: the next request executes again)")
        case nil: #expect(stateLine.contains("where its route holds"))
        }
        #expect(!text.contains("409 in-flight"))
        #expect(text.contains("records purge") == (policy != .release))
    }

    @Test func theTextSaysWhatToDoAboutAnUnknownRecord() {
        var inspection = Self.completed
        inspection.record.state = .unknown
        inspection.record.response = nil
        let text = RecordReport(inspection, storageKey: "p:{00}", expiredLease: .hold).text(nowMillis: 1_796_068_578_611 + 192_000)
        #expect(text.contains("created      2026-11-30T19:56:18.611Z (3m12s ago)\n"))
        #expect(text.contains("expires in   23h59m59s\n"))
        #expect(text.contains("records purge"))
    }

    @Test func durationsAreShort() {
        #expect(RecordReport.duration(millis: 850) == "850ms")
        #expect(RecordReport.duration(millis: 12_999) == "12s")
        #expect(RecordReport.duration(millis: 192_000) == "3m12s")
        #expect(RecordReport.duration(millis: 86_208_000) == "23h56m48s")
        #expect(RecordReport.duration(millis: 183_600_000) == "2d3h")
    }
}
