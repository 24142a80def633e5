import EventLoop
import HTTP1

/// One admin connection: one request head read, one answer written, then a lingering close.
///
/// Its one timer bounds each phase separately, because the phases wait on different things:
///
/// | phase            | timer                                        | on expiry                          |
/// |------------------|----------------------------------------------|------------------------------------|
/// | `readingHead`    | `headMillis` from accept                     | close (no request to answer)       |
/// | `awaitingAnswer` | the store's own budget for the operation     | `503`: the outcome is unknown      |
/// | `writing`        | `sendMillis` from the answer                 | close (the client stopped reading) |
/// | `lingering`      | `lingerMillis` from the answer's last byte   | close                              |
///
/// A `/records` call waits on the store for as long as the store's timeouts allow
/// (`command_timeout` per command, and a purge's chain of commands plus its settle wait), so a
/// fixed bound from accept would cut slow but healthy answers, and a DELETE cut so would leave
/// the operator without knowing whether the record went.
final class AdminConnection: EventHandler {
    /// Reading the request head: admin requests are one small head.
    static let headMillis: UInt64 = 5_000
    /// Writing the answer to a client that does not read it.
    static let sendMillis: UInt64 = 5_000
    /// Draining what the client still sends after the answer (SPEC §5 lingering close).
    static let lingerMillis: UInt64 = 2_000
    /// Beyond this many bytes drained, the client is not finishing a request but streaming:
    /// close anyway (nginx's lingering close gives up the same way, at `lingering_time`).
    static let lingerMaxBytes = 1 << 20

    enum Phase: Equatable {
        case readingHead, awaitingAnswer, writing, lingering, closed

        /// A request was taken and its answer is owed or being written: a graceful shutdown
        /// waits for these (up to `shutdown_grace`), as it does for the proxy's own exchanges
        /// (SPEC §5). Not a lingering one: its answer is out, and a client that keeps its
        /// socket open must not hold the shutdown for the linger.
        var holdsAnAnswer: Bool { self == .awaitingAnswer || self == .writing }
    }

    let fd: Int32
    unowned let endpoint: AdminEndpoint
    private(set) var phase = Phase.readingHead {
        didSet {
            if oldValue.holdsAnAnswer != phase.holdsAnAnswer {
                endpoint.connectionsHoldingAnAnswer.add(phase.holdsAnAnswer ? 1 : -1, ordering: .relaxed)
            }
        }
    }
    private var input: [UInt8] = []
    private var out = OutputBuffer()
    /// Written in place of the store's answer if it has not come by the deadline.
    private var outcomeUnknown: AdminAnswer?
    /// A `HEAD` request: its answer is the `GET` answer's head alone (RFC 9110 §9.3.2).
    private var headOnly = false
    private var lingerDrained = 0
    lazy var timer = Timer { [weak self] in self?.timerFired() }

    init(fd: Int32, endpoint: AdminEndpoint) {
        self.fd = fd
        self.endpoint = endpoint
    }

    /// Just accepted: the head must come within `headMillis`.
    func awaitHead() {
        endpoint.loopRef.arm(timer, after: Self.headMillis)
    }

    func handleEvent(readable: Bool, writable: Bool) {
        switch phase {
        case .readingHead where readable:
            readHead()
        case .awaitingAnswer where readable:
            // Read interest is off while the answer waits, so this is epoll's error or
            // hang-up, which it reports whatever the interest, on every turn (level-triggered)
            // until the socket closes: left open, the loop would spin. The client reset or
            // left: close now; the pending answer then finds the connection closed.
            if !Socket.isIdleConnectionAlive(fd) { close() }
        case .writing:
            // Writable, or (interest is write only) an error or hang-up, which the next write
            // reports.
            flush()
        case .lingering where readable:
            drain()
        default:
            break
        }
    }

    private func timerFired() {
        switch phase {
        case .awaitingAnswer:
            if let outcomeUnknown { write(outcomeUnknown) } else { close() }
        case .readingHead, .writing, .lingering, .closed:
            close()
        }
    }

    // MARK: the request

    private func readHead() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let result = chunk.withUnsafeMutableBytes { raw in Result { () throws(IOError) in try Socket.read(fd, into: raw) } }
        switch result {
        case .success(.processed(0)), .failure:
            close()
        case .success(.wouldBlock):
            break
        case .success(.processed(let count)):
            input.append(contentsOf: chunk[0..<count])
            parse()
        }
    }

    private func parse() {
        var head = RequestHead()
        let outcome = input.withUnsafeBytes { raw -> AdminRequest?? in
            do {
                guard try RequestHeadParser.parse(raw, into: &head, limits: HTTPParserLimits(maxHeaderBytes: 8192, maxHeaders: 64)) else { return .none }
                let target = Substring(decoding: UnsafeRawBufferPointer(rebasing: raw[head.target]), as: UTF8.self)
                let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
                let authorization = head.values(ofField: "authorization", in: raw)
                return .some(AdminRequest(
                    method: head.method, path: parts.first ?? "", query: parts.count > 1 ? parts[1] : "",
                    authorization: authorization.count == 1 ? Array(raw[authorization[0]]) : nil))
            } catch {
                return .some(nil)
            }
        }
        guard let outcome else { return }  // the head is not complete yet
        input = []
        // Nothing more is read until the answer is out (then the lingering close drains it):
        // stop watching for input, or a client that half-closes (or sends a body) while the
        // answer waits on the store would wake this level-triggered loop on every turn.
        endpoint.loopRef.setInterest(fd, [])
        guard let request = outcome else {
            write(AdminAnswer(status: 400, body: "{\"error\":\"bad request\"}\n"))
            return
        }
        awaitAnswer(to: request)
    }

    /// The deadline covers what the store may take (its own timeouts answer first, with their
    /// own words); set before asking, since an answer may come at once.
    private func awaitAnswer(to request: AdminRequest) {
        headOnly = request.method == .head
        phase = .awaitingAnswer
        let budget = endpoint.answerBudgetMillis(for: request)
        outcomeUnknown = AdminRecords.outcomeUnknown(request.method, afterMillis: budget)
        endpoint.loopRef.arm(timer, after: budget)
        endpoint.respond(to: request) { [weak self] answer in self?.write(answer) }
    }

    // MARK: the answer

    /// Queues the answer (the first one only: a store answer after the deadline's `503` is
    /// dropped) and writes what the socket takes.
    private func write(_ answer: AdminAnswer) {
        guard phase == .readingHead || phase == .awaitingAnswer else { return }
        phase = .writing
        endpoint.loopRef.arm(timer, after: Self.sendMillis)
        let body = Array(answer.body.utf8)
        let start = out.bytes.count
        body.withUnsafeBytes { raw in
            HeadWriter.writeResponse(
                status: answer.status, reason: nil,
                fields: [("Content-Type", answer.contentType), ("Cache-Control", "no-store")] + answer.extraFields,
                body: raw, close: true, into: &out.bytes)
        }
        // A HEAD answer carries the GET answer's fields, Content-Length included, and no
        // content (RFC 9110 §9.3.2): the content is what the writer appended last.
        if headOnly && HeadWriter.responseHasContent(status: answer.status) && out.bytes.count - start >= body.count {
            out.bytes.removeLast(body.count)
        }
        flush()
    }

    private func flush() {
        do {
            switch try out.flush(to: fd) {
            case .drained:
                startLingering()
            case .partial:
                endpoint.loopRef.setInterest(fd, [.write])
            }
        } catch {
            close()
        }
    }

    // MARK: the lingering close

    /// The answer is out: shut the write side (the client reads EOF after the answer), then
    /// read and discard what it still sends (a body never read, a pipelined request) until it
    /// closes, or for `lingerMillis`. Closing with input unread would make the kernel answer
    /// with a reset, which can destroy the answer before the client reads it (SPEC §5,
    /// RFC 9112 §9.6).
    private func startLingering() {
        phase = .lingering
        Socket.shutdownWrite(fd)
        endpoint.loopRef.setInterest(fd, [.read])
        endpoint.loopRef.arm(timer, after: Self.lingerMillis)
    }

    private func drain() {
        var chunk = [UInt8](repeating: 0, count: 16384)
        // Bounded per event (level-triggered: the rest comes with the next one).
        for _ in 0..<16 {
            let result = chunk.withUnsafeMutableBytes { raw in Result { () throws(IOError) in try Socket.read(fd, into: raw) } }
            switch result {
            case .success(.processed(0)), .failure:
                close()  // the client closed (or reset): nothing is left to protect
                return
            case .success(.wouldBlock):
                return
            case .success(.processed(let count)):
                lingerDrained += count
                if lingerDrained > Self.lingerMaxBytes {
                    close()
                    return
                }
            }
        }
    }

    /// The shutdown's grace is over: an answer still owed by the store is the `503` that says
    /// the outcome is unknown (for a purge: it may or may not have been applied), written as
    /// far as the socket takes it at once; then the connection closes.
    func closeForShutdown() {
        if phase == .awaitingAnswer, let outcomeUnknown { write(outcomeUnknown) }
        close()
    }

    func close() {
        guard fd >= 0, phase != .closed else { return }
        phase = .closed
        timer.cancel()
        endpoint.loopRef.deregister(fd)
        Socket.close(fd)
        endpoint.closed(self)
    }
}
