import EventLoop
import Glibc

/// The connection's timers (which one runs is `ConnectionLifecycle`'s decision; this arms it
/// with its duration), the minimum data rates that decide when a body or a send timer is
/// re-armed, and the lingering close.
extension ClientConnection {
    static let lingerQuietMillis: UInt64 = 2_000
    static let lingerTotalMillis: UInt64 = 10_000
    /// How often a linger that waits for the client to acknowledge what it was sent (before
    /// the reset that cuts a close-delimited body) asks the kernel.
    static let acknowledgementPollMillis: UInt64 = 50

    func setTimer(_ purpose: TimerPurpose) {
        lifecycle.timer = clientGone ? .none : purpose
        armTimer()
    }

    /// While the upstream works the connection's timer is free, unless response bytes are
    /// still queued for the client (a previous pipelined response, an early answer): then
    /// send_timeout keeps running.
    func setTimerWhileUpstreamWorks() {
        setTimer(out.isEmpty ? .none : .send)
    }

    /// Arms the timer for `lifecycle.timer` (its duration from the settings).
    func armTimer() {
        if clientGone { timer.cancel(); return }
        sentBytesSinceArmed = 0
        switch lifecycle.timer {
        case .none: timer.cancel()
        case .header: loop.arm(timer, after: settings.headerTimeoutMillis)
        case .body: loop.arm(timer, after: settings.bodyTimeoutMillis)
        case .idle: loop.arm(timer, after: settings.idleTimeoutMillis)
        case .send: loop.arm(timer, after: settings.sendTimeoutMillis)
        case .linger:
            let wait = lingerWaitsForAcknowledgement ? Self.acknowledgementPollMillis : Self.lingerQuietMillis
            loop.arm(timer, at: min(loop.now + wait, lingerDeadline))
        }
    }

    /// A linger that ends once the client acknowledged what it was sent (or at its deadline),
    /// not after a quiet gap: a cut close-delimited body, whose reset must not discard what was
    /// written before it, and a close idemproxy decided on (`lingerUntilAcknowledged`).
    var lingerWaitsForAcknowledgement: Bool {
        exchange.responseEndsAtClose || lifecycle.lingerUntilAcknowledged
    }

    func timerFired() {
        // No linger ends (but at its deadline) while the client has not acknowledged what it
        // was sent: a reset then would discard it. One that waits for quiet polls on after
        // its quiet gap until it has.
        if lifecycle.timer == .linger, loop.now < lingerDeadline, Socket.unacknowledgedBytes(fd) > 0 {
            loop.arm(timer, at: min(loop.now + Self.acknowledgementPollMillis, lingerDeadline))
            return
        }
        // A body that stopped arriving ends its exchange with a 408, also after the upstream
        // answered early, as long as none of that answer has been written.
        if lifecycle.timer == .body { withdrawUnwrittenResponse() }
        let nothingReceived = pending.isEmpty && headScanHint == 0 && exchange.requestsServed == 0 && out.isEmpty
        let lastAnswerUnacknowledged = lifecycle.timer == .idle && clientExpectsAnotherRequest && Socket.unacknowledgedBytes(fd) > 0
        perform(lifecycle.timerFired(
            nothingReceived: nothingReceived, responseStarted: exchange.responseStarted, lastAnswerUnacknowledged: lastAnswerUnacknowledged))
    }

    /// The error response is written: shut the write side (the client sees EOF after it) and
    /// read and discard what the client still sends, until it closes, goes quiet, or the
    /// total bound passes (nginx's lingering_timeout and lingering_time).
    /// Drains input before the close, so a reset caused by unread input cannot discard what
    /// the client has not yet acknowledged. `shutWrite`: the client sees EOF once it has read
    /// what was sent (not for a cut close-delimited body, whose close must be a reset).
    func startLingering(shutWrite: Bool = true) {
        if shutWrite { Socket.shutdownWrite(fd) }
        phase = .lingering
        lingerDeadline = loop.now + Self.lingerTotalMillis
        setTimer(.linger)
        updateInterest()
    }

    func drainLingering() {
        let buffer = loop.clientReadBuffer
        // Bounded per event (level-triggered: the rest comes with the next one), so a client
        // that sends without pause cannot keep the loop here.
        for _ in 0..<16 {
            let result: IOResult<Int>
            do {
                result = try Socket.read(fd, into: buffer)
            } catch {
                close()
                return
            }
            switch result {
            case .wouldBlock:
                lingerInputDrained()
                return
            case .processed(0):
                // A second EOF: reads are off since the first, so only a hang-up or an error
                // (a reset after the half-close, which a read after EOF reports as 0, not
                // ECONNRESET) wakes the connection now. The client is gone: waiting on would
                // spin on that level-triggered event until the deadline.
                if exchange.responseEndsAtClose && !clientFinished && Socket.unacknowledgedBytes(fd) > 0 {
                    // The client half-closed but still reads: the reset waits for its
                    // acknowledgement all the same.
                    clientFinished = true
                    updateInterest()
                    setTimer(.linger)
                    return
                }
                perform(lifecycle.clientHungUp(outputPending: false))
                return
            case .processed:
                continue
            }
        }
        lingerInputDrained()
    }

    /// Input arrived while lingering. A linger that waits for acknowledgement ends as soon as
    /// there is one, and input must not postpone its poll (a client streaming its next
    /// request would hold the connection to the deadline); one that waits for quiet starts
    /// its quiet gap again.
    private func lingerInputDrained() {
        guard lingerWaitsForAcknowledgement else {
            setTimer(.linger)
            return
        }
        if Socket.unacknowledgedBytes(fd) <= 0 { close() }
    }

    /// body_timeout with a minimum data rate: the timer is re-armed only once the body has
    /// advanced by `minimumBodyRate` bytes per second of `body_timeout` since it was last armed.
    /// A pure stall timer would let a client sending one byte a second hold the connection
    /// (and, streaming, the upstream's) for as long as it likes. 240 B/s is Kestrel's
    /// MinRequestBodyDataRate: slow for any real client, fatal to a trickle.
    static let minimumBodyRate = 240

    /// The bytes a window of `millis` must move at `minimumBodyRate`.
    static func minimumBytes(inWindowMillis millis: UInt64) -> Int {
        max(1, minimumBodyRate * Int(millis / 1000))
    }

    /// send_timeout with the same minimum rate: a client reading 4 KiB every 25 s would
    /// otherwise hold a connection for hours (SPEC §5: slow readers never hold one forever).
    func sendProgress(_ count: Int) {
        sentBytesSinceArmed += count
        if sentBytesSinceArmed >= Self.minimumBytes(inWindowMillis: settings.sendTimeoutMillis) { armTimer() }
    }

    /// send_timeout while the request body streams: the connection's timer measures the body
    /// then, and the client may keep sending while it reads nothing (nginx keeps a read and a
    /// write timer per connection for this). Armed once output is left queued, re-armed at
    /// the minimum rate, stopped when the output drains or the body ends (the connection's
    /// timer takes over). SPEC §5: a send timeout on every phase.
    func startUploadSendTimer() {
        guard !uploadSendTimer.isArmed, !clientGone else { return }
        sentBytesSinceUploadSendArmed = 0
        loop.arm(uploadSendTimer, after: settings.sendTimeoutMillis)
    }

    func uploadSendProgress(_ count: Int) {
        sentBytesSinceUploadSendArmed += count
        guard sentBytesSinceUploadSendArmed >= Self.minimumBytes(inWindowMillis: settings.sendTimeoutMillis) else { return }
        sentBytesSinceUploadSendArmed = 0
        loop.arm(uploadSendTimer, after: settings.sendTimeoutMillis)
    }

    /// The client took too little of its output within send_timeout while uploading: it may
    /// hold the connection, and the upstream's, no longer (as when the connection's own send
    /// timer fires).
    func uploadSendTimerFired() {
        guard phase == .streamingBody, !out.isEmpty else { return }
        abort()
    }

    func startBodyTimer() {
        bodyBytesSinceArmed = 0
        setTimer(.body)
    }

    func bodyProgress(_ count: Int) {
        bodyBytesSinceArmed += count
        if bodyBytesSinceArmed >= Self.minimumBytes(inWindowMillis: settings.bodyTimeoutMillis) { startBodyTimer() }
    }

}
