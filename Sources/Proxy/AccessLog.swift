import EventLoop
import Glibc

/// One line per request on stdout (`logging.access_log`), JSON or readable text
/// (`logging.format`), buffered per loop and handed in batches — at 16 KiB or every 200 ms — to
/// a `BackgroundWriter`, so logging never blocks a loop, even when the reader of stdout stalls.
/// Lifecycle and error logs go to stderr.
///
/// A guarded request's line names its idempotency key only by `key_hash`: the first 16 hex
/// digits of the storage key's digest (SHA-256 of scope and key, SPEC §3). The key and the
/// caller's credential never reach the log, yet an operator can match a line to the record
/// `idemproxy records get` shows, which prints the same hash.
final class AccessLog {
    /// What one line says.
    struct Entry {
        var client: String
        var method: String
        var target: String
        var status: Int
        var durationNanos: UInt64
        /// The `idemproxy_requests_total` label, or `-` for a request refused before any
        /// outcome was decided (counted under none).
        var outcome: String
        var keyHash: Substring?
    }

    private var buffer: [UInt8] = []
    private unowned let loop: EventLoop
    private let writer: BackgroundWriter
    private let json: Bool
    private lazy var timer = Timer { [weak self] in self?.flush() }

    /// Hex digits of the storage key digest shown as `key_hash`: 64 bits, plenty to find one
    /// record among billions, and too few to help anyone guess a key.
    static let keyHashLength = 16

    init(loop: EventLoop, writer: BackgroundWriter, json: Bool = true) {
        self.loop = loop
        self.writer = writer
        self.json = json
        buffer.reserveCapacity(16 * 1024)
    }

    func record(_ entry: Entry) {
        var now = timeval()
        gettimeofday(&now, nil)
        let line = json ? Self.jsonLine(entry, at: now) : Self.textLine(entry, at: now)
        buffer.append(contentsOf: line.utf8)
        if buffer.count >= 16 * 1024 {
            flush()
        } else if !timer.isArmed {
            loop.arm(timer, after: 200)
        }
    }

    static func jsonLine(_ entry: Entry, at now: timeval) -> String {
        let micros = entry.durationNanos / 1000
        var line = "{\"ts\":\(now.tv_sec).\(threeDigits(Int(now.tv_usec) / 1000)),\"client\":\"\(entry.client)\",\"method\":"
        ProblemResponse.appendJSONString(entry.method, to: &line)
        line += ",\"target\":"
        ProblemResponse.appendJSONString(entry.target, to: &line)
        line += ",\"status\":\(entry.status),\"duration_ms\":\(micros / 1000).\(threeDigits(Int(micros % 1000))),\"outcome\":\"\(entry.outcome)\""
        if let keyHash = entry.keyHash { line += ",\"key_hash\":\"\(keyHash)\"" }
        return line + "}\n"
    }

    /// `2026-11-30T19:50:01.123Z 127.0.0.1 "POST /v1/charges" 201 12.345ms forwarded key=1f0c…`
    /// The target passed the parser, so it holds no spaces or control bytes; quoting it still
    /// keeps the line splittable on spaces whatever the method token is.
    static func textLine(_ entry: Entry, at now: timeval) -> String {
        let micros = entry.durationNanos / 1000
        var line = rfc3339(now) + " " + entry.client + " \"" + entry.method + " " + entry.target + "\" "
        line += "\(entry.status) \(micros / 1000).\(threeDigits(Int(micros % 1000)))ms \(entry.outcome)"
        if let keyHash = entry.keyHash { line += " key=" + keyHash }
        return line + "\n"
    }

    static func rfc3339(_ time: timeval) -> String {
        RecordReport.rfc3339(unixMillis: UInt64(time.tv_sec) * 1000 + UInt64(time.tv_usec) / 1000)
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        var batch: [UInt8] = []
        batch.reserveCapacity(16 * 1024)
        swap(&batch, &buffer)
        writer.enqueue(batch)
    }

    private static func threeDigits(_ value: Int) -> String {
        value < 10 ? "00\(value)" : value < 100 ? "0\(value)" : "\(value)"
    }
}
