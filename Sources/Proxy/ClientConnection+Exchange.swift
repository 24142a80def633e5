import EventLoop
import HTTP1
import Idempotency
import Upstream

extension ClientConnection {
    // MARK: request side

    /// A complete head was parsed from `source`; decide and start forwarding.
    func startExchange(source: UnsafeRawBufferPointer) {
        exchange.reset()
        if worker.accessLog != nil {
            exchange.startNanos = EventLoop.monotonicNanos()
            exchange.logMethod = String(decoding: UnsafeRawBufferPointer(rebasing: source[head.methodRange]), as: UTF8.self)
            exchange.logTarget = String(decoding: UnsafeRawBufferPointer(rebasing: source[head.target]), as: UTF8.self)
        }
        exchange.method = head.method
        exchange.clientVersionMinor = head.versionMinor
        exchange.clientKeepAlive = head.keepAlive && !closeAfterResponse
        setTimer(.none)

        // RFC 9110 §9.3.6 / §7.8: tunnels and protocol switches are not supported yet.
        if head.method == .connect || head.upgradeRequested {
            closeAfterResponse = true
            writeProblem(status: 501, type: nil, detail: "CONNECT and Upgrade are not supported", close: true)
            return
        }
        let path = UnsafeRawBufferPointer(rebasing: source[head.target])
        // RFC 3986 §5.2.4 dot segments are resolved by clients before sending. Forwarded as-is
        // they would let "/public/../v1/payments" reach a guarded route unguarded.
        if TargetCheck.hasDotSegment(path) {
            closeAfterResponse = true
            writeProblem(status: 400, type: nil, detail: "the request target contains dot segments", close: true)
            return
        }
        if let policy = worker.guards.policy(method: head.method, methodName: UnsafeRawBufferPointer(rebasing: source[head.methodRange]), path: path) {
            startGuarded(policy: policy, source: source)
            return
        }
        countOutcome(.unguarded)
        forwardStreaming(source: source)
    }

    /// Forwards an unguarded request, streaming its body as it arrives.
    func forwardStreaming(source: UnsafeRawBufferPointer) {
        let hasBody: Bool
        switch head.framing {
        case .none, .untilClose: hasBody = false
        case .contentLength(let length): hasBody = length > 0
        case .chunked: hasBody = true
        }

        let connection: UpstreamConnection
        do {
            connection = try worker.pool.acquire(delegate: self)
        } catch {
            worker.metrics.upstreamReachable.store(false, ordering: .relaxed)
            if hasBody { closeAfterResponse = true }
            writeProblem(status: 502, type: .upstreamUnreachable, detail: "cannot connect to the upstream", close: hasBody)
            return
        }
        upstream = connection
        exchange.upstreamStartNanos = EventLoop.monotonicNanos()
        watchUpstream(connection)

        let framing: BodyFraming
        switch head.framing {
        case .contentLength(let length) where length > 0: framing = .contentLength(length)
        case .chunked: framing = .chunked
        default: framing = .none
        }
        writeForwardedHead(source: source, framing: framing, into: &connection.outbound.bytes)
        if !hasBody && head.method.isIdempotent && connection.exchangesServed > 0 {
            exchange.retryable = true
            connection.outbound.retainAfterDrain = true
        }

        if hasBody {
            exchange.requestChunked = framing == .chunked
            exchange.requestDecoder = BodyDecoder(framing: framing, limits: settings.parserLimits)
            phase = .streamingBody
            setTimer(.body)
            // RFC 9110 §10.1.1: the proxy reads the body itself, so it answers the expectation
            // and does not forward it.
            if head.expectContinue {
                out.bytes.append(contentsOf: Self.continueLine)
                flushOut()
            }
        } else {
            exchange.requestBodyDone = true
            phase = .awaitingResponse
        }
    }

    /// response_timeout as an inactivity limit on the upstream side of the exchange: re-armed
    /// on connect, on every write that makes progress and on every read.
    func watchUpstream(_ connection: UpstreamConnection) {
        connection.activityTimeoutMillis = settings.responseTimeoutMillis
        if connection.state == .open { connection.armTimer(afterMillis: settings.responseTimeoutMillis) }
    }

    static let dropExpect = ["expect"]
    static let continueLine: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    func writeForwardedHead(source: UnsafeRawBufferPointer, framing: BodyFraming, into out: inout [UInt8]) {
        // The array lives with the connection (peer and scheme never change on it), so
        // forwarding a request allocates nothing here.
        if forwardedFields.isEmpty {
            forwardedFields = [("X-Forwarded-For", peer), ("X-Forwarded-Proto", "http")]
        }
        forwardedFields.removeSubrange(2...)
        if let host = head.host {
            forwardedFields.append(("X-Forwarded-Host", String(decoding: UnsafeRawBufferPointer(rebasing: source[host]), as: UTF8.self)))
        }
        HeadWriter.writeRequestHead(
            head, source: source, extra: forwardedFields, dropping: head.expectContinue ? Self.dropExpect : [],
            framing: framing, targetPrefix: settings.upstreamPathPrefix, into: &out)
    }

    func forwardRequestBody(_ data: UnsafeRawBufferPointer) {
        guard let upstream, !data.isEmpty else { return }
        if exchange.requestChunked {
            ChunkedEncoder.writeChunkHeader(size: data.count, into: &upstream.outbound.bytes)
            upstream.outbound.append(data)
            ChunkedEncoder.writeChunkTrailer(into: &upstream.outbound.bytes)
        } else {
            upstream.outbound.append(data)
        }
    }

    func finishRequestBody() {
        if exchange.requestChunked, let upstream { ChunkedEncoder.writeLastChunk(into: &upstream.outbound.bytes) }
        exchange.requestBodyDone = true
        if phase == .streamingBody {
            phase = .awaitingResponse
            setTimer(.none)
        }
    }

    /// A malformed head: answer with its status and close. Nothing was forwarded.
    func rejectRequest(_ error: HTTPParseError) {
        closeAfterResponse = true
        writeProblem(status: error.status, type: nil, detail: error.reason, close: true)
    }

    /// A malformed chunked body: the upstream already has part of it, so that exchange is void.
    func requestBodyInvalid(_ error: HTTPParseError) {
        upstreamAbandoned()
        if exchange.responseStarted {
            abort()
        } else {
            closeAfterResponse = true
            writeProblem(status: error.status, type: nil, detail: error.reason, close: true)
        }
    }

    /// Drops the upstream connection of the current exchange without reusing it.
    func upstreamAbandoned() {
        if let upstream {
            self.upstream = nil
            upstream.close()
        }
    }

    // MARK: response side

    /// The response is complete (or the exchange ended with an error response): go back to
    /// reading the next request, or close.
    func requestFinished() {
        logExchange()
        exchange.requestsServed += 1
        if !exchange.requestBodyDone {
            // The rest of the request body is still on the wire; the connection cannot be
            // re-synchronised, so it closes after this response.
            closeAfterResponse = true
        }
        if closeAfterResponse || !exchange.clientKeepAlive {
            phase = .closing
            setTimer(.none)
            flushOut()
            return
        }
        phase = .awaitingHead
        setTimer(.idle)
        if !pending.isEmpty {
            setTimer(.header)
            if !inProcess { processPending() }
        }
        updateInterest()
    }

    private func startResponse(source: UnsafeRawBufferPointer) {
        let response = exchange.responseHead
        let choice = ResponseFraming.towardsClient(upstream: response.framing, clientVersionMinor: exchange.clientVersionMinor)
        exchange.responseChunked = choice.chunked
        if choice.mustClose { closeAfterResponse = true }
        if !exchange.requestBodyDone { closeAfterResponse = true }
        let close = closeAfterResponse || !exchange.clientKeepAlive
        var extra: [(name: String, value: String)] = []
        // A response to HEAD (or a 304) keeps the Content-Length the upstream stated: it
        // describes the representation, not this message's body (RFC 9110 §8.6).
        if case .none = response.framing, let index = response.firstIndex(ofField: "content-length", in: source) {
            extra.append(("Content-Length", String(decoding: UnsafeRawBufferPointer(rebasing: source[response.fields[index].value]), as: UTF8.self)))
        }
        HeadWriter.writeResponseHead(response, source: source, extra: extra, framing: choice.framing, close: close, into: &out.bytes)
        exchange.responseStarted = true
        exchange.status = response.status
        worker.metrics.markUpstreamReachable()
        if let guarded = exchange.guarded, guarded.ownsClaim {
            guarded.status = response.status
            // The exact bytes: a replay must carry what the original response carried.
            guarded.responseHeaders = response.fields.map { field in
                HeaderPair(name: Array(source[field.name]), value: Array(source[field.value]))
            }
        }
        exchange.responseDecoder = BodyDecoder(framing: response.framing, limits: settings.parserLimits)
    }

    private func finishResponse(upstreamReusable: Bool) {
        if exchange.responseChunked { ChunkedEncoder.writeLastChunk(into: &out.bytes) }
        if exchange.upstreamStartNanos != 0 {
            worker.metrics.upstreamDuration.observe(nanoseconds: EventLoop.monotonicNanos() &- exchange.upstreamStartNanos)
        }
        if let upstream {
            self.upstream = nil
            let reusable = upstreamReusable && exchange.requestBodyDone && exchange.responseHead.keepAlive
            worker.pool.release(upstream, reusable: reusable)
        }
        // After the release: a detached exchange closes its connection object here, and the
        // upstream connection should go back to the pool first, not be closed with it.
        guardedResponseFinished()
        flushOut()
        guard phase != .closed else { return }
        if clientGone {
            close()
            return
        }
        requestFinished()
    }

    /// The upstream failed before the response head arrived.
    private func upstreamFailedBeforeResponse(status: Int, type: ProblemType, detail: String, requestSent: Bool = true) {
        if let guarded = exchange.guarded, guarded.ownsClaim {
            guardedUpstreamFailed(requestSent: requestSent, status: status, detail: detail)
            return
        }
        countOutcome(.upstreamError)
        upstreamAbandoned()
        writeProblem(status: status, type: type, detail: detail, close: !exchange.requestBodyDone)
    }

    /// Re-sends an idempotent, body-less request on a fresh connection after a reused one
    /// failed before any response byte (the classic keep-alive race: the upstream closed the
    /// idle connection as we wrote). Never done for POST or PATCH (RFC 9110 §9.2.2).
    private func retryOnFreshConnection(after failed: UpstreamConnection) -> Bool {
        guard exchange.retryable, !exchange.retried, failed.outbound.pendingCount == 0 else { return false }
        let request = failed.outbound.bytes
        exchange.retried = true
        upstream = nil
        do {
            let connection = try worker.pool.acquire(delegate: self, fresh: true)
            upstream = connection
            watchUpstream(connection)
            connection.outbound.bytes.append(contentsOf: request)
            connection.flush()
            return true
        } catch {
            return false
        }
    }
}

extension ClientConnection: UpstreamConnectionDelegate {
    func upstreamConnectFailed(_ connection: UpstreamConnection, error: IOError) {
        worker.metrics.upstreamReachable.store(false, ordering: .relaxed)
        guard connection === upstream else { return }
        upstream = nil
        upstreamFailedBeforeResponse(status: 502, type: .upstreamUnreachable, detail: "cannot connect to the upstream: \(error)", requestSent: false)
    }

    func upstream(_ connection: UpstreamConnection, didRead bytes: UnsafeRawBufferPointer) -> Int {
        guard connection === upstream else { return bytes.count }
        connection.armTimer(afterMillis: settings.responseTimeoutMillis)
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
                    finishResponse(upstreamReusable: offset == bytes.count)
                    return bytes.count
                }
                continue
            }
            let step: (event: BodyDecoder.Event, consumed: Int)
            do {
                step = try exchange.responseDecoder.next(rest)
            } catch {
                // The client already has the head: all that is left is to cut the connection
                // so it sees a truncated message rather than a wrong one.
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
        if case .untilClose = exchange.responseHead.framing {
            finishResponse(upstreamReusable: false)
        } else {
            responseBrokeMidway()
        }
    }

    func upstreamDidDrain(_ connection: UpstreamConnection) {
        guard connection === upstream else { return }
        // Writing works, so the upstream is reachable (this also clears a failed readiness).
        worker.metrics.markUpstreamReachable()
        if phase == .streamingBody {
            // Everything the client sent is with the upstream: a pause now is the client's,
            // and body_timeout covers it, not the upstream's inactivity timeout.
            connection.cancelTimer()
        }
        if exchange.requestBodyDone && !exchange.responseStarted {
            connection.armTimer(afterMillis: settings.responseTimeoutMillis)
        }
        // The upstream caught up with the request body: read more from the client.
        if phase == .streamingBody {
            processPending()
            updateInterest()
        }
    }

    func upstreamTimedOut(_ connection: UpstreamConnection) {
        guard connection === upstream else { return }
        if connection.state == .connecting {
            upstreamFailedBeforeResponse(status: 502, type: .upstreamUnreachable, detail: "connecting to the upstream timed out", requestSent: false)
        } else if !exchange.responseStarted {
            upstreamFailedBeforeResponse(
                status: 504, type: .upstreamTimeout, detail: "the upstream did not respond within response_timeout",
                requestSent: connection.bytesWrittenThisExchange > 0)
        } else {
            responseBrokeMidway()
        }
    }

    /// The response head went out but the body will never be complete.
    private func responseBrokeMidway() {
        if let guarded = exchange.guarded, guarded.ownsClaim {
            guardedUpstreamFailed(requestSent: true, status: 502, detail: "the upstream response broke off")
            return
        }
        upstreamAbandoned()
        abort()
    }
}

/// Checks on the request target that the parser, being syntax-only, does not make.
enum TargetCheck {
    /// True if the path has a "." or ".." segment (RFC 3986 §3.3), before any query.
    static func hasDotSegment(_ target: UnsafeRawBufferPointer) -> Bool {
        var segmentStart = 0
        var index = 0
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: "."), question = UInt8(ascii: "?")
        while index <= target.count {
            let byte: UInt8 = index < target.count ? target[index] : slash
            if byte == slash || byte == question {
                let length = index - segmentStart
                if length == 1 && target[segmentStart] == dot { return true }
                if length == 2 && target[segmentStart] == dot && target[segmentStart + 1] == dot { return true }
                if byte == question { return false }
                segmentStart = index + 1
            }
            index += 1
        }
        return false
    }
}
