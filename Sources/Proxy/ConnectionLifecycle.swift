import HTTP1

/// The lifecycle of one client connection as a value: its phase, which of its timers runs,
/// and how it ends. `ClientConnection` feeds it events (bytes read, EOF, a timer, output
/// drained or backed up, an exchange finished, the upstream closed) and carries out the action
/// it returns; the decisions themselves need no sockets and are tested without any
/// (`ConnectionLifecycleTests`). The shape follows async-http-client's
/// `HTTP1ConnectionStateMachine`: mutate state, return what to do.
///
/// Phases and the timer each one runs:
///
/// | phase              | timer                                    | on expiry                          |
/// |--------------------|------------------------------------------|------------------------------------|
/// | `awaitingHead`     | `header` from accept or the first byte of a head; `idle` between requests; `send` while a response is still queued | 408 (silent close if nothing was ever sent); close (lingering while the last answer is unacknowledged); cut |
/// | `streamingBody`    | `body` (re-armed at `minimumBodyRate`); a second timer, `send`, while output is queued (`ClientConnection.uploadSendTimer`) | 408, or cut if the response began; the second: cut |
/// | `bufferingBody`    | `body`                                   | 408                                |
/// | `awaitingResponse` | none while the upstream works (its connect and response timers run); `send` while the client does not take what is queued | cut |
/// | `closing`          | `send`                                   | cut                                |
/// | `lingering`        | `linger` (quiet gap or acknowledgement poll, total bound) | close, once what was sent is acknowledged or at the bound |
struct ConnectionLifecycle {
    enum Phase: Equatable {
        /// Waiting for (the rest of) a request head.
        case awaitingHead
        /// Streaming the request body to the upstream.
        case streamingBody
        /// Reading a guarded request's body into memory (bounded by max_request_body).
        case bufferingBody
        /// Request forwarded whole; waiting for the response to finish.
        case awaitingResponse
        /// Writing the last bytes before closing.
        case closing
        /// The error response is out and the write side shut down; the client's unread
        /// request bytes are drained (and discarded) for a bounded time, so that it reads the
        /// response instead of a reset (SPEC §5 "lingering close").
        case lingering
        case closed
    }

    /// What the connection's one timer measures (see the table above).
    enum TimerPurpose: Equatable { case none, header, body, idle, send, linger }

    /// What the connection must do now.
    enum Action: Equatable {
        case none
        /// Close the socket (orderly: queued output already went out or does not matter).
        case close
        /// Cut the connection now, discarding queued output (a client that stopped reading
        /// loses what it did not read; one that is gone loses nothing).
        case abort
        /// End the response in progress short of its framing (a truncated message, RFC 9112
        /// §8) while what was already written, answers ahead of it included, still reaches
        /// the client: unsent output is dropped, then the connection lingers.
        case cutResponse
        /// Keep writing what is queued, then close (the phase is `closing`).
        case flushThenClose
        /// Shut the write side and drain reads (the phase is `lingering`).
        case startLingering
        /// Answer 408; with `abandonUpstream` the upstream connection goes first (it has part
        /// of a body that will never be complete).
        case answerRequestTimeout(abandonUpstream: Bool)
        /// Arm (or cancel, for `.none`) the connection timer.
        case setTimer(TimerPurpose)
        /// Wait for the next request head (the timer is set as returned in `timer`).
        case awaitNextRequest
    }

    var phase: Phase = .awaitingHead
    var timer: TimerPurpose = .none
    /// The client sent EOF; no more requests will come.
    var clientFinished = false
    /// Close once the current response is written (Connection: close, shutdown, or an
    /// unread request body that makes the connection unusable).
    var closeAfterResponse = false
    /// Close by lingering: request bytes may still be on their way (an error answered before
    /// the body was read, a malformed head); closing with unread bytes makes the kernel send a
    /// reset that can destroy the response before the client reads it.
    var lingerOnClose = false
    /// The linger waits only for the client to acknowledge what it was sent: the close is
    /// idemproxy's decision (a shutdown, an answer that must end at the close) and nothing is
    /// left to drain, but a client that expects the connection to stay may send its next
    /// request at any moment, and a close with bytes unacknowledged would then answer it with
    /// a reset that discards them. Acknowledged, the close is safe (RFC 9112 §9.6).
    var lingerUntilAcknowledged = false

    /// Marks the connection to close after the current response while request bytes may
    /// still be unread: the close lingers.
    mutating func closeWithUnreadInput() {
        closeAfterResponse = true
        lingerOnClose = true
    }

    // MARK: events

    /// The client sent EOF. `outputPending`: response bytes are still queued. `pendingInput`:
    /// bytes it sent before are still unprocessed, pipelined behind the request in progress.
    mutating func clientHungUp(outputPending: Bool, pendingInput: Bool = false) -> Action {
        clientFinished = true
        switch phase {
        case .awaitingHead:
            // An incomplete head at EOF is not a request; nothing to answer. A response still
            // being written goes out first (the client may have only half-closed).
            guard outputPending else { return .close }
            phase = .closing
            timer = .send
            return .flushThenClose
        case .streamingBody, .bufferingBody:
            // The body will never complete: the upstream must not act on a truncated request.
            return .abort
        case .awaitingResponse:
            // A half-close ends the requests, not the answers (RFC 9112 §9.6): requests it
            // pipelined before it are answered in turn, and the connection closes once none is
            // left (`ClientConnection.endIfClientFinished`).
            if !pendingInput { closeAfterResponse = true }
            return .none
        case .closing:
            closeAfterResponse = true
            return .none
        case .lingering:
            return .close
        case .closed:
            return .none
        }
    }

    /// A read from the client failed (reset, error).
    func readFailed() -> Action { .abort }

    /// The connection timer fired. `nothingReceived`: no byte of any request ever arrived and
    /// nothing is queued (a connection opened and left idle is closed without a 408).
    /// `lastAnswerUnacknowledged` (asked only when the idle timer fires): the client, which may
    /// still send its next request, has not acknowledged the last answer, so the close lingers.
    mutating func timerFired(nothingReceived: Bool, responseStarted: Bool, lastAnswerUnacknowledged: Bool = false) -> Action {
        switch timer {
        case .none:
            return .none
        case .idle:
            return lastAnswerUnacknowledged ? closeAfterOutput(unreadInput: false, unacknowledged: true) : .close
        case .linger:
            return .close
        case .send:
            // The client stopped reading what it was sent: it may hold the connection, its
            // descriptor and its buffered response no longer.
            return .abort
        case .header:
            return nothingReceived ? .close : .answerRequestTimeout(abandonUpstream: false)
        case .body:
            if phase == .bufferingBody {
                closeWithUnreadInput()
                return .answerRequestTimeout(abandonUpstream: false)
            }
            if responseStarted { return .cutResponse }
            closeWithUnreadInput()
            return .answerRequestTimeout(abandonUpstream: true)
        }
    }

    /// Everything queued for the client was written. `pendingInput`: bytes of a next request
    /// are buffered. `unreadInput`: the client sent bytes this connection will not answer
    /// (buffered, or unread in the socket); `unacknowledged`: the client has not acknowledged
    /// all it was sent (both asked only when closing).
    mutating func outputDrained(pendingInput: Bool, unreadInput: Bool = false, unacknowledged: Bool = false) -> Action {
        switch phase {
        case .closing:
            return closeAfterOutput(unreadInput: unreadInput, unacknowledged: unacknowledged)
        case .awaitingResponse where timer == .send:
            timer = .none
            return .setTimer(.none)
        case .awaitingHead where timer == .send:
            // Shutdown asked to close once the response was out.
            if closeAfterResponse { return closeAfterOutput(unreadInput: unreadInput, unacknowledged: unacknowledged) }
            timer = pendingInput ? .header : .idle
            return .setTimer(timer)
        default:
            return .none
        }
    }

    /// Closes with everything written. A close with input still unread makes the kernel send
    /// a reset, and a reset discards what the client has not read yet (RFC 9112 §9.6): with
    /// input left (a body the exchange did not read, pipelined requests it will not answer),
    /// the write side is shut and the input drained first. With none left but bytes not yet
    /// acknowledged, the same linger lasts until they are (`lingerUntilAcknowledged`): input
    /// that arrives meanwhile is drained instead of reset.
    mutating func closeAfterOutput(unreadInput: Bool, unacknowledged: Bool) -> Action {
        guard !clientFinished else { return .close }
        if lingerOnClose || unreadInput {
            lingerUntilAcknowledged = false
        } else if unacknowledged {
            lingerUntilAcknowledged = true
        } else {
            return .close
        }
        phase = .lingering
        timer = .linger
        return .startLingering
    }

    /// A write left bytes queued: while a response streams, the client must take some within
    /// send_timeout (the connection's timer is free while the upstream answers).
    mutating func outputBackedUp() -> Action {
        guard phase == .awaitingResponse, timer == .none else { return .none }
        timer = .send
        return .setTimer(.send)
    }

    /// The response to the current request is complete (or the exchange ended with a
    /// generated response). `keepAlive`: the request allows another one on this connection.
    mutating func exchangeFinished(keepAlive: Bool, requestBodyDone: Bool, outputPending: Bool) -> Action {
        // The rest of the request body is still on the wire; the connection cannot be
        // re-synchronised, so it closes after this response (lingering).
        if !requestBodyDone { closeWithUnreadInput() }
        if closeAfterResponse || !keepAlive {
            phase = .closing
            timer = .send
            return .flushThenClose
        }
        phase = .awaitingHead
        // Bytes still queued for the client: it must take them within send_timeout (a replay
        // of a large body is queued whole); the idle timer starts once they are out.
        timer = outputPending ? .send : .idle
        return .awaitNextRequest
    }

    // MARK: decisions about the upstream side

    /// How an upstream close ends the exchange.
    enum UpstreamCloseOutcome: Equatable {
        /// The response is complete: a close-delimited body ends at an orderly close.
        case responseComplete
        /// The head went out but the body will never be complete: truncated, never stored.
        case responseBroken
        /// No response head yet.
        case noResponse
    }

    /// RFC 9112 §6.3 rule 8: a close-delimited body ends at the connection's orderly close. A
    /// reset or read error is not an end: the body may be truncated, so it is "no complete
    /// response" (SPEC §4), never a well-framed message or a stored one.
    static func upstreamClosed(responseStarted: Bool, framing: BodyFraming, orderly: Bool) -> UpstreamCloseOutcome {
        guard responseStarted else { return .noResponse }
        if case .untilClose = framing, orderly { return .responseComplete }
        return .responseBroken
    }

    /// Whether the upstream connection may carry another exchange after a complete response.
    /// Bytes after a response, or the promise of some (a 204 with a Content-Length: SPEC §5),
    /// would be read as the next client's response.
    static func upstreamReusable(
        trailingBytes: Bool, announcedForbiddenBody: Bool, upstreamKeepAlive: Bool, requestBodyDone: Bool
    ) -> Bool {
        !trailingBytes && !announcedForbiddenBody && upstreamKeepAlive && requestBodyDone
    }
}
