/// A parsed request head. All ranges are offsets into the buffer it was parsed
/// from; the struct owns no bytes of the message.
///
/// A connection keeps one `RequestHead` and passes it to every parse, so the
/// `fields` and `hopByHop` arrays keep their capacity across requests and the
/// steady state allocates nothing.
public struct RequestHead: Sendable {
    public var method: HTTPMethod
    public var methodRange: Range<Int>
    public var target: Range<Int>
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var versionMinor: Int
    public var fields: [FieldRange]
    /// Parallel to `fields`: true for fields that must not be forwarded, either
    /// because RFC 9110 §7.6.1 makes them hop-by-hop, because a Connection field
    /// names them, or because the proxy re-frames the body (Content-Length).
    public var hopByHop: [Bool]
    /// `.none`, `.contentLength` or `.chunked`; a request without framing fields
    /// has no body (RFC 9112 §6.3 rule 7), never `.untilClose`.
    public var framing: BodyFraming
    /// RFC 9112 §9.3: HTTP/1.1 persists unless `close` is given; HTTP/1.0
    /// persists only with `keep-alive`.
    public var keepAlive: Bool
    /// `Expect: 100-continue` on an HTTP/1.1 request. RFC 9110 §10.1.1 says to
    /// ignore it on HTTP/1.0; other expectations are reported as false.
    public var expectContinue: Bool
    /// An Upgrade field is present.
    public var upgradeRequested: Bool
    /// The value of the single Host field, if there is one.
    public var host: Range<Int>?
    /// A Connection field named other fields of this head, which are now marked hop-by-hop;
    /// a proxy that depends on some end-to-end fields may have to keep them (SPEC §5).
    public var connectionNamedFields: Bool
    /// Bytes consumed by the head, including leading empty lines and the final
    /// CRLF CRLF. The body, or the next pipelined request, starts here.
    public var headLength: Int

    /// Progress of the first pass while the head is incomplete.
    var scanner: HeadScanner

    public init() {
        method = .get
        methodRange = 0..<0
        target = 0..<0
        versionMinor = 1
        fields = []
        hopByHop = []
        framing = .none
        keepAlive = true
        expectContinue = false
        upgradeRequested = false
        host = nil
        connectionNamedFields = false
        headLength = 0
        scanner = HeadScanner(forRequest: true)
    }
}

public extension RequestHead {
    /// Makes this head a copy of `other` that shares no storage with it, reusing this head's
    /// own field arrays. A plain assignment would share `other`'s arrays, and the next parse
    /// into `other` (which clears them keeping their capacity) would then have to allocate.
    /// `other` is borrowed and its values are copied one by one, so its arrays are neither
    /// retained nor released (`HeadAPITests.aCopyMatchesItsOriginalInEveryProperty`
    /// compares every stored property, so one added later cannot be missed here).
    mutating func copyContents(of other: borrowing RequestHead) {
        fields.removeAll(keepingCapacity: true)
        fields.append(contentsOf: other.fields)
        hopByHop.removeAll(keepingCapacity: true)
        hopByHop.append(contentsOf: other.hopByHop)
        method = other.method
        methodRange = other.methodRange
        target = other.target
        versionMinor = other.versionMinor
        framing = other.framing
        keepAlive = other.keepAlive
        expectContinue = other.expectContinue
        upgradeRequested = other.upgradeRequested
        host = other.host
        connectionNamedFields = other.connectionNamedFields
        headLength = other.headLength
        scanner = other.scanner
    }
}
