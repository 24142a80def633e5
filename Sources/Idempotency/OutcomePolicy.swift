/// What the proxy does with a guarded request once the store has answered
/// its claim (SPEC §4 table).
public enum ClaimDecision: Sendable, Equatable {
    /// This request owns the claim: send it upstream.
    case forward
    /// Completed earlier with the same fingerprint: answer with the stored
    /// response plus `Idempotent-Replayed: true`.
    case replay(StoredResponse)
    /// Completed earlier, but the response was too large to store: `409`
    /// problem `replay-unavailable` naming the original `status`.
    case replayUnavailable(status: Int)
    /// The key was used for a different request: `422` problem `key-reused`
    /// (idempotency-key draft: reuse with a different payload → 422).
    case mismatch
    /// The original is still running: `409` problem `in-flight` with
    /// `Retry-After`, or wait for it under `concurrent: wait` (the draft:
    /// a retry before the original completes gets a conflict error).
    case inFlight
    /// The original may or may not have executed: `409` problem
    /// `outcome-unknown`. A new key is not safe either.
    case outcomeUnknown
}

/// What to do with the claimed record once the upstream has answered.
public enum AfterResponse: Sendable, Equatable {
    /// Store the response for replay (`complete`).
    case complete
    /// Delete the record so the client may retry (`release`).
    case release
}

/// What to do with the claimed record when no complete response arrived.
public enum AfterFailure: Sendable, Equatable {
    /// Delete the record: the request never reached the upstream, or the
    /// policy prefers re-execution to a held key.
    case release
    /// Keep the key as `unknown` (`markUnknown`).
    case markUnknown
}

/// Pure decisions around a claim; no I/O, no clock.
public enum OutcomePolicy {
    /// Default `release_statuses` (SPEC §4): 429 and 503 tell the client to
    /// come back later, so the operation evidently did not happen.
    public static let defaultReleaseStatuses = [429, 503]

    /// Maps a claim result to the proxy's next step.
    ///
    /// The fingerprint is compared first for every existing record, whatever
    /// its state: a key reused for a different request is a client error
    /// (`422`) even while the original is running or its outcome is unknown.
    /// A completed record without a response cannot come from this store's
    /// transitions; it is answered as `outcomeUnknown` because what happened
    /// upstream is then unknown and re-executing would be unsafe.
    public static func decide(_ outcome: ClaimOutcome, fingerprint: [UInt8]) -> ClaimDecision {
        guard case .existing(let record) = outcome else { return .forward }
        guard record.fingerprint == fingerprint else { return .mismatch }
        switch record.state {
        case .inFlight:
            return .inFlight
        case .unknown:
            return .outcomeUnknown
        case .completed:
            guard let response = record.response else { return .outcomeUnknown }
            if response.bodyOmitted { return .replayUnavailable(status: response.status) }
            return .replay(response)
        }
    }

    /// After the upstream answered with `status`: statuses listed in
    /// `release_statuses` release the record (the client may retry);
    /// everything else, errors included, is stored and replayed, as Stripe
    /// does ("regardless of whether it succeeds or fails").
    public static func afterResponse(status: Int, releaseStatuses: [Int]) -> AfterResponse {
        releaseStatuses.contains(status) ? .release : .complete
    }

    /// After the upstream exchange failed without a complete response.
    ///
    /// - Parameters:
    ///   - requestSent: whether any byte of the request may have reached the
    ///     upstream. `false` only when it certainly did not (connect refused,
    ///     reset before the request was written): releasing is then safe.
    ///   - indeterminate: the route's `indeterminate` policy.
    public static func afterFailure(requestSent: Bool, indeterminate: IndeterminatePolicy) -> AfterFailure {
        guard requestSent else { return .release }
        switch indeterminate {
        case .hold: return .markUnknown
        case .release: return .release
        }
    }
}
