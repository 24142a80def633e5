import EventLoop
import HTTP1
import Idempotency
import Upstream

/// The guarded path (SPEC §2–§4): key intake, bounded body buffering, fingerprint, claim, and
/// every outcome of the claim. The decisions themselves live in the Idempotency module; this
/// file only carries them out on the connection.
extension ClientConnection {
    // MARK: intake

    /// `reusable` is the previous request's guarded exchange when nothing else holds it.
    func startGuarded(policy: GuardPolicy, source: UnsafeRawBufferPointer, reusable: GuardedExchange?) {
        // One copy of the head for this function: passing the stored property itself to each
        // borrowing call below would copy it (and retain its two arrays) for every call.
        let head = self.head
        let fields = GuardedFields(head: head, source: source, policy: policy)
        guard let keyLine = fields.key.first else {
            if policy.required {
                countOutcome(.missingKey)
                refuse(status: 400, type: .missingKey, detail: "this route requires an Idempotency-Key header", bodyUnread: head.framing.hasBody)
                return
            }
            // Optional key: the request goes through unguarded, but it is counted.
            countOutcome(.noKey)
            forwardStreaming(source: source)
            return
        }
        // Into the connection's buffer, which the exchange then swaps for its own: a key costs
        // no allocation.
        if let error = IdempotencyKeyParser.parse(
            fieldValue: UnsafeRawBufferPointer(rebasing: source[keyLine]), lineCount: fields.key.count,
            syntax: policy.keySyntax, maxLength: policy.keyMaxLength, into: &parsedKey) {
            countOutcome(.invalidKey)
            refuse(status: 400, type: .invalidKey, detail: error.reason, bodyUnread: head.framing.hasBody)
            return
        }
        if case .contentLength(let length) = head.framing, length > UInt64(policy.maxRequestBody) {
            // Refused before reading a byte of it (and before any 100 Continue).
            refuse(status: 413, type: .bodyTooLarge, detail: "the request body exceeds max_request_body (\(policy.maxRequestBody) bytes)", bodyUnread: true)
            return
        }
        let guarded: GuardedExchange
        if let reusable = reusable ?? worker.retiredExchanges.takeReusable() {
            reusable.reuse(policy: policy, head: head, source: source, fields: fields, ownerTokens: &worker.ownerTokens)
            guarded = reusable
        } else {
            guarded = GuardedExchange(policy: policy, head: head, source: source, fields: fields, owner: worker.ownerTokens.next())
        }
        guarded.takeKey(from: &parsedKey)
        exchange.guarded = guarded
        if head.framing.hasBody {
            exchange.requestDecoder = BodyDecoder(framing: head.framing, limits: settings.parserLimits)
            if case .contentLength(let length) = head.framing { guarded.body.reserveCapacity(Int(length)) }
            phase = .bufferingBody
            startBodyTimer()
            if head.expectContinue {
                out.bytes.append(contentsOf: Self.continueLine)
                flushOut()
            }
        } else {
            guardedBodyComplete()
        }
    }

    /// Body bytes of a guarded request, accumulated up to `max_request_body`.
    func bufferGuardedBody(_ data: UnsafeRawBufferPointer) -> Bool {
        guard let guarded = exchange.guarded else { return false }
        if guarded.body.count + data.count > guarded.policy.maxRequestBody {
            refuse(status: 413, type: .bodyTooLarge, detail: "the request body exceeds max_request_body (\(guarded.policy.maxRequestBody) bytes)", bodyUnread: true)
            return false
        }
        guarded.body.append(contentsOf: data)
        return true
    }

    /// The whole request is here: fingerprint it and claim its key.
    func guardedBodyComplete() {
        guard let guarded = exchange.guarded else { return }
        exchange.requestBodyDone = true
        phase = .awaitingResponse
        setTimerWhileUpstreamWorks()
        if guarded.policy.scopeHeader != nil && !guarded.hasScope {
            // SPEC §3: a request without the scope header never falls into a namespace
            // shared by every such caller (two cookie-authenticated callers sending the same
            // key and body would get each other's stored response).
            guarded.stage = .settled
            switch guarded.policy.scopeMissing {
            case .reject:
                countOutcome(.missingScope)
                answer(status: 400, type: .missingScope, detail: "this request has no \(guarded.policy.scopeHeaderDisplayName) header, which identifies the caller for its Idempotency-Key")
            case .forwardUnguarded:
                countOutcome(.unscoped)
                exchange.guarded = nil
                forwardBuffered(guarded)
            }
            return
        }
        guarded.computeFingerprint()
        guarded.setStorageKey(prefix: settings.keyPrefix)
        claim(guarded)
    }

    private func claim(_ guarded: GuardedExchange) {
        guarded.stage = .claiming
        let policy = guarded.policy
        let started = EventLoop.monotonicNanos()
        let histogram = worker.metrics.storeClaimDuration
        // A store that answers at once (the memory store) is asked without a closure to allocate,
        // and with the key's bytes: finding a record it holds then makes no String either.
        let store = worker.store
        if let result = guarded.storageKeyBytes.withUnsafeBytes({ storageKey in
            store.claimNow(
                storageKey: storageKey, text: { guarded.storageKey }, owner: guarded.owner, fingerprint: guarded.fingerprint,
                lease: policy.lease, ttl: policy.ttl, expiredLease: policy.indeterminate)
        }) ?? store.claimNow(
            key: guarded.storageKey, owner: guarded.owner, fingerprint: guarded.fingerprint, lease: policy.lease,
            ttl: policy.ttl, expiredLease: policy.indeterminate) {
            histogram.observe(nanoseconds: EventLoop.monotonicNanos() &- started)
            claimFinished(guarded, result)
            return
        }
        worker.store.claim(
            key: guarded.storageKey, owner: guarded.owner, fingerprint: guarded.fingerprint, lease: policy.lease,
            ttl: policy.ttl, expiredLease: policy.indeterminate
        ) { [self] result in
            histogram.observe(nanoseconds: EventLoop.monotonicNanos() &- started)
            claimFinished(guarded, result)
        }
    }

    // MARK: outcomes

    func claimFinished(_ guarded: GuardedExchange, _ result: Result<ClaimOutcome, StoreError>) {
        guard exchange.guarded === guarded, guarded.stage == .claiming else { return }
        let outcome: ClaimOutcome
        switch result {
        case .failure(let error):
            storeUnavailable(guarded, error)
            return
        case .success(let value):
            outcome = value
        }
        switch OutcomePolicy.decide(outcome, fingerprint: guarded.fingerprint) {
        case .forward:
            countOutcome(.forwarded)
            guarded.stage = .forwarding
            forwardGuarded(guarded)
        case .replay(let response):
            guarded.stage = .settled
            countOutcome(.replayed)
            writeReplay(response)
        case .replayUnavailable(let status):
            guarded.stage = .settled
            countOutcome(.replayed)
            answer(status: 409, type: .replayUnavailable, detail: "the original response (status \(status)) was too large to store and cannot be replayed")
        case .mismatch:
            guarded.stage = .settled
            countOutcome(.mismatch)
            answer(status: 422, type: .keyReused, detail: "this Idempotency-Key was used with a different request")
        case .inFlight:
            if guarded.policy.waitForInFlight {
                startWaiting(guarded)
            } else {
                guarded.stage = .settled
                countOutcome(.inFlight)
                answer(status: 409, type: .inFlight, detail: "a request with this Idempotency-Key is still being processed", retryAfter: 1)
            }
        case .outcomeUnknown:
            guarded.stage = .settled
            countOutcome(.outcomeUnknown)
            answer(status: 409, type: .outcomeUnknown, detail: "an earlier request with this Idempotency-Key may or may not have been executed; it cannot be retried safely, with this key or a new one")
        }
    }

    private func storeUnavailable(_ guarded: GuardedExchange, _ error: StoreError) {
        if case .full(let why) = error {
            storeFull(guarded, why)
            return
        }
        countOutcome(.storeUnavailable)
        if error.mayHaveBeenApplied {
            // The claim may have been written although its reply never came (timeout, or the
            // connection broke after the command was queued): release it by compare-and-set on
            // our owner token, retried until the store answers, or the key would stay in flight
            // for a request that was never forwarded (SPEC §4, "the claim's reply is lost").
            worker.settler.settle(
                key: guarded.storageKey, owner: guarded.owner, action: .release, origin: .lostClaimReply, lease: guarded.policy.lease)
        }
        // `pass_through` never applies when the store works but says no:
        // - a record that cannot be read exists: it was written by another version of
        //   idemproxy (a rolling upgrade or rollback) or damaged, and forwarding would skip its
        //   guard and could run the request twice;
        // - a claim too few replicas acknowledged (`min_replicas_acked`, SPEC §6): 503, nothing
        //   forwarded, the claim released above.
        let storeSaysNo: Bool
        switch error {
        case .corrupt:
            storeSaysNo = true
            worker.log.error("idempotency record unreadable", ["error": "\(error)"])
        case .notReplicated:
            storeSaysNo = true
            worker.log.warning("claim not acknowledged by enough replicas", ["error": "\(error)"])
        default:
            storeSaysNo = false
        }
        // Nor for a client known to be gone (let go at shutdown, above all): nothing would be
        // stored, so the retry it must make, having no answer, would run the request a second
        // time; and at shutdown the upstream connection would be opened on a loop that is
        // stopping, and would keep it alive.
        if settings.passThroughWhenStoreUnavailable && !storeSaysNo && !clientGone {
            guarded.stage = .passThrough
            _ = worker.metrics.passThroughForwards.add(1, ordering: .relaxed)
            worker.log.warning("store unavailable, forwarding unguarded (pass_through)", ["error": "\(error)"])
            forwardGuarded(guarded)
        } else {
            guarded.stage = .settled
            answer(status: 503, type: .storeUnavailable, detail: "the idempotency store is unavailable; retry later with the same key", retryAfter: 1)
        }
    }

    /// The store refused the claim for lack of memory: nothing was written and nothing live is
    /// evicted (SPEC §4). The record is read with a plain GET first, so a retry of a stored
    /// request still replays whatever a store's out-of-memory rule does to the claim itself.
    private func storeFull(_ guarded: GuardedExchange, _ why: String) {
        worker.store.get(key: guarded.storageKey) { [self] result in
            guard exchange.guarded === guarded, guarded.stage == .claiming else { return }
            if case .success(let record?) = result {
                claimFinished(guarded, .success(.existing(record)))
                return
            }
            guarded.stage = .settled
            countOutcome(.storeFull)
            worker.log.warning("store full, claim refused", ["error": why])
            answer(status: 503, type: .storeFull, detail: "the idempotency store is full; retry later with the same key", retryAfter: 1)
        }
    }

    /// Sends a buffered request upstream without a claim (`scope.missing: unscoped`).
    private func forwardBuffered(_ guarded: GuardedExchange) {
        guarded.stage = .passThrough
        exchange.guarded = guarded
        forwardGuarded(guarded)
    }

    /// Sends the buffered request upstream, framed by Content-Length.
    private func forwardGuarded(_ guarded: GuardedExchange) {
        let connection: UpstreamConnection
        do {
            connection = try worker.pool.acquire(delegate: self)
        } catch {
            worker.metrics.upstreamReachable.store(false, ordering: .relaxed)
            guardedUpstreamFailed(requestSent: false, status: 502, detail: "cannot connect to the upstream")
            return
        }
        upstream = connection
        exchange.upstreamStartNanos = EventLoop.monotonicNanos()
        watchUpstream(connection)
        exchange.requestBodyDone = true
        let framing: BodyFraming = guarded.body.isEmpty && !guarded.head.framing.hasBody ? .none : .contentLength(UInt64(guarded.body.count))
        guarded.headBytes.withUnsafeBytes { source in
            // The buffered request's head stands in for the connection's while it is written:
            // swapped, not copied, so no array of either head is retained or released.
            guarded.swapHead(with: &head)
            writeForwardedHead(source: source, framing: framing, into: &connection.outbound.bytes)
            guarded.swapHead(with: &head)
        }
        connection.outbound.bytes.append(contentsOf: guarded.body)
        if guarded.stage == .forwarding { armLeaseRefresh(guarded) }
        connection.flush()
    }

    // MARK: settling

    /// The upstream answered completely: complete (or release, for release_statuses). The
    /// write is the settler's from here on, retried through store faults until it is stored
    /// or the lease is proven lost.
    func guardedResponseFinished() {
        guard let guarded = exchange.guarded, guarded.ownsClaim else { return }
        guarded.stage = .settled
        leaseTimer.cancel()
        let action: RecordSettler.Action
        switch OutcomePolicy.afterResponse(status: guarded.status, releaseStatuses: guarded.policy.releaseStatuses) {
        case .complete: action = .complete(guarded.storedResponse, ttl: guarded.policy.ttl)
        case .release: action = .release
        }
        worker.settler.settle(
            key: guarded.storageKey, owner: guarded.owner, action: action, origin: .owner(guarded),
            lease: guarded.policy.lease)
        finishDetachedIfDone()
    }

    /// The request may or may not have reached the upstream and no complete response came
    /// back: under `hold` the record becomes `unknown`, under `release` it is removed.
    func guardedUpstreamFailed(requestSent: Bool, status: Int, detail: String) {
        guard let guarded = exchange.guarded else { return }
        let owned = guarded.ownsClaim
        guarded.stage = .settled
        leaseTimer.cancel()
        upstreamAbandoned()
        if owned {
            let action: RecordSettler.Action
            switch OutcomePolicy.afterFailure(requestSent: requestSent, indeterminate: guarded.policy.indeterminate) {
            case .release: action = .release
            case .markUnknown: action = .markUnknown(ttl: guarded.policy.ttl)
            }
            worker.settler.settle(
                key: guarded.storageKey, owner: guarded.owner, action: action, origin: .owner(guarded),
                lease: guarded.policy.lease)
        }
        if requestSent {
            countOutcome(.outcomeUnknown)
            if exchange.responseStarted { cutResponse(); return }
            answer(status: status, type: .outcomeUnknown, detail: detail)
        } else {
            countOutcome(.upstreamError)
            answer(status: status, type: .upstreamUnreachable, detail: detail)
        }
        finishDetachedIfDone()
    }

    /// Keeps the claim alive while the upstream works: a slow but healthy request never
    /// loses it (SPEC §4). Refreshed four times per lease, so two refreshes may fail (a store
    /// blip) with a quarter of the lease still to spare; a reconnect refreshes at once
    /// (`Worker`).
    private func armLeaseRefresh(_ guarded: GuardedExchange) {
        loop.arm(leaseTimer, after: max(guarded.policy.leaseMillis / 4, 50))
    }

    /// A reconnect: refresh now if this connection holds a claim (the timer keeps its pace).
    func refreshLeaseIfClaimed() {
        guard let guarded = exchange.guarded, guarded.ownsClaim else { return }
        sendLeaseRefresh(guarded)
    }

    func refreshLease() {
        guard let guarded = exchange.guarded, guarded.ownsClaim else { return }
        sendLeaseRefresh(guarded)
        armLeaseRefresh(guarded)
    }

    private func sendLeaseRefresh(_ guarded: GuardedExchange) {
        let settler = worker.settler
        worker.store.refreshLease(key: guarded.storageKey, owner: guarded.owner, lease: guarded.policy.lease, ttl: guarded.policy.ttl) { result in
            // `false`: the record is gone or another request owns it. Whatever the upstream
            // answers can no longer be stored; that is logged and counted once (SPEC §4). Once
            // settling began, the settler's own write may be what moved the record on.
            if case .success(false) = result, guarded.ownsClaim {
                settler.leaseLost(guarded, key: guarded.storageKey, while: "refreshing the lease")
            }
        }
    }

    // MARK: responses

    /// A stored response as replayed: its status, its stored field lines exactly as received,
    /// `Idempotent-Replayed: true`, its framing and body, all kept as one buffer
    /// (`StoredResponse`). The common case, an HTTP/1.1 keep-alive client, is one copy of it.
    private func writeReplay(_ response: StoredResponse) {
        closeAfterTheLastAnswer()
        let close = closeAfterResponse || !exchange.clientKeepAlive
        exchange.status = response.status
        if close {
            response.writeReplay(connectionField: "Connection: close", into: &out.bytes)
        } else if acknowledgesKeepAlive(close: close) {
            response.writeReplay(connectionField: "Connection: keep-alive", into: &out.bytes)
        } else {
            out.bytes.append(contentsOf: response.keepAliveReplay)
        }
        completeGeneratedResponse(close: close)
    }

    func answer(status: Int, type: ProblemType, detail: String, retryAfter: Int? = nil) {
        var extra: [(name: String, value: String)] = []
        if let retryAfter { extra.append(("Retry-After", String(retryAfter))) }
        writeProblem(status: status, type: type, detail: detail, close: false, extraFields: extra)
    }

    /// A refusal before the body was read: the unread body makes the connection unusable.
    private func refuse(status: Int, type: ProblemType, detail: String, bodyUnread: Bool) {
        if bodyUnread { closeWithUnreadInput() }
        exchange.requestBodyDone = !bodyUnread
        writeProblem(status: status, type: type, detail: detail, close: bodyUnread)
    }
}

extension BodyFraming {
    var hasBody: Bool {
        switch self {
        case .none, .untilClose: return false
        case .contentLength(let length): return length > 0
        case .chunked: return true
        }
    }
}
