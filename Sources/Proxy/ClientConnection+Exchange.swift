import EventLoop
import HTTP1
import Idempotency
import Upstream

extension ClientConnection {
    // MARK: request side

    /// A complete head was parsed from `source`; decide and start forwarding.
    func startExchange(source: UnsafeRawBufferPointer) {
        // The previous guarded exchange's object and buffers serve this request if it is over
        // and no callback, waiter or settler still holds it (so no identity check can confuse
        // the two requests).
        var reusable: GuardedExchange? = nil
        if exchange.guarded != nil && isKnownUniquelyReferenced(&exchange.guarded), exchange.guarded?.isFinished == true {
            reusable = exchange.guarded
        } else if let held = exchange.guarded {
            // Still held (a store write in flight): another request takes it once it is free.
            worker.retiredExchanges.retire(held)
        }
        exchange.reset()
        exchange.startNanos = EventLoop.monotonicNanos()
        if worker.accessLog != nil {
            exchange.logMethod = String(decoding: UnsafeRawBufferPointer(rebasing: source[head.methodRange]), as: UTF8.self)
            exchange.logTarget = String(decoding: UnsafeRawBufferPointer(rebasing: source[head.target]), as: UTF8.self)
        }
        exchange.method = head.method
        exchange.clientVersionMinor = head.versionMinor
        // What the client asked for; a close idemproxy decides on (a shutdown) is
        // `closeAfterResponse`, and the client still expects the connection to stay.
        exchange.clientKeepAlive = head.keepAlive
        setTimerWhileUpstreamWorks()

        // RFC 9110 §9.3.6 / §7.8: tunnels and protocol switches are not supported yet.
        if head.method == .connect || head.upgradeRequested {
            closeWithUnreadInput()
            writeProblem(status: 501, type: nil, detail: "CONNECT and Upgrade are not supported", close: true)
            return
        }
        // Routing and guarding use the path the upstream will receive: the origin-form part of
        // an absolute-form target (SPEC §5), never the raw target.
        let path = UnsafeRawBufferPointer(rebasing: source[HeadWriter.originForm(of: head.target, in: source)])
        if let problem = TargetCheck.problem(in: path) {
            closeWithUnreadInput()
            writeProblem(status: 400, type: nil, detail: problem, close: true)
            return
        }
        // Connection may not strip fields the proxy depends on end to end (SPEC §5, §9).
        if head.connectionNamedFields { head.keepFields(worker.guards.protectedFieldNames, in: source) }
        let methodName = UnsafeRawBufferPointer(rebasing: source[head.methodRange])
        // "http://a" and "http://a?q" reach the upstream as "/" and "/?q": routed as such.
        let policy = TargetCheck.isRootless(path)
            ? ([UInt8(ascii: "/")] + path).withUnsafeBytes { worker.guards.policy(method: head.method, methodName: methodName, path: $0) }
            : worker.guards.policy(method: head.method, methodName: methodName, path: path)
        if let policy {
            startGuarded(policy: policy, source: source, reusable: reusable)
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
            if hasBody { closeWithUnreadInput() }
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
            startBodyTimer()
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
    static let dropHost = ["host"]
    static let dropExpectAndHost = ["expect", "host"]
    static let continueLine: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    func writeForwardedHead(source: UnsafeRawBufferPointer, framing: BodyFraming, into out: inout [UInt8]) {
        let authority = HeadWriter.absoluteFormAuthority(of: head.target, in: source)
        let dropping: [String]
        if authority != nil {
            dropping = head.expectContinue ? Self.dropExpectAndHost : Self.dropHost
        } else {
            dropping = head.expectContinue ? Self.dropExpect : []
        }
        HeadWriter.writeRequestStart(&head, source: source, dropping: dropping, targetPrefix: settings.upstreamPathPrefix, into: &out)
        // SPEC §5: X-Forwarded-For and -Proto, formatted once per connection (peer and scheme
        // never change on it), then X-Forwarded-Host copied from the request's own bytes.
        if forwardedLines.isEmpty { forwardedLines = Array("X-Forwarded-For: \(peer)\r\nX-Forwarded-Proto: http\r\n".utf8) }
        out.append(contentsOf: forwardedLines)
        if let authority {
            // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
            HeadWriter.appendField("Host", value: authority, in: source, into: &out)
            HeadWriter.appendField("X-Forwarded-Host", value: authority, in: source, into: &out)
        } else if let host = head.host {
            HeadWriter.appendField("X-Forwarded-Host", value: host, in: source, into: &out)
        } else {
            // An HTTP/1.0 request may lack Host; the upstream gets HTTP/1.1, which requires one
            // (RFC 9112 §3.2): the upstream's own authority.
            out.append(contentsOf: settings.upstreamHostLine)
        }
        HeadWriter.finishHead(framing: framing, into: &out)
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
            // The connection's timer measures sending from here (send_timeout while output is queued).
            uploadSendTimer.cancel()
            setTimerWhileUpstreamWorks()
            // The wait is the upstream's again. Its timer may be stopped (it had all the client
            // sent), and a body that ends at the drain of bytes held back (its last bytes read
            // together with a pipelined request) writes nothing more that would start it.
            if let upstream { restartUpstreamTimer(upstream) }
        }
    }

    /// A malformed head: answer with its status and close. Nothing was forwarded.
    func rejectRequest(_ error: HTTPParseError) {
        closeWithUnreadInput()
        writeProblem(status: error.status, type: nil, detail: error.reason, close: true)
    }

    /// A malformed chunked body: the upstream already has part of it, so that exchange is void.
    func requestBodyInvalid(_ error: HTTPParseError) {
        upstreamAbandoned()
        if exchange.responseStarted && !withdrawUnwrittenResponse() {
            cutResponse()
        } else {
            closeWithUnreadInput()
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
        exchange.guarded?.releaseLargeBuffers()
        exchange.requestsServed += 1
        let action = lifecycle.exchangeFinished(
            keepAlive: exchange.clientKeepAlive, requestBodyDone: exchange.requestBodyDone, outputPending: !out.isEmpty)
        armTimer()
        if action == .flushThenClose {
            flushOut()
            return
        }
        // Requests pipelined behind a response still being written wait for it (`flushOut`),
        // under send_timeout.
        if !pending.isEmpty && out.isEmpty {
            setTimer(.header)
            if !inProcess { processPending() }
        }
        endIfClientFinished()
        updateInterest()
    }

    func startResponse(source: UnsafeRawBufferPointer) {
        // The head is read in place, not copied into a local: a copy retains and releases each
        // of its arrays, on every response.
        let choice = ResponseFraming.towardsClient(upstream: exchange.responseHead.framing, clientVersionMinor: exchange.clientVersionMinor)
        exchange.responseChunked = choice.chunked
        exchange.responseEndsAtClose = choice.mustClose
        exchange.responseStreamStart = out.totalWritten &+ UInt64(out.pendingCount)
        if choice.mustClose { closeAfterResponse = true }
        if !exchange.requestBodyDone { closeWithUnreadInput() }
        closeAfterTheLastAnswer()
        let close = closeAfterResponse || !exchange.clientKeepAlive
        var extra: [(name: String, value: String)] = []
        // A response to HEAD keeps the Content-Length the upstream stated: it describes the
        // representation, not this message's body (RFC 9110 §8.6). 1xx, 204 and 304 responses
        // carry no framing fields at all (RFC 9110 §8.6: a server MUST NOT send Content-Length
        // in 1xx or 204; SPEC §5 drops it from 304 too).
        let bodyForbidden = exchange.responseHead.status < 200 || exchange.responseHead.status == 204 || exchange.responseHead.status == 304
        if case .none = exchange.responseHead.framing, !bodyForbidden, let index = exchange.responseHead.firstIndex(ofField: "content-length", in: source) {
            extra.append(("Content-Length", String(decoding: UnsafeRawBufferPointer(rebasing: source[exchange.responseHead.fields[index].value]), as: UTF8.self)))
        }
        if acknowledgesKeepAlive(close: close) { extra.append(Self.keepAliveField) }
        HeadWriter.writeResponseHead(&exchange.responseHead, source: source, extra: extra, framing: choice.framing, close: close, into: &out.bytes)
        exchange.responseStarted = true
        exchange.status = exchange.responseHead.status
        worker.metrics.markUpstreamReachable()
        if let guarded = exchange.guarded, guarded.ownsClaim {
            guarded.status = exchange.responseHead.status
            // The exact bytes: a replay must carry what the original response carried. The
            // fields dropped as hop-by-hop are those the parser marked, which the client's
            // copy above left out too (RFC 9110 §7.6.1, Connection-named fields included).
            let fields = exchange.responseHead.fields
            let hopByHop = exchange.responseHead.hopByHop
            guarded.storedFieldLines.removeAll(keepingCapacity: true)
            ReplayFilter.appendStoredFieldLines(
                count: fields.count, in: source, keepHeaders: guarded.policy.keepHeaders,
                isHopByHop: { hopByHop[$0] }, field: { (fields[$0].name, fields[$0].value) },
                into: &guarded.storedFieldLines)
        }
        exchange.responseDecoder = BodyDecoder(framing: exchange.responseHead.framing, limits: settings.parserLimits)
    }

    func finishResponse(upstreamReusable: Bool) {
        if exchange.responseChunked { ChunkedEncoder.writeLastChunk(into: &out.bytes) }
        if exchange.upstreamStartNanos != 0 {
            worker.metrics.upstreamDuration.observe(nanoseconds: EventLoop.monotonicNanos() &- exchange.upstreamStartNanos)
        }
        if let upstream {
            self.upstream = nil
            let reusable = ConnectionLifecycle.upstreamReusable(
                trailingBytes: !upstreamReusable, announcedForbiddenBody: exchange.responseHead.announcedForbiddenBody,
                upstreamKeepAlive: exchange.responseHead.keepAlive, requestBodyDone: exchange.requestBodyDone)
            worker.pool.release(upstream, reusable: reusable)
        }
        // After the release: a detached exchange closes its connection object here, and the
        // upstream connection should go back to the pool first, not be closed with it.
        guardedResponseFinished()
        // Counted before the last bytes go out: whoever reads the response, then the
        // metrics, sees this request in them.
        logExchange()
        flushOut()
        guard phase != .closed else { return }
        if clientGone {
            close()
            return
        }
        requestFinished()
    }

    /// The upstream failed before the response head arrived.
    func upstreamFailedBeforeResponse(status: Int, type: ProblemType, detail: String, requestSent: Bool = true) {
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
    /// idle connection as we wrote). Never done for POST or PATCH (RFC 9110 §9.2.2). Whether
    /// the write went through does not matter: a reset that arrived first fails the write
    /// itself, and the request, kept whole (`retainAfterDrain`), goes again all the same.
    func retryOnFreshConnection(after failed: UpstreamConnection) -> Bool {
        guard exchange.retryable, !exchange.retried else { return false }
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
