import Foundation
import Glibc
import TestSupport

// Soak tests' parts: an origin that counts executions per key, and a client that keeps
// sending new keys, retrying each (same key) until it succeeds, while a test breaks things.

/// Counts executions per idempotency key (each request's body names its key).
final class PerKeyOrigin: @unchecked Sendable {
    private let lock = NSLock()
    private var executions: [String: Int] = [:]

    var responder: TestUpstream.Responder {
        { [self] request in
            let key = String(decoding: request.body, as: UTF8.self)
            lock.lock()
            executions[key, default: 0] += 1
            lock.unlock()
            return .respond(status: 201, headers: [], body: Array("{\"charged\":\"\(key)\"}".utf8))
        }
    }

    var duplicated: [String: Int] {
        lock.lock()
        defer { lock.unlock() }
        return executions.filter { $0.value > 1 }
    }

    func count(_ key: String) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return executions[key] ?? 0
    }
}

/// A client that sends one key at a time and retries it (same key) until it succeeds,
/// recording when each key finally succeeded.
final class RetryingClient: @unchecked Sendable {
    private let lock = NSLock()
    private var successes: [(key: String, at: Date)] = []
    private var running = true
    private var stoppedAt: Date?
    private let thread: Thread

    init(proxy: ProxyHarness) {
        let box = Box()
        thread = Thread {
            var serial = 0
            while box.client?.isRunning ?? false {
                serial += 1
                let key = "soak-\(getpid())-\(serial)"
                var succeeded = false
                while !succeeded, box.client?.isRunning ?? false {
                    succeeded = (try? proxy.request(post(key: key, body: key)).status) == 201
                    if !succeeded { usleep(50_000) }
                }
                if succeeded { box.client?.record(key) }
            }
        }
        box.client = self
        thread.start()
    }

    final class Box: @unchecked Sendable { weak var client: RetryingClient? }

    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    func record(_ key: String) {
        lock.lock()
        successes.append((key, Date()))
        lock.unlock()
    }

    func stop() {
        lock.lock()
        if running { stoppedAt = Date() }
        running = false
        lock.unlock()
        usleep(200_000)
    }

    var keys: [String] {
        lock.lock()
        defer { lock.unlock() }
        return successes.map(\.key)
    }

    /// The longest time without a success, from the last success before `time` on.
    func longestPause(since time: Date) -> TimeInterval {
        lock.lock()
        defer { lock.unlock() }
        // The end counts too (now, or when the client stopped): a client stuck on one key has
        // a pause that lasts until then.
        let times = successes.map(\.at) + [stoppedAt ?? Date()]
        guard let start = times.lastIndex(where: { $0 <= time }) ?? (times.isEmpty ? nil : 0) else { return .infinity }
        var longest: TimeInterval = 0
        for index in (start + 1)..<times.count { longest = max(longest, times[index].timeIntervalSince(times[index - 1])) }
        return times.count > start + 1 ? longest : .infinity
    }
}
