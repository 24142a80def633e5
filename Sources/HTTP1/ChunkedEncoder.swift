/// Writes the chunked transfer coding (RFC 9112 §7.1) around body bytes that
/// the caller sends itself, so data is never copied into the framing buffer.
public enum ChunkedEncoder {
    /// Writes the chunk-size line, e.g. "1a\r\n" for 26 bytes of data.
    ///
    /// A size of zero is a programming error: it would be the last-chunk and end
    /// the body early, truncating it for the recipient.
    public static func writeChunkHeader(size: Int, into out: inout [UInt8]) {
        precondition(size > 0, "a zero-size chunk would terminate the chunked body")
        out.appendHex(UInt64(size))
        out.appendCRLF()
    }

    /// Writes the CRLF that follows chunk data.
    public static func writeChunkTrailer(into out: inout [UInt8]) {
        out.appendCRLF()
    }

    /// Writes the last-chunk and an empty trailer section: "0\r\n\r\n".
    public static func writeLastChunk(into out: inout [UInt8]) {
        out.appendLiteral("0\r\n\r\n")
    }
}
