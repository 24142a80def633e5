import Glibc
import Synchronization
@testable import Idempotency

/// Bytes of an ASCII/UTF-8 string literal.
func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A 16-byte owner token numbered `n` (its last 8 bytes, big-endian).
func ownerToken(_ n: Int) -> [UInt8] {
    var token = [UInt8](repeating: 0, count: 16)
    withUnsafeBytes(of: UInt64(n).bigEndian) { for i in 0..<8 { token[8 + i] = $0[i] } }
    return token
}

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let millis: Atomic<UInt64>

    init(_ start: UInt64 = 1_000_000) { millis = Atomic(start) }

    var now: UInt64 { millis.load(ordering: .relaxed) }

    func advance(_ duration: Duration) {
        millis.add(duration.milliseconds, ordering: .relaxed)
    }

    var function: @Sendable () -> UInt64 {
        { [self] in self.now }
    }
}

/// The memory store completes synchronously; these helpers unwrap that.
extension MemoryStore {
    func claimNow(
        _ key: String, owner: [UInt8], fingerprint: [UInt8], lease: Duration = .seconds(30),
        ttl: Duration = .seconds(3600), expiredLease: IndeterminatePolicy = .hold
    ) -> ClaimOutcome {
        var result: Result<ClaimOutcome, StoreError>?
        claim(key: key, owner: owner, fingerprint: fingerprint, lease: lease, ttl: ttl, expiredLease: expiredLease) {
            result = $0
        }
        return try! result!.get()
    }

    func completeNow(_ key: String, owner: [UInt8], response: StoredResponse, ttl: Duration = .seconds(3600)) -> Bool {
        var result: Result<Bool, StoreError>?
        complete(key: key, owner: owner, response: response, ttl: ttl) { result = $0 }
        return try! result!.get()
    }

    func releaseNow(_ key: String, owner: [UInt8]) -> Bool {
        var result: Result<Bool, StoreError>?
        release(key: key, owner: owner) { result = $0 }
        return try! result!.get()
    }

    func markUnknownNow(_ key: String, owner: [UInt8], ttl: Duration = .seconds(3600)) -> Bool {
        var result: Result<Bool, StoreError>?
        markUnknown(key: key, owner: owner, ttl: ttl) { result = $0 }
        return try! result!.get()
    }

    func refreshNow(_ key: String, owner: [UInt8], lease: Duration, ttl: Duration = .seconds(3600)) -> Bool {
        var result: Result<Bool, StoreError>?
        refreshLease(key: key, owner: owner, lease: lease, ttl: ttl) { result = $0 }
        return try! result!.get()
    }

    func getNow(_ key: String) -> IdempotencyRecord? {
        var result: Result<IdempotencyRecord?, StoreError>?
        get(key: key) { result = $0 }
        return try! result!.get()
    }
}

/// Runs `body(threadIndex)` on `count` OS threads that start together, and
/// waits for all of them. Real threads, not tasks, so contention on the
/// store's locks is genuine even when the cooperative pool is small.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Job: @unchecked Sendable {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    let ready = Atomic<Int>(0)
    var threads: [pthread_t] = []
    for index in 0..<count {
        let job = Job {
            ready.add(1, ordering: .acquiringAndReleasing)
            while ready.load(ordering: .acquiring) < count { sched_yield() }
            body(index)
        }
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, Unmanaged.passRetained(job).toOpaque())
        precondition(rc == 0, "pthread_create failed")
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
}
