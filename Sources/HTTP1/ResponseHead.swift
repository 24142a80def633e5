/// A parsed response head. All ranges are offsets into the buffer it was
/// parsed from; the struct owns no bytes of the message.
public struct ResponseHead: Sendable {
    /// The three-digit status code, 100 to 999.
    public var status: Int
    public var reason: Range<Int>
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var versionMinor: Int
    public var fields: [FieldRange]
    /// Parallel to `fields`: true for fields that must not be forwarded.
    public var hopByHop: [Bool]
    /// Decided by RFC 9112 §6.3 from the status, the request method and the
    /// framing fields.
    public var framing: BodyFraming
    /// False when the upstream asked to close, or when the body runs until close.
    public var keepAlive: Bool
    /// The Content-Length value even when it does not frame a body, as for a
    /// response to HEAD or a 304 (RFC 9110 §8.6), so that it can be passed on.
    public var contentLength: UInt64?
    /// Bytes consumed by the head, including the final CRLF CRLF.
    public var headLength: Int
    /// A 1xx, 204 or 304 response that nevertheless announced a body (Content-Length above
    /// zero, or Transfer-Encoding). It has none (RFC 9112 §6.3 rule 1), but a broken upstream
    /// may send those bytes anyway, so the connection must not carry another exchange.
    public var announcedForbiddenBody: Bool

    var scanner: HeadScanner

    public init() {
        status = 0
        reason = 0..<0
        versionMinor = 1
        fields = []
        hopByHop = []
        framing = .none
        keepAlive = true
        contentLength = nil
        headLength = 0
        announcedForbiddenBody = false
        scanner = HeadScanner(forRequest: false)
    }
}
