import EventLoop
import Glibc

/// One JSON line per request on stdout (`logging.access_log`), buffered per loop and handed
/// in batches — at 16 KiB or every 200 ms — to a `BackgroundWriter`, so logging never blocks
/// a loop, even when the reader of stdout stalls. Lifecycle and error logs go to stderr.
final class AccessLog {
    private var buffer: [UInt8] = []
    private unowned let loop: EventLoop
    private let writer: BackgroundWriter
    private lazy var timer = Timer { [weak self] in self?.flush() }

    init(loop: EventLoop, writer: BackgroundWriter) {
        self.loop = loop
        self.writer = writer
        buffer.reserveCapacity(16 * 1024)
    }

    func record(client: String, method: String, target: String, status: Int, startNanos: UInt64, outcome: String) {
        let micros = (EventLoop.monotonicNanos() &- startNanos) / 1000
        var now = timeval()
        gettimeofday(&now, nil)
        var line = "{\"ts\":\(now.tv_sec).\(Self.threeDigits(Int(now.tv_usec) / 1000)),\"client\":\"\(client)\",\"method\":"
        ProblemResponse.appendJSONString(method, to: &line)
        line += ",\"target\":"
        ProblemResponse.appendJSONString(target, to: &line)
        line += ",\"status\":\(status),\"duration_ms\":\(micros / 1000).\(Self.threeDigits(Int(micros % 1000))),\"outcome\":\"\(outcome)\"}\n"
        buffer.append(contentsOf: line.utf8)
        if buffer.count >= 16 * 1024 {
            flush()
        } else if !timer.isArmed {
            loop.arm(timer, after: 200)
        }
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
