// libFuzzer target `response-head`: ResponseHeadParser.parse (Sources/HTTP1), for responses to
// GET and to HEAD.
//
// Invariants, under the default limits and under limits small enough to be crossed:
// - the outcome (incomplete, the exact error, or the head) is the same whether the input
//   arrives whole, split in two at an offset taken from its first byte, in random pieces, or
//   byte by byte (inputs up to 512 bytes), with `scanHint` passed as a connection does and a
//   `ResponseHead` that already held an earlier response; each intermediate outcome also
//   equals a parse of that prefix from scratch;
// - an accepted head claims no more bytes than were given, ends in CRLF CRLF, and its status,
//   reason and fields lie inside it and hold the bytes their grammar allows;
// - the request method only changes the framing: a response to GET and to HEAD is accepted or
//   refused alike, with the same status, fields and Content-Length; RFC 9112 §6.3 rule 1 holds
//   (no body after HEAD, 1xx, 204 or 304), a body read until close is never kept alive, and
//   Content-Length framing carries the Content-Length value.

struct ResponseSnapshot: Equatable {
    var status: Int
    var reason: Range<Int>
    var versionMinor: Int
    var fields: [FieldRange]
    var hopByHop: [Bool]
    var framing: BodyFraming
    var keepAlive: Bool
    var contentLength: UInt64?
    var headLength: Int

    init(_ head: ResponseHead) {
        status = head.status
        reason = head.reason
        versionMinor = head.versionMinor
        fields = head.fields
        hopByHop = head.hopByHop
        framing = head.framing
        keepAlive = head.keepAlive
        contentLength = head.contentLength
        headLength = head.headLength
    }

    /// Everything the request method must not change.
    var methodIndependent: ResponseSnapshot {
        var copy = self
        copy.framing = .none
        copy.keepAlive = true
        return copy
    }
}

private func feeder(_ method: HTTPMethod, _ limits: HTTPParserLimits) -> HeadFeeder<ResponseHead, ResponseSnapshot> {
    HeadFeeder(
        parse: { (bytes, head, hint) throws(HTTPParseError) -> Bool in
            try ResponseHeadParser.parse(bytes, into: &head, requestMethod: method, limits: limits, scanHint: hint)
        },
        snapshot: ResponseSnapshot.init)
}

/// A head that has parsed a different response, so that anything kept from it shows up.
private func usedHead() -> ResponseHead {
    var head = ResponseHead()
    let previous = Array("HTTP/1.1 201 Created\r\nContent-Length: 12\r\nConnection: x-a\r\nX-A: 1\r\nSet-Cookie: a=b\r\n\r\n".utf8)
    let accepted = previous.withUnsafeBytes { bytes in
        (try? ResponseHeadParser.parse(bytes, into: &head, requestMethod: .post, limits: .init())) ?? false
    }
    precondition(accepted, "the priming response must parse")
    return head
}

private func validate(_ s: ResponseSnapshot, method: HTTPMethod, _ bytes: UnsafeRawBufferPointer, limits: HTTPParserLimits) {
    let input = escaped(bytes)
    checkHeadEnd(s.headLength, limits: limits, bytes)
    let end = s.headLength
    fuzzCheck((100...999).contains(s.status), "status \(s.status); input \(input)")
    fuzzCheck(s.versionMinor == 0 || s.versionMinor == 1, "version 1.\(s.versionMinor); input \(input)")
    checkInside(s.reason, end, "reason", bytes)
    fuzzCheck(s.reason.lowerBound >= 12 && s.reason.allSatisfy { ByteClass.isFieldValueByte(bytes[$0]) },
              "reason \(s.reason) misplaced or with a control byte; input \(input)")
    fuzzCheck(bytes[s.reason.upperBound] == ASCII.cr, "reason \(s.reason) does not end the status line; input \(input)")
    checkFields(s.fields, hopByHop: s.hopByHop, headLength: end, after: s.reason.upperBound, limits: limits, bytes)
    if method == .head || s.status < 200 || s.status == 204 || s.status == 304 {
        fuzzCheck(s.framing == .none, "a response to \(method) with status \(s.status) has a body (\(s.framing)); input \(input)")
    }
    if s.framing == .untilClose {
        fuzzCheck(!s.keepAlive, "a body read until close on a kept-alive connection; input \(input)")
    }
    if case .contentLength(let length) = s.framing {
        fuzzCheck(s.contentLength == length, "framing \(s.framing) but Content-Length \(String(describing: s.contentLength)); input \(input)")
    }
    if s.framing == .chunked {
        fuzzCheck(s.versionMinor == 1 && s.contentLength == nil, "chunked framing on HTTP/1.0 or with Content-Length; input \(input)")
    }
}

private func check(_ input: UnsafeRawBufferPointer, method: HTTPMethod, limits: HTTPParserLimits, label: String)
    -> HeadOutcome<ResponseSnapshot>
{
    let feeder = feeder(method, limits)
    let n = input.count
    var head = ResponseHead()
    let whole = feeder.once(input, count: n, head: &head, hint: 0)
    if case .accepted(let s) = whole { validate(s, method: method, input, limits: limits) }

    var rng = SplitMix64(hashing: input, salt: method == .head ? 1 : 0)
    var used = usedHead()
    feeder.checkSplitsAgree(input, whole: whole, head: &used, fresh: ResponseHead.init, rng: &rng, label: label)
    return whole
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    for (limits, name) in [(HTTPParserLimits(), "default limits"), (tightLimits, "tight limits")] {
        let get = check(input, method: .get, limits: limits, label: "GET, \(name)")
        let head = check(input, method: .head, limits: limits, label: "HEAD, \(name)")
        switch (get, head) {
        case (.incomplete, .incomplete):
            break
        case (.rejected(let a), .rejected(let b)):
            fuzzCheck(a == b, "\(name): refused as \(a) after GET but as \(b) after HEAD; input \(escaped(input))")
        case (.accepted(let a), .accepted(let b)):
            fuzzCheck(a.methodIndependent == b.methodIndependent,
                      "\(name): the head after GET \(a) differs from the head after HEAD \(b); input \(escaped(input))")
        default:
            fuzzFail("\(name): \(get) after GET but \(head) after HEAD; input \(escaped(input))")
        }
    }
    return 0
}
