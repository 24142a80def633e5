import HTTP1
import Testing
@testable import Proxy

/// The connection lifecycle without sockets: for each phase, what a hang-up, a read error,
/// each timer, output draining or backing up, and each way an exchange or the upstream ends
/// lead to (SPEC §5).
@Suite struct ConnectionLifecycleTests {
    typealias L = ConnectionLifecycle

    func lifecycle(_ phase: L.Phase, timer: L.TimerPurpose = .none) -> L {
        var l = L()
        l.phase = phase
        l.timer = timer
        return l
    }

    // MARK: the client hangs up

    @Test func hangUpInEachPhase() {
        var l = lifecycle(.awaitingHead)
        #expect(l.clientHungUp(outputPending: false) == .close)
        l = lifecycle(.awaitingHead)
        // A half-closing client still gets the response queued for it, bounded by send_timeout.
        #expect(l.clientHungUp(outputPending: true) == .flushThenClose)
        #expect(l.phase == .closing && l.timer == .send)
        for phase in [L.Phase.streamingBody, .bufferingBody] {
            l = lifecycle(phase)
            // A truncated body must not reach the upstream as if whole.
            #expect(l.clientHungUp(outputPending: false) == .abort, "\(phase)")
        }
        for phase in [L.Phase.awaitingResponse, .closing] {
            l = lifecycle(phase)
            #expect(l.clientHungUp(outputPending: true) == L.Action.none, "\(phase)")
            #expect(l.closeAfterResponse && l.clientFinished)
        }
        // Requests pipelined before the half-close are still answered: the connection is not
        // marked to close after the one in progress.
        l = lifecycle(.awaitingResponse)
        #expect(l.clientHungUp(outputPending: false, pendingInput: true) == L.Action.none)
        #expect(l.clientFinished && !l.closeAfterResponse)
        l = lifecycle(.lingering)
        #expect(l.clientHungUp(outputPending: false) == .close)
        l = lifecycle(.closed)
        #expect(l.clientHungUp(outputPending: false) == L.Action.none)
    }

    @Test func aReadErrorCutsInEveryPhase() {
        for phase in [L.Phase.awaitingHead, .streamingBody, .bufferingBody, .awaitingResponse, .closing, .lingering] {
            #expect(lifecycle(phase).readFailed() == .abort, "\(phase)")
        }
    }

    // MARK: timers

    @Test func eachTimerEndsTheConnectionItsWay() {
        var l = lifecycle(.awaitingHead, timer: .header)
        #expect(l.timerFired(nothingReceived: true, responseStarted: false) == .close)  // opened, never used
        l = lifecycle(.awaitingHead, timer: .header)
        #expect(l.timerFired(nothingReceived: false, responseStarted: false) == .answerRequestTimeout(abandonUpstream: false))
        l = lifecycle(.awaitingHead, timer: .idle)
        #expect(l.timerFired(nothingReceived: false, responseStarted: false) == .close)
        l = lifecycle(.bufferingBody, timer: .body)
        #expect(l.timerFired(nothingReceived: false, responseStarted: false) == .answerRequestTimeout(abandonUpstream: false))
        #expect(l.closeAfterResponse && l.lingerOnClose)  // the client may still be sending
        l = lifecycle(.streamingBody, timer: .body)
        #expect(l.timerFired(nothingReceived: false, responseStarted: false) == .answerRequestTimeout(abandonUpstream: true))
        #expect(l.lingerOnClose)
        // The upload stalled after its response began: the response is cut, what was written
        // before it still delivered.
        l = lifecycle(.streamingBody, timer: .body)
        #expect(l.timerFired(nothingReceived: false, responseStarted: true) == .cutResponse)
        for phase in [L.Phase.awaitingHead, .awaitingResponse, .closing] {
            l = lifecycle(phase, timer: .send)
            // A client that stopped reading is cut, whatever the phase.
            #expect(l.timerFired(nothingReceived: false, responseStarted: true) == .abort, "\(phase)")
        }
        l = lifecycle(.lingering, timer: .linger)
        #expect(l.timerFired(nothingReceived: false, responseStarted: false) == .close)
        l = lifecycle(.awaitingResponse, timer: .none)
        #expect(l.timerFired(nothingReceived: false, responseStarted: false) == L.Action.none)
    }

    // MARK: output

    @Test func drainedOutputClosesLingersOrRestartsTheIdleTimer() {
        var l = lifecycle(.closing, timer: .send)
        #expect(l.outputDrained(pendingInput: false) == .close)
        l = lifecycle(.closing, timer: .send)
        l.closeWithUnreadInput()
        #expect(l.outputDrained(pendingInput: false) == .startLingering)
        #expect(l.phase == .lingering && l.timer == .linger)
        l = lifecycle(.closing, timer: .send)
        l.closeWithUnreadInput()
        l.clientFinished = true  // nothing more can arrive: no reason to linger
        #expect(l.outputDrained(pendingInput: false) == .close)
        l = lifecycle(.awaitingHead, timer: .send)
        #expect(l.outputDrained(pendingInput: false) == .setTimer(.idle))
        l = lifecycle(.awaitingHead, timer: .send)
        #expect(l.outputDrained(pendingInput: true) == .setTimer(.header))
        l = lifecycle(.awaitingResponse, timer: .send)
        #expect(l.outputDrained(pendingInput: false) == .setTimer(.none))
        l = lifecycle(.awaitingHead, timer: .header)
        #expect(l.outputDrained(pendingInput: true) == L.Action.none)
        // Shutdown asked to close once the queued response was out: no idle wait.
        l = lifecycle(.awaitingHead, timer: .send)
        l.closeAfterResponse = true
        #expect(l.outputDrained(pendingInput: false) == .close)
        // Bytes unread in the socket at the close: a plain close would be a reset that
        // discards what the client has not read yet, so the connection lingers.
        for phase in [L.Phase.closing, .awaitingHead] {
            l = lifecycle(phase, timer: .send)
            l.closeAfterResponse = true
            #expect(l.outputDrained(pendingInput: false, unreadInput: true) == .startLingering, "\(phase)")
            #expect(l.phase == .lingering && l.timer == .linger)
            l = lifecycle(phase, timer: .send)
            l.closeAfterResponse = true
            l.clientFinished = true
            #expect(l.outputDrained(pendingInput: false, unreadInput: true) == .close, "\(phase)")
        }
    }

    /// A close idemproxy decides on (a shutdown, an answer that must end at the close) with
    /// nothing to drain but bytes the client has not acknowledged lingers until they are: the
    /// client may send its next request meanwhile, and a closed socket would answer it with a
    /// reset that discards them (RFC 9112 §9.6).
    @Test func aCloseWithBytesUnacknowledgedLingersUntilTheyAre() {
        for phase in [L.Phase.closing, .awaitingHead] {
            var l = lifecycle(phase, timer: .send)
            l.closeAfterResponse = true
            #expect(l.outputDrained(pendingInput: false, unacknowledged: true) == .startLingering, "\(phase)")
            #expect(l.phase == .lingering && l.timer == .linger && l.lingerUntilAcknowledged)
            // Input to drain: the usual linger, which ends on quiet, not on acknowledgement.
            l = lifecycle(phase, timer: .send)
            l.closeAfterResponse = true
            #expect(l.outputDrained(pendingInput: false, unreadInput: true, unacknowledged: true) == .startLingering)
            #expect(!l.lingerUntilAcknowledged)
            // The client half-closed: it sends nothing more, nothing can be reset away.
            l = lifecycle(phase, timer: .send)
            l.closeAfterResponse = true
            l.clientFinished = true
            #expect(l.outputDrained(pendingInput: false, unacknowledged: true) == .close)
        }
        // An idle connection closed by a shutdown decides the same way.
        var l = lifecycle(.awaitingHead, timer: .idle)
        #expect(l.closeAfterOutput(unreadInput: false, unacknowledged: true) == .startLingering)
        #expect(l.lingerUntilAcknowledged)
        l = lifecycle(.awaitingHead, timer: .idle)
        #expect(l.closeAfterOutput(unreadInput: false, unacknowledged: false) == .close)
        // So does idle_timeout, while the last answer is unacknowledged.
        l = lifecycle(.awaitingHead, timer: .idle)
        #expect(l.timerFired(nothingReceived: false, responseStarted: false, lastAnswerUnacknowledged: true) == .startLingering)
        #expect(l.phase == .lingering && l.lingerUntilAcknowledged)
        l = lifecycle(.awaitingHead, timer: .idle)
        #expect(l.timerFired(nothingReceived: false, responseStarted: false) == .close)
    }

    @Test func backedUpOutputStartsTheSendTimerOnlyWhileTheUpstreamAnswers() {
        var l = lifecycle(.awaitingResponse)
        #expect(l.outputBackedUp() == .setTimer(.send))
        #expect(l.outputBackedUp() == L.Action.none)  // already running: progress re-arms it, not this
        l = lifecycle(.streamingBody, timer: .body)
        #expect(l.outputBackedUp() == L.Action.none)
    }

    // MARK: end of an exchange

    @Test func exchangeEndKeepsAliveOrCloses() {
        var l = lifecycle(.awaitingResponse)
        #expect(l.exchangeFinished(keepAlive: true, requestBodyDone: true, outputPending: false) == .awaitNextRequest)
        #expect(l.phase == .awaitingHead && l.timer == .idle)
        l = lifecycle(.awaitingResponse)
        #expect(l.exchangeFinished(keepAlive: true, requestBodyDone: true, outputPending: true) == .awaitNextRequest)
        #expect(l.timer == .send)
        l = lifecycle(.awaitingResponse)
        #expect(l.exchangeFinished(keepAlive: false, requestBodyDone: true, outputPending: true) == .flushThenClose)
        #expect(l.phase == .closing && l.timer == .send && !l.lingerOnClose)
        l = lifecycle(.streamingBody)
        // The rest of the body is on the wire: close after the response, lingering.
        #expect(l.exchangeFinished(keepAlive: true, requestBodyDone: false, outputPending: true) == .flushThenClose)
        #expect(l.lingerOnClose)
    }

    // MARK: the upstream side

    @Test func upstreamCloseByFraming() {
        #expect(L.upstreamClosed(responseStarted: false, framing: .contentLength(5), orderly: true) == .noResponse)
        #expect(L.upstreamClosed(responseStarted: true, framing: .untilClose, orderly: true) == .responseComplete)
        // A reset is never the end of a close-delimited body.
        #expect(L.upstreamClosed(responseStarted: true, framing: .untilClose, orderly: false) == .responseBroken)
        #expect(L.upstreamClosed(responseStarted: true, framing: .contentLength(5), orderly: true) == .responseBroken)
        #expect(L.upstreamClosed(responseStarted: true, framing: .chunked, orderly: true) == .responseBroken)
    }

    @Test func upstreamReuse() {
        #expect(L.upstreamReusable(trailingBytes: false, announcedForbiddenBody: false, upstreamKeepAlive: true, requestBodyDone: true))
        #expect(!L.upstreamReusable(trailingBytes: true, announcedForbiddenBody: false, upstreamKeepAlive: true, requestBodyDone: true))
        #expect(!L.upstreamReusable(trailingBytes: false, announcedForbiddenBody: true, upstreamKeepAlive: true, requestBodyDone: true))
        #expect(!L.upstreamReusable(trailingBytes: false, announcedForbiddenBody: false, upstreamKeepAlive: false, requestBodyDone: true))
        #expect(!L.upstreamReusable(trailingBytes: false, announcedForbiddenBody: false, upstreamKeepAlive: true, requestBodyDone: false))
    }
}
