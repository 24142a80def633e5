import EventLoop
import Glibc
import HTTP1
import Idempotency
import Upstream

/// How a connection ends (shutdown, close, a client gone while its guarded request runs on,
/// lingering after an error) and how each exchange is counted, logged and answered when
/// idemproxy writes the response itself.
extension ClientConnection {
    /// Shutdown: idle connections close now; busy ones close after their current response.
    func shutdownRequested() {
        closeAfterResponse = true
        // Its exchanges are over; it drains input only while bytes it wrote are not yet
        // acknowledged (a reset would discard them). With none left, the shutdown need not wait.
        if phase == .lingering && !clientGone && Socket.unacknowledgedBytes(fd) <= 0 {
            close()
            return
        }
        guard phase == .awaitingHead && pending.isEmpty && out.isEmpty else { return }
        // An idle keep-alive connection: its client may send the next request at any moment,
        // so a close with its last answer unacknowledged lingers until it is.
        perform(lifecycle.closeAfterOutput(unreadInput: false, unacknowledged: clientExpectsAnotherRequest && Socket.unacknowledgedBytes(fd) > 0))
    }

    func close() {
        guard phase != .closed else { return }
        if let guarded = exchange.guarded, guarded.ownsClaim || guarded.stage == .claiming {
            detachClient()
            return
        }
        logExchange()  // an exchange cut short still counts, once
        phase = .closed
        timer.cancel()
        leaseTimer.cancel()
        uploadSendTimer.cancel()
        upstreamAbandoned()
        if !clientGone { closeSocket() }
        if let guarded = exchange.guarded, guarded.stage == .waiting {
            worker.waiters.remove(key: guarded.storageKey, id: ObjectIdentifier(self))
        }
        worker.connectionClosed(self)
    }

    /// The client left while its guarded request is claimed: close the socket now and let the
    /// exchange finish in the background, so the stored result answers the client's retry.
    func detachClient() {
        guard !clientGone else { return }
        clientGone = true
        clientFinished = true
        closeAfterResponse = true
        timer.cancel()
        lifecycle.timer = .none
        closeSocket()
        out.reset()
        pending = []
        // Nobody reads the response any more: never hold the upstream back for it.
        upstream?.setReading(true)
    }

    /// Closes the client's socket: orderly, unless a body that ends at the close is not whole
    /// yet. An orderly close would make the client take it for whole (RFC 9112 §6.3 rule 8);
    /// a reset tells it otherwise.
    private func closeSocket() {
        loop.deregister(fd)
        if exchange.responseEndsAtClose { Socket.resetOnClose(fd) }
        Socket.close(fd)
    }

    /// After a detached exchange settled, the connection object can go.
    func finishDetachedIfDone() {
        guard clientGone, let guarded = exchange.guarded, !guarded.ownsClaim, guarded.stage != .claiming else { return }
        close()
    }

    func guardTimerFired() {
        guard let guarded = exchange.guarded else { return }
        if guarded.stage == .waiting {
            waitEnded(guarded)
        } else {
            refreshLease()
        }
    }

    static let keepAliveField = (name: "Connection", value: "keep-alive")

    /// An HTTP/1.0 client asked for keep-alive (`Connection: keep-alive`) and the connection
    /// stays open: the response must say so, or the client waits for a close that never
    /// comes (RFC 9112 §9.3, HTTP/1.0 persistence; SPEC §5).
    func acknowledgesKeepAlive(close: Bool) -> Bool {
        exchange.clientVersionMinor == 0 && !close
    }

    /// Marks the connection to close after the current response while request bytes may
    /// still be unread: the close lingers.
    func closeWithUnreadInput() {
        lifecycle.closeWithUnreadInput()
    }

    /// Closes immediately, discarding unsent output: a client that stopped reading (past
    /// send_timeout), one that reset the connection, a shutdown's last pass.
    func abort() {
        close()
    }

    /// The response in progress can never be whole, and some of it has been written: its
    /// request body was cut, stalled or malformed, or the upstream broke it off. The client
    /// must see it end short of its framing (RFC 9112 §8), and must still get everything
    /// written before it:
    /// - a body that ends at the close (RFC 9112 §6.3 rule 8) would look whole after an
    ///   orderly close, so the connection is reset (`close`); a reset discards what the client
    ///   has not acknowledged, answers to earlier requests included, so it waits for that;
    /// - any other body is cut by an orderly close, but a close with input unread (an upload
    ///   still arriving, pipelined requests) makes the kernel send a reset too: while bytes are
    ///   unacknowledged, the write side is shut (the client reads what was sent, then EOF) and
    ///   the input drained.
    /// Both waits are lingers, bounded like every other (`lingerTotalMillis`).
    func cutResponse() {
        guard phase != .closed else { return }
        let unacknowledged = clientGone ? 0 : Socket.unacknowledgedBytes(fd)
        if exchange.responseEndsAtClose {
            if unacknowledged <= 0 { close() } else { lingerAfterCut(shutWrite: false) }
            return
        }
        if clientFinished || unacknowledged <= 0 {
            close()
            return
        }
        lingerAfterCut(shutWrite: true)
    }

    private func lingerAfterCut(shutWrite: Bool) {
        logExchange()
        leaseTimer.cancel()
        upstreamAbandoned()
        exchange.guarded?.releaseLargeBuffers()
        out.reset()
        pending = []
        headScanHint = 0
        startLingering(shutWrite: shutWrite)
    }

    /// Decides how the request ends for `idemproxy_requests_total` (SPEC §8). A later decision
    /// replaces an earlier one (a forwarded request whose response then breaks is
    /// `outcome_unknown`); the count is taken once, when the exchange ends (`logExchange`).
    func countOutcome(_ outcome: RequestOutcome) {
        exchange.outcome = outcome
    }

    /// The request is over: counted once under its outcome with its latency observed (the
    /// counter and the histogram see the same requests), and one access-log line written, with
    /// outcome `-` when none was decided. Runs for every exchange that started, also one whose
    /// connection is cut (a truncated response, a vanished client).
    func logExchange() {
        guard !exchange.logged, exchange.startNanos != 0 else { return }
        exchange.logged = true
        let elapsed = EventLoop.monotonicNanos() &- exchange.startNanos
        if let outcome = exchange.outcome {
            worker.metrics.count(outcome)
            worker.metrics.observeRequest(outcome, nanoseconds: elapsed)
        }
        guard let accessLog = worker.accessLog else { return }
        accessLog.record(AccessLog.Entry(
            client: peer, method: exchange.logMethod, target: exchange.logTarget, status: exchange.status,
            durationNanos: elapsed, outcome: exchange.outcome?.label ?? "-", keyHash: exchange.guarded?.keyHash))
    }

    /// Writes a generated error response; `close` also ends the connection after it.
    func writeProblem(status: Int, type: ProblemType?, detail: String, close: Bool, extraFields: [(name: String, value: String)] = []) {
        guard phase != .closed else { return }
        closeAfterTheLastAnswer()
        let mustClose = close || closeAfterResponse || !exchange.clientKeepAlive
        exchange.status = status
        var fields = extraFields
        if acknowledgesKeepAlive(close: mustClose) { fields.append(Self.keepAliveField) }
        ProblemResponse.write(status: status, type: type, detail: detail, close: mustClose, extraFields: fields, into: &out.bytes)
        completeGeneratedResponse(close: mustClose)
    }

    /// A response the proxy generated (error or replay) is queued: finish the exchange.
    func completeGeneratedResponse(close mustClose: Bool) {
        logExchange()
        if clientGone {
            close()
            return
        }
        if mustClose {
            // An error answered while the request body is still arriving (the upstream failed
            // mid-upload): the client must read the answer, not a reset.
            if !exchange.requestBodyDone { closeWithUnreadInput() }
            phase = .closing
            setTimer(.send)
            flushOut()
        } else {
            // Written now: left queued, the response would cost an epoll_ctl to add write
            // interest, a wake-up, and another epoll_ctl to drop it again.
            flushOut()
            guard phase != .closed else { return }
            requestFinished()
        }
    }
}

// MARK: the client's half-close and what follows it

extension ClientConnection {
    /// Whether the client may still send a request: it neither half-closed nor asked for the
    /// close (`Connection: close`, HTTP/1.0 without keep-alive). Between requests it always
    /// may. A close it did not ask for lingers until what it was sent is acknowledged.
    var clientExpectsAnotherRequest: Bool {
        !clientFinished && (phase == .awaitingHead || exchange.clientKeepAlive)
    }

    /// The client half-closed and nothing it sent is left after the request being answered:
    /// this answer is the connection's last, so it says so (`Connection: close`, RFC 9112
    /// §9.6) rather than closing on a client that was told nothing. Called where an answer's
    /// head is written. Bytes left over (half a head) are not a request either, but telling
    /// them apart would mean parsing ahead; their answer is followed by the close all the same.
    func closeAfterTheLastAnswer() {
        if clientFinished && pending.isEmpty && unprocessedInputInProcess == 0 { closeAfterResponse = true }
    }

    /// Pipelined requests are held back until the answers ahead of them are written.
    var requestsWaitForOutput: Bool { phase == .awaitingHead && !pending.isEmpty && !out.isEmpty }

    func clientSentEOF() {
        if clientFinished {
            // A second EOF: reads are off since the first, so only a hang-up or an error woke
            // the connection (a reset after the half-close, which a read after the FIN reports
            // as 0). The client is gone; waiting on would spin on the level-triggered event.
            abort()
            return
        }
        if requestsWaitForOutput {
            // A half-close ends the requests, not the answers (RFC 9112 §9.6): the held-back
            // requests are still answered, and the EOF takes effect after them
            // (`endIfClientFinished`).
            clientFinished = true
            updateInterest()
            return
        }
        if phase == .streamingBody || phase == .bufferingBody {
            // The body is cut, unless bytes held back for a slow upstream may still complete
            // it (reads resume once its queue is below the high watermark, before it has
            // drained): `endIfClientFinished` judges, now or after the drain.
            clientFinished = true
            endIfClientFinished()
            updateInterest()
            return
        }
        perform(lifecycle.clientHungUp(outputPending: !out.isEmpty, pendingInput: !pending.isEmpty))
        if phase == .awaitingResponse || phase == .closing { updateInterest() }
    }

    /// The client half-closed while requests it had pipelined were still unprocessed: once
    /// they are answered and what is left is no whole request (nothing, a partial head, a
    /// body that can no longer end), the EOF takes effect as it would have on arrival.
    func endIfClientFinished() {
        guard clientFinished, !inProcess else { return }
        switch phase {
        case .awaitingHead:
            if requestsWaitForOutput { return }
            perform(lifecycle.clientHungUp(outputPending: !out.isEmpty))
        case .streamingBody, .bufferingBody:
            if !bodyHeldBack { dropRequestCutByEOF() }
        case .awaitingResponse, .closing, .lingering, .closed:
            return
        }
    }

    /// The client's EOF cut the body of the request in progress: the request can never be
    /// whole, so the upstream must not act on it (its connection is closed with the body
    /// unfinished, an incomplete message, RFC 9112 §8). Once its response has begun, the cut
    /// is an abort of the response too.
    private func dropRequestCutByEOF() {
        withdrawUnwrittenResponse()
        if exchange.responseStarted {
            cutResponse()
            return
        }
        upstreamAbandoned()
        phase = .awaitingHead
        perform(lifecycle.clientHungUp(outputPending: !out.isEmpty))
    }

    /// A response whose exchange must end before it is whole (its request body was cut,
    /// stalled or malformed; the upstream broke it off) while none of it has been written yet:
    /// it is taken back, and the exchange ends as if the upstream had never answered. Returns
    /// whether it was.
    @discardableResult
    func withdrawUnwrittenResponse() -> Bool {
        // A client that is gone lost its output with it: there is nothing to take back.
        guard exchange.responseStarted, !clientGone, out.totalWritten <= exchange.responseStreamStart else { return false }
        out.keepPending(first: Int(exchange.responseStreamStart &- out.totalWritten))
        exchange.responseStarted = false
        exchange.responseEndsAtClose = false
        // Not what the client got: the answer that ends the exchange sets its own.
        exchange.status = 0
        return true
    }

    /// Carries out what the lifecycle decided.
    func perform(_ action: ConnectionLifecycle.Action) {
        switch action {
        case .none, .awaitNextRequest:
            return
        case .close:
            close()
        case .abort:
            abort()
        case .cutResponse:
            cutResponse()
        case .flushThenClose:
            armTimer()
            flushOut()
        case .startLingering:
            startLingering()
        case .setTimer(let purpose):
            setTimer(purpose)
        case .answerRequestTimeout(let abandonUpstream):
            if abandonUpstream { upstreamAbandoned() }
            let detail = phase == .awaitingHead
                ? "the request head did not arrive within header_timeout"
                : "the request body stalled for longer than body_timeout"
            writeProblem(status: 408, type: nil, detail: detail, close: true)
        }
    }
}
