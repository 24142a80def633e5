// libFuzzer target `request-head`: RequestHeadParser.parse (Sources/HTTP1).
//
// Invariants, under the default limits and under limits small enough to be crossed:
// - the outcome (incomplete, the exact error, or the head) is the same whether the input
//   arrives whole, split in two at an offset taken from its first byte, in random pieces, or
//   byte by byte (inputs up to 512 bytes), with `scanHint` passed as a connection does and a
//   `RequestHead` that already held an earlier request; each intermediate outcome also equals
//   a parse of that prefix from scratch;
// - an accepted head claims no more bytes than were given, ends in CRLF CRLF, and every range
//   in it (method, target, fields, Host) lies inside it and holds the bytes its grammar allows
//   (a target never has a fragment);
// - framing and version agree (no chunked HTTP/1.0, never read-until-close for a request,
//   HTTP/1.1 always has a Host);
// - after an accepted head, the bytes that follow (a pipelined request) parse the same with
//   the reused `RequestHead` as with a fresh one.

struct RequestSnapshot: Equatable {
    var method: HTTPMethod
    var methodRange: Range<Int>
    var target: Range<Int>
    var versionMinor: Int
    var fields: [FieldRange]
    var hopByHop: [Bool]
    var framing: BodyFraming
    var keepAlive: Bool
    var expectContinue: Bool
    var upgradeRequested: Bool
    var host: Range<Int>?
    var headLength: Int

    init(_ head: RequestHead) {
        method = head.method
        methodRange = head.methodRange
        target = head.target
        versionMinor = head.versionMinor
        fields = head.fields
        hopByHop = head.hopByHop
        framing = head.framing
        keepAlive = head.keepAlive
        expectContinue = head.expectContinue
        upgradeRequested = head.upgradeRequested
        host = head.host
        headLength = head.headLength
    }
}

private func feeder(_ limits: HTTPParserLimits) -> HeadFeeder<RequestHead, RequestSnapshot> {
    HeadFeeder(
        parse: { (bytes, head, hint) throws(HTTPParseError) -> Bool in
            try RequestHeadParser.parse(bytes, into: &head, limits: limits, scanHint: hint)
        },
        snapshot: RequestSnapshot.init)
}

/// A head that has parsed a different request, with fields, a Host and chunked framing, so that
/// anything it keeps from that request by mistake shows up as a difference.
private func usedHead() -> RequestHead {
    var head = RequestHead()
    let previous = Array("POST http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nConnection: close, x-a\r\nX-A: 1\r\nExpect: 100-continue\r\nUpgrade: h2c\r\n\r\n".utf8)
    let accepted = previous.withUnsafeBytes { bytes in
        (try? RequestHeadParser.parse(bytes, into: &head, limits: .init())) ?? false
    }
    precondition(accepted, "the priming request must parse")
    return head
}

private func validate(_ s: RequestSnapshot, _ bytes: UnsafeRawBufferPointer, limits: HTTPParserLimits) {
    let input = escaped(bytes)
    checkHeadEnd(s.headLength, limits: limits, bytes)
    let end = s.headLength
    checkInside(s.methodRange, end, "method", bytes)
    checkInside(s.target, end, "target", bytes)
    fuzzCheck(!s.methodRange.isEmpty && s.methodRange.allSatisfy { ByteClass.isTchar(bytes[$0]) },
              "method \(s.methodRange) empty or not a token; input \(input)")
    fuzzCheck(s.method == HTTPMethod.classify(bytes, s.methodRange),
              "method \(s.method) is not what its bytes say; input \(input)")
    fuzzCheck(s.target.lowerBound == s.methodRange.upperBound + 1 && bytes[s.methodRange.upperBound] == ASCII.sp,
              "target \(s.target) does not follow the method and one SP; input \(input)")
    fuzzCheck(!s.target.isEmpty && s.target.allSatisfy { ByteClass.isVisibleASCII(bytes[$0]) },
              "target \(s.target) empty or with a byte outside VCHAR; input \(input)")
    fuzzCheck(s.target.count <= limits.maxTargetLength, "target longer than \(limits.maxTargetLength); input \(input)")
    // RFC 9112 §3.2: no form of request-target has a fragment, and the parser refuses one.
    fuzzCheck(!s.target.contains { bytes[$0] == UInt8(ascii: "#") }, "target \(s.target) has a fragment; input \(input)")
    fuzzCheck(s.versionMinor == 0 || s.versionMinor == 1, "version 1.\(s.versionMinor); input \(input)")
    checkFields(s.fields, hopByHop: s.hopByHop, headLength: end, after: s.target.upperBound, limits: limits, bytes)
    if let host = s.host {
        fuzzCheck(s.fields.contains { $0.value == host }, "Host \(host) is not a field value; input \(input)")
    }
    fuzzCheck(s.versionMinor == 0 || s.host != nil, "HTTP/1.1 request accepted without Host; input \(input)")
    fuzzCheck(s.framing != .untilClose, "request framed until close; input \(input)")
    fuzzCheck(s.framing != .chunked || s.versionMinor == 1, "chunked HTTP/1.0 request; input \(input)")
    fuzzCheck(!s.expectContinue || s.versionMinor == 1, "Expect honoured on HTTP/1.0; input \(input)")
    if case .contentLength = s.framing {
        fuzzCheck(s.fields.contains { field in
            field.name.count == 14 && NameMatch.equals(bytes, field.name, "content-length")
        }, "Content-Length framing without a Content-Length field; input \(input)")
    }
}

private func check(_ input: UnsafeRawBufferPointer, limits: HTTPParserLimits, label: String) {
    let feeder = feeder(limits)
    let n = input.count
    var head = RequestHead()
    let whole = feeder.once(input, count: n, head: &head, hint: 0)
    if case .accepted(let s) = whole { validate(s, input, limits: limits) }

    var rng = SplitMix64(hashing: input)
    var used = usedHead()
    feeder.checkSplitsAgree(input, whole: whole, head: &used, fresh: RequestHead.init, rng: &rng, label: label)

    // A pipelined request right after the head parses the same with the head reused.
    if case .accepted(let s) = whole, s.headLength < n {
        let rest = UnsafeRawBufferPointer(rebasing: input[s.headLength...])
        var fresh = RequestHead()
        let reused = feeder.once(rest, count: rest.count, head: &head, hint: 0)
        let clean = feeder.once(rest, count: rest.count, head: &fresh, hint: 0)
        fuzzCheck(reused == clean, """
            \(label): the bytes after the head gave \(reused) with the head reused, \(clean) with a fresh one; \
            input \(escaped(input))
            """)
        if case .accepted(let next) = clean { validate(next, rest, limits: limits) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    check(input, limits: HTTPParserLimits(), label: "default limits")
    check(input, limits: tightLimits, label: "tight limits")
    return 0
}
