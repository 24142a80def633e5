import HTTP1

/// Per-request state of a client connection: what was asked, how the request and response are
/// framed on each side, and how far each has got. Reset between requests.
struct Exchange {
    var method: HTTPMethod = .get
    var clientVersionMinor = 1
    /// The client's request allows another on the connection (RFC 9112 §9.3).
    var clientKeepAlive = true
    var requestDecoder = BodyDecoder(framing: .none)
    /// The request body is re-framed as chunked towards the upstream.
    var requestChunked = false
    var requestBodyDone = false
    var responseHead = ResponseHead()
    var responseScanHint = 0
    var responseStarted = false
    /// Where the response begins in the connection's output stream (`OutputBuffer`
    /// `totalWritten` plus what was queued ahead of it): until that many bytes are written,
    /// none of the response has gone out and it can still be withdrawn.
    var responseStreamStart: UInt64 = 0
    /// The response's body ends at the connection's close (RFC 9112 §6.3 rule 8): only a
    /// reset can tell the client it was cut.
    var responseEndsAtClose = false
    var responseDecoder = BodyDecoder(framing: .none)
    /// The response body is re-framed as chunked towards the client.
    var responseChunked = false
    /// The request may be re-sent: an idempotent method without a body on a reused
    /// connection (RFC 9110 §9.2.2). Its bytes stay in the connection's output buffer.
    var retryable = false
    var retried = false
    var requestsServed = 0
    /// Set for guarded requests (SPEC §2–§4).
    var guarded: GuardedExchange? = nil
    /// For metrics and the access log; nil until decided. A request refused before any
    /// decision (a malformed target, `413`, `501`, a body timeout) has none: it is logged, but
    /// neither counted nor timed under an outcome it never had.
    var outcome: RequestOutcome? = nil
    var status = 0
    var startNanos: UInt64 = 0
    var upstreamStartNanos: UInt64 = 0
    var logMethod = ""
    var logTarget = ""
    var logged = false

    /// Back to a fresh exchange's values, property by property: assigning `Exchange()` built a
    /// whole new value (two body decoders and a response head) and copied it over this one on
    /// every request. Kept: `requestsServed`, and the response head, whose field arrays' capacity
    /// the next parse reuses (it writes every other property of the head).
    /// `ExchangeResetTests` lists the properties, so one added later must be added here.
    mutating func reset() {
        method = .get
        clientVersionMinor = 1
        clientKeepAlive = true
        requestDecoder = BodyDecoder(framing: .none)
        requestChunked = false
        requestBodyDone = false
        responseScanHint = 0
        responseStarted = false
        responseStreamStart = 0
        responseEndsAtClose = false
        responseDecoder = BodyDecoder(framing: .none)
        responseChunked = false
        retryable = false
        retried = false
        guarded = nil
        outcome = nil
        status = 0
        startNanos = 0
        upstreamStartNanos = 0
        if !logMethod.isEmpty { logMethod = "" }
        if !logTarget.isEmpty { logTarget = "" }
        logged = false
    }
}

extension HTTPMethod {
    /// RFC 9110 §9.2.2: methods whose repetition the client already has to tolerate.
    var isIdempotent: Bool {
        switch self {
        case .get, .head, .options, .put, .delete, .trace: return true
        default: return false
        }
    }
}

/// Response framing chosen towards the client, given the upstream's framing and the client's
/// HTTP version (RFC 9112 §6.3, §7).
enum ResponseFraming {
    static func towardsClient(upstream: BodyFraming, clientVersionMinor: Int) -> (framing: BodyFraming, chunked: Bool, mustClose: Bool) {
        switch upstream {
        case .none:
            return (.none, false, false)
        case .contentLength(let length):
            return (.contentLength(length), false, false)
        case .chunked, .untilClose:
            // HTTP/1.0 clients cannot parse chunked: the end of the body is the end of the connection.
            if clientVersionMinor >= 1 { return (.chunked, true, false) }
            return (.untilClose, false, true)
        }
    }
}
