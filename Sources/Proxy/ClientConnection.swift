import EventLoop
import Glibc
import HTTP1
import Idempotency
import Upstream

/// One client connection: reads requests, forwards each to the upstream, and writes the
/// responses back in order. Requests on a connection are handled one at a time; pipelined
/// requests wait in `pending` until the previous response is complete (RFC 9112 §9.3.2).
///
/// Bytes are read into the loop's shared read buffer and processed in place; only what cannot
/// be processed yet (a partial head, a pipelined request, body bytes held back by
/// back-pressure) is copied into `pending`. An idle keep-alive connection owns no buffer.
///
/// Decisions about the connection's lifecycle (phases, timers, how it ends) are made by the
/// `ConnectionLifecycle` value it holds; this class does the I/O they call for.
final class ClientConnection: EventHandler {
    typealias Phase = ConnectionLifecycle.Phase
    typealias TimerPurpose = ConnectionLifecycle.TimerPurpose

    let fd: Int32
    let peer: String
    /// Strong `let`s, for speed as much as safety: a method called through a strong `let` of
    /// an object that is itself alive needs no reference counting, while one called through an
    /// `unowned(unsafe)` reference is bracketed by an atomic retain and release (the compiler
    /// makes a strong copy for the call), on each of the many uses per request. The cycles
    /// they make (the worker's table of connections, the loop's registrations) end when the
    /// connection closes and leaves both; `Worker.forceClose` closes every one at shutdown.
    let worker: Worker
    /// Cached from the worker: read on every request.
    let loop: EventLoop
    let settings: ProxySettings

    /// Phase, timer and closing state (see the table in `ConnectionLifecycle`).
    var lifecycle = ConnectionLifecycle()
    var phase: Phase {
        get { lifecycle.phase }
        set { lifecycle.phase = newValue }
    }
    var clientFinished: Bool {
        get { lifecycle.clientFinished }
        set { lifecycle.clientFinished = newValue }
    }
    var closeAfterResponse: Bool {
        get { lifecycle.closeAfterResponse }
        set { lifecycle.closeAfterResponse = newValue }
    }
    var timerPurpose: TimerPurpose { lifecycle.timer }
    /// Unprocessed client bytes, oldest first (usually empty).
    var pending: [UInt8] = []
    var out = OutputBuffer()
    var head = RequestHead()
    /// The guarded request's unquoted key, parsed in place of a new `String` per request.
    var parsedKey: [UInt8] = []
    var headScanHint = 0
    var inProcess = false
    /// Bytes of the read `process` is working through that come after the request it is at:
    /// pipelined requests not in `pending` yet. 0 outside `process`.
    var unprocessedInputInProcess = 0
    /// The last `process` stopped with body bytes held back for a slow upstream (they wait in
    /// `pending`), not for want of bytes: an EOF read meanwhile does not cut the body yet.
    var bodyHeldBack = false
    /// Body bytes received since the body timer was last armed (see `minimumBodyRate`).
    var bodyBytesSinceArmed = 0
    /// Bytes the client took since the send timer was last armed (same rate).
    var sentBytesSinceArmed = 0
    /// Lingering ends by this time whatever the client does.
    var lingerDeadline: UInt64 = 0
    /// The timers capture the connection `unowned(unsafe)`, not `weak`: one weak reference
    /// gives an object a side table, and every retain and release of it then takes the slow
    /// path. `deinit` cancels each, so a queued timer never fires for a freed connection; while
    /// one fires, a strong reference keeps the connection alive to the end of the call.
    let timer = Timer()
    /// Lease refresh while a guarded request is upstream; poll interval while waiting.
    let leaseTimer = Timer()
    /// send_timeout while a request body streams (`streamingBody`), when `timer` measures the
    /// body: an answer that began early (or a 100 Continue) must still be taken.
    let uploadSendTimer = Timer()
    /// Bytes the client took since `uploadSendTimer` was last armed.
    var sentBytesSinceUploadSendArmed = 0
    /// The client connection is gone but a guarded exchange still runs to completion so its
    /// result is stored: a client's disconnect never cancels a guarded request (SPEC §4).
    var clientGone = false

    /// The exchange in progress, if any.
    var exchange = Exchange()
    var upstream: UpstreamConnection?
    /// "X-Forwarded-For: <peer>\r\nX-Forwarded-Proto: http\r\n", formatted at the first
    /// forwarded request (SPEC §5).
    var forwardedLines: [UInt8] = []

    /// Upstream bytes queued beyond this stop client reads (and client bytes queued beyond it
    /// stop upstream reads): memory per connection stays bounded whatever the body size.
    static let highWatermark = 256 * 1024
    static let maxPendingPipelined = 64 * 1024

    init(fd: Int32, peer: String, worker: Worker) {
        self.fd = fd
        self.peer = peer
        self.worker = worker
        self.loop = worker.loop
        self.settings = worker.settings
        timer.onFire { [unowned(unsafe) self] in
            let connection = self
            withExtendedLifetime(connection) { connection.timerFired() }
        }
        leaseTimer.onFire { [unowned(unsafe) self] in
            let connection = self
            withExtendedLifetime(connection) { connection.guardTimerFired() }
        }
        uploadSendTimer.onFire { [unowned(unsafe) self] in
            let connection = self
            withExtendedLifetime(connection) { connection.uploadSendTimerFired() }
        }
    }

    deinit {
        // The loop's timer heap may still hold them; they capture this object unretained.
        timer.cancel()
        leaseTimer.cancel()
        uploadSendTimer.cancel()
    }

    func start() {
        // The header deadline starts at accept: a client that connects and sends nothing, or
        // one byte a second, is cut at header_timeout (slowloris).
        setTimer(.header)
    }

    // MARK: events

    func handleEvent(readable: Bool, writable: Bool) {
        if writable { flushOut() }
        // flushOut may have closed or detached the connection: the fd is gone then.
        if readable && phase != .closed && !clientGone { readFromClient() }
    }

    private func readFromClient() {
        if phase == .lingering {
            drainLingering()
            return
        }
        let buffer = loop.clientReadBuffer
        let result: IOResult<Int>
        do {
            result = try Socket.read(fd, into: buffer)
        } catch {
            perform(lifecycle.readFailed())
            return
        }
        switch result {
        case .wouldBlock:
            return
        case .processed(0):
            clientSentEOF()
        case .processed(let count):
            if phase == .awaitingHead && pending.isEmpty && timerPurpose == .idle { setTimer(.header) }
            if phase == .streamingBody || phase == .bufferingBody { bodyProgress(count) }
            let fresh = UnsafeRawBufferPointer(rebasing: buffer[..<count])
            if pending.isEmpty {
                let consumed = process(fresh)
                if consumed < count && phase != .closed {
                    pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: fresh[consumed...]))
                    nextHeadBuffered()
                }
            } else {
                pending.append(contentsOf: fresh)
                processPending()
            }
            updateInterest()
        }
    }

    /// Processes buffered bytes, e.g. the next pipelined request after a response finished.
    func processPending() {
        guard !pending.isEmpty, !inProcess else { return }
        var bytes = pending
        pending = []
        let consumed = bytes.withUnsafeBytes { process($0) }
        if consumed < bytes.count && phase != .closed {
            bytes.removeFirst(consumed)
            pending = bytes
            nextHeadBuffered()
        }
        endIfClientFinished()
    }

    /// Bytes left over after the request just answered are the start of the next head: the
    /// wait for the rest is header_timeout's. The answer may have finished inside `process`,
    /// while these bytes were not yet buffered, and set the idle timer instead.
    private func nextHeadBuffered() {
        if phase == .awaitingHead && timerPurpose == .idle { setTimer(.header) }
    }

    // MARK: processing

    /// Consumes as many bytes as the current phase allows and returns how many were used.
    func process(_ bytes: UnsafeRawBufferPointer) -> Int {
        let wasInProcess = inProcess, outerUnprocessed = unprocessedInputInProcess
        inProcess = true
        defer { inProcess = wasInProcess; unprocessedInputInProcess = outerUnprocessed }
        var offset = 0 {
            // An answer written inside `process` (a replay, an error, a write that failed at
            // once) must know whether requests follow it in this read.
            didSet { unprocessedInputInProcess = bytes.count - offset }
        }
        unprocessedInputInProcess = bytes.count
        bodyHeldBack = false
        loop: while true {
            switch phase {
            case .awaitingHead:
                // The next pipelined request waits until the answers ahead of it are written
                // to the socket (`flushOut` takes it up). A replay is written whole at once, so
                // without this a few KB of pipelined retries could queue gigabytes; and an
                // answer that starts behind nothing can only be completed or cut, never cut
                // together with an earlier answer still queued ahead of it.
                guard offset < bytes.count, out.isEmpty else { break loop }
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                let complete: Bool
                do {
                    complete = try RequestHeadParser.parse(rest, into: &head, limits: settings.parserLimits, scanHint: headScanHint)
                } catch {
                    rejectRequest(error)
                    return bytes.count
                }
                guard complete else {
                    headScanHint = rest.count
                    break loop
                }
                headScanHint = 0
                offset += head.headLength
                startExchange(source: rest)
            case .streamingBody, .bufferingBody:
                // One body loop for both: a streamed body goes to the upstream as it arrives
                // (with back-pressure), a guarded body is kept until it is complete.
                let streaming = phase == .streamingBody
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                // Back-pressure holds body bytes back; with nothing left to forward the decoder
                // is still asked, so a body whose last bytes already went out ends now.
                if streaming, let upstream, upstream.outbound.pendingCount > Self.highWatermark, !rest.isEmpty {
                    bodyHeldBack = true
                    break loop
                }
                let step: (event: BodyDecoder.Event, consumed: Int)
                do {
                    step = try exchange.requestDecoder.next(rest)
                } catch {
                    if streaming { requestBodyInvalid(error) } else { rejectRequest(error) }
                    return bytes.count
                }
                offset += step.consumed
                switch step.event {
                case .data(let range):
                    let data = UnsafeRawBufferPointer(rebasing: rest[range])
                    if streaming {
                        forwardRequestBody(data)
                    } else if !bufferGuardedBody(data) {
                        return bytes.count
                    }
                case .end:
                    if streaming { finishRequestBody() } else { guardedBodyComplete() }
                case .needMore:
                    break loop
                }
            case .awaitingResponse, .closing, .lingering, .closed:
                break loop
            }
        }
        let phaseBeforeFlush = phase
        upstream?.flush()
        // The flush can end the exchange there and then: a write into a reused connection the
        // upstream had just reset is answered 502 at once. Its `requestFinished` cannot start
        // the next request from inside `process` (`inProcess`), so the bytes after it go on here.
        if phaseBeforeFlush != .awaitingHead, phase == .awaitingHead, offset < bytes.count {
            return offset + process(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        }
        // The flush above may have drained the upstream while back-pressure held bytes here;
        // the drain callback cannot re-enter, so continue with them now.
        // Only a stop for back-pressure is retried: a stop because a framing line is incomplete
        // must wait for more bytes, or this would recurse without end.
        if bodyHeldBack, phase == .streamingBody, offset < bytes.count, let upstream, upstream.outbound.pendingCount <= Self.highWatermark {
            return offset + process(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        }
        return offset
    }

    // MARK: output

    func flushOut() {
        guard phase != .closed else { return }
        if clientGone {
            out.reset()
            upstream?.setReading(true)
            return
        }
        do {
            let before = out.pendingCount
            let result = try out.flush(to: fd)
            // A client that is reading (slowly) keeps the exchange alive: the upstream side
            // may be paused for it, and that must not look like a silent upstream.
            if out.pendingCount < before, let upstream, upstream.activityTimeoutMillis > 0, exchange.responseStarted {
                restartUpstreamTimer(upstream)
            }
            // Progress re-arms send_timeout only at the minimum rate (see `sendProgress`).
            if out.pendingCount < before {
                if timerPurpose == .send { sendProgress(before - out.pendingCount) }
                if uploadSendTimer.isArmed { uploadSendProgress(before - out.pendingCount) }
            }
            switch result {
            case .drained:
                uploadSendTimer.cancel()
                // A close-delimited body the upstream finished is whole for the client only
                // once all of it is written: until then a close must still be a reset.
                if phase == .closing { exchange.responseEndsAtClose = false }
                let pendingInput = !pending.isEmpty || headScanHint != 0
                let closing = phase == .closing || (phase == .awaitingHead && closeAfterResponse)
                let action = lifecycle.outputDrained(
                    pendingInput: pendingInput,
                    unreadInput: closing && !clientFinished && (pendingInput || Socket.hasBytesWaiting(fd)),
                    unacknowledged: closing && clientExpectsAnotherRequest && Socket.unacknowledgedBytes(fd) > 0)
                if action == .close || action == .startLingering {
                    perform(action)
                    return
                }
                // The client caught up: let upstream bytes flow again.
                upstream?.setReading(true)
                perform(action)
                // Pipelined requests held back behind the answers just written.
                if before > 0 && phase == .awaitingHead && !pending.isEmpty {
                    processPending()
                    if phase == .closed { return }
                }
            case .partial:
                if out.pendingCount > Self.highWatermark { upstream?.setReading(false) }
                if phase == .streamingBody { startUploadSendTimer() }
                perform(lifecycle.outputBackedUp())
            }
        } catch {
            // The client is gone (EPIPE, reset).
            clientFinished = true
            abort()
            return
        }
        updateInterest()
    }

    /// Level-triggered interest: read only when the next bytes can be used, write only while
    /// output is queued.
    func updateInterest() {
        guard phase != .closed, !clientGone else { return }
        var interest: Interest = []
        if !out.isEmpty { interest.insert(.write) }
        if !clientFinished {
            switch phase {
            case .awaitingHead where !out.isEmpty:
                // Requests wait for the answers ahead to be written: read only up to the
                // pipelining bound (and so still notice an EOF).
                if pending.count < Self.maxPendingPipelined { interest.insert(.read) }
            case .awaitingHead, .bufferingBody:
                interest.insert(.read)
            case .streamingBody:
                if (upstream?.outbound.pendingCount ?? 0) <= Self.highWatermark && pending.count < Self.highWatermark {
                    interest.insert(.read)
                    // Reads resume after back-pressure: the body's rate is measured again. Not
                    // while bytes the client already sent are still held back here (reads
                    // resumed with the upstream's queue below the watermark but not drained):
                    // the client may have nothing left to send, and the wait is the upstream's,
                    // whose timer runs while its queue is not empty. `upstreamDidDrain` takes
                    // them up and restarts this timer.
                    if timerPurpose == .none && !(bodyHeldBack && !pending.isEmpty) { startBodyTimer() }
                } else if timerPurpose == .body {
                    // Held back for the upstream, whose own timer covers the wait: the client
                    // is not the slow one, so its body timer pauses.
                    setTimer(.none)
                }
            case .awaitingResponse:
                // Keep reading pipelined requests (and notice EOF) up to a bound.
                if pending.count < Self.maxPendingPipelined { interest.insert(.read) }
            case .lingering:
                interest.insert(.read)
            case .closing, .closed:
                break
            }
        }
        loop.setInterest(fd, interest)
    }
}
