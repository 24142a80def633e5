/// How the length of a message body is determined (RFC 9112 §6.3).
public enum BodyFraming: Sendable, Equatable {
    /// The message has no body at all.
    case none
    /// Exactly this many bytes follow the head.
    case contentLength(UInt64)
    /// The body uses the chunked transfer coding (RFC 9112 §7.1).
    case chunked
    /// The body extends until the peer closes the connection. Only responses
    /// can be framed this way; a request without framing has no body.
    case untilClose
}
