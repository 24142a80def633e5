/// Size limits applied while parsing, so that a peer cannot make the caller
/// buffer or scan without bound.
///
/// Every limit is checked as soon as it is crossed, even while the message is
/// still incomplete: waiting for the end of a line that never comes is exactly
/// what a resource-exhaustion attack relies on.
public struct HTTPParserLimits: Sendable {
    /// The whole head, including the request or status line and the final empty
    /// line. Exceeding it is answered with 431 (RFC 6585 §5).
    public var maxHeaderBytes: Int
    /// The number of field lines in a head (and in a trailer section).
    /// Exceeding it is answered with 431.
    public var maxHeaders: Int
    /// The request-target. Exceeding it is answered with 414 (RFC 9110 §15.5.15),
    /// which RFC 9112 §3 recommends over silently truncating.
    public var maxTargetLength: Int
    /// The bytes following the chunk size on one chunk line (extensions and the
    /// whitespace around them). RFC 9112 §7.1.1 asks servers to limit them and
    /// answer with a 4xx; this parser uses 400.
    public var maxChunkExtensionBytes: Int

    public init(
        maxHeaderBytes: Int = 16 * 1024,
        maxHeaders: Int = 100,
        maxTargetLength: Int = 8 * 1024,
        maxChunkExtensionBytes: Int = 4096
    ) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.maxTargetLength = maxTargetLength
        self.maxChunkExtensionBytes = maxChunkExtensionBytes
    }
}
