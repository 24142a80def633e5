import EventLoop
import HTTP1
import Idempotency
import Upstream

/// What the upstream connection reports (bytes, close, drain, timeout) and how each ends or
/// advances the exchange: the response side of `ClientConnection+Exchange.swift`.
extension ClientConnection: UpstreamConnectionDelegate {
    func upstreamConnectFailed(_ connection: UpstreamConnection, error: IOError) {
        worker.metrics.upstreamReachable.store(false, ordering: .relaxed)
        guard connection === upstream else { return }
        upstream = nil
        upstreamFailedBeforeResponse(status: 502, type: .upstreamUnreachable, detail: "cannot connect to the upstream: \(error)", requestSent: false)
    }

    func upstream(_ connection: UpstreamConnection, didRead bytes: UnsafeRawBufferPointer) -> Int {
        guard connection === upstream else { return bytes.count }
        // An early answer or an interim 1xx while the body streams does not make the upstream
        // owe more: with all the client sent, its timer stays stopped.
        restartUpstreamTimer(connection)
        // A response byte arrived: the request will not be re-sent, its bytes can go.
        if connection.outbound.retainAfterDrain && connection.outbound.pendingCount == 0 { connection.outbound.reset() }
        var offset = 0
        while upstream === connection {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            if !exchange.responseStarted {
                let complete: Bool
                do {
                    complete = try ResponseHeadParser.parse(
                        rest, into: &exchange.responseHead, requestMethod: exchange.method,
                        limits: settings.parserLimits, scanHint: exchange.responseScanHint)
                } catch {
                    // RFC 9112 §6.3: an invalid response is discarded and answered with 502.
                    upstreamFailedBeforeResponse(status: 502, type: .upstreamUnreachable, detail: "invalid response from the upstream: \(error.reason)")
                    return bytes.count
                }
                guard complete else {
                    exchange.responseScanHint = rest.count
                    break
                }
                exchange.responseScanHint = 0
                offset += exchange.responseHead.headLength
                let status = exchange.responseHead.status
                if status >= 100 && status < 200 {
                    if status == 101 {
                        upstreamFailedBeforeResponse(status: 502, type: .upstreamUnreachable, detail: "the upstream switched protocols unasked")
                        return bytes.count
                    }
                    // Interim responses are not forwarded: the proxy answered Expect itself.
                    continue
                }
                startResponse(source: rest)
                if case .none = exchange.responseHead.framing {
                    // Bytes after a body-less response, or the promise of some (a 204 with a
                    // Content-Length), make the connection unfit for another exchange: those
                    // bytes would be read as the next client's response (SPEC §5).
                    finishResponse(upstreamReusable: offset == bytes.count)
                    return bytes.count
                }
                continue
            }
            let step: (event: BodyDecoder.Event, consumed: Int)
            do {
                step = try exchange.responseDecoder.next(rest)
            } catch {
                // A body that cannot be framed is a broken-off response: cut, so the client
                // sees a truncated message.
                responseBrokeMidway()
                return bytes.count
            }
            offset += step.consumed
            switch step.event {
            case .data(let range):
                let data = UnsafeRawBufferPointer(rebasing: rest[range])
                if let guarded = exchange.guarded, guarded.ownsClaim { guarded.capture(data) }
                if exchange.responseChunked {
                    // A zero-size chunk would end the body early (RFC 9112 §7.1).
                    guard !data.isEmpty else { continue }
                    ChunkedEncoder.writeChunkHeader(size: data.count, into: &out.bytes)
                    out.append(data)
                    ChunkedEncoder.writeChunkTrailer(into: &out.bytes)
                } else {
                    out.append(data)
                }
            case .end:
                // Bytes after a complete response were not asked for: do not reuse.
                finishResponse(upstreamReusable: offset == bytes.count)
                return bytes.count
            case .needMore:
                flushOut()
                return offset
            }
        }
        if upstream === connection { flushOut() }
        return offset
    }

    func upstreamDidClose(_ connection: UpstreamConnection, error: IOError?) {
        guard connection === upstream else { return }
        upstream = nil
        if !exchange.responseStarted {
            if !connection.receivedResponseBytes && connection.exchangesServed > 0 && retryOnFreshConnection(after: connection) { return }
            upstreamFailedBeforeResponse(
                status: 502, type: .upstreamUnreachable, detail: "the upstream closed the connection without a response",
                requestSent: connection.bytesWrittenThisExchange > 0)
            return
        }
        switch ConnectionLifecycle.upstreamClosed(responseStarted: true, framing: exchange.responseHead.framing, orderly: error == nil) {
        case .responseComplete: finishResponse(upstreamReusable: false)
        case .responseBroken, .noResponse: responseBrokeMidway()
        }
    }

    func upstreamDidDrain(_ connection: UpstreamConnection) {
        guard connection === upstream else { return }
        // Writing works, so the upstream is reachable (this also clears a failed readiness).
        worker.metrics.markUpstreamReachable()
        restartUpstreamTimer(connection)
        // The upstream caught up with the request body: read more from the client.
        if phase == .streamingBody {
            processPending()
            updateInterest()
        }
    }

    /// The upstream's timer (response_timeout, an inactivity timer) runs while the upstream
    /// owes the exchange something: the answer, the rest of it, or reading what is queued for
    /// it. While a request body streams and the upstream has all the client sent, it owes
    /// nothing: the wait is the client's, bounded by body_timeout (and by `uploadSendTimer`
    /// if it reads nothing of an early answer), and the upstream's timer stops. Every event
    /// that moves the exchange calls this: a read from the upstream, a drain of what was
    /// queued for it, the client taking part of the answer, the body's end. The one case it
    /// cannot see, bytes queued for the upstream without any written, `UpstreamConnection`
    /// covers itself (its `flush` starts the timer when bytes are left queued).
    func restartUpstreamTimer(_ connection: UpstreamConnection) {
        guard connection.state == .open else { return }  // connecting: connect_timeout runs
        if phase == .streamingBody && connection.outbound.isEmpty {
            connection.cancelTimer()
        } else {
            connection.armTimer(afterMillis: settings.responseTimeoutMillis)
        }
    }

    /// send_timeout measures the client now: the connection's timer, or while the request
    /// body streams (when that timer measures the body) `uploadSendTimer`.
    private var clientSendTimerRuns: Bool {
        timerPurpose == .send || (phase == .streamingBody && uploadSendTimer.isArmed)
    }

    func upstreamTimedOut(_ connection: UpstreamConnection) {
        guard connection === upstream else { return }
        if connection.state == .connecting {
            upstreamFailedBeforeResponse(status: 502, type: .upstreamUnreachable, detail: "connecting to the upstream timed out", requestSent: false)
        } else if clientSendTimerRuns, connection.hasInputWaitingWhilePaused {
            // The proxy stopped reading for a client that is slow to take what it was sent;
            // the upstream answered and waits. Blaming it would turn a whole response into a
            // 504 (a guarded one into `outcome-unknown`). Only while send_timeout runs (the
            // connection's timer, or `uploadSendTimer` while the request body still streams):
            // it bounds the client, so the wait cannot be re-armed forever.
            connection.armTimer(afterMillis: settings.responseTimeoutMillis)
        } else if !exchange.responseStarted {
            upstreamFailedBeforeResponse(
                status: 504, type: .upstreamTimeout, detail: "the upstream did not respond within response_timeout",
                requestSent: connection.bytesWrittenThisExchange > 0)
        } else {
            responseBrokeMidway(status: 504, detail: "the upstream's response stalled for longer than response_timeout")
        }
    }

    /// The response began but its body will never be complete: the upstream reset, closed
    /// early, sent a body that cannot be framed, or stalled past response_timeout. While none
    /// of it has been written (its head read in the same pass as the fault, or queued behind
    /// a slow reader) it is withdrawn and the request answered as one that got no response
    /// (SPEC §4: a guarded one 502 or 504 `outcome-unknown`). Once its first bytes are out, it
    /// is cut, so the client sees a truncated message rather than a wrong one (RFC 9112 §8).
    private func responseBrokeMidway(status: Int = 502, detail: String = "the upstream response broke off") {
        if withdrawUnwrittenResponse() {
            upstreamFailedBeforeResponse(status: status, type: status == 504 ? .upstreamTimeout : .upstreamUnreachable, detail: detail)
            return
        }
        if let guarded = exchange.guarded, guarded.ownsClaim {
            guardedUpstreamFailed(requestSent: true, status: status, detail: detail)
            return
        }
        upstreamAbandoned()
        cutResponse()
    }
}
