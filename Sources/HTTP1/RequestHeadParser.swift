/// Parses a request head in place, picohttpparser style: the caller owns the
/// buffer and the `RequestHead`, and gets back offsets into its own bytes.
public enum RequestHeadParser {
    /// Returns false when the head is incomplete (need more bytes); true when
    /// `head` was filled.
    ///
    /// `scanHint` is the byte count the caller already scanned without finding
    /// the end of the head (pass 0 the first time); it lets byte-by-byte feeding
    /// stay linear. The bytes passed on a later call must start with the bytes
    /// passed before. Throws on any violation, including limits crossed while
    /// the head is still incomplete.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer,
        into head: inout RequestHead,
        limits: HTTPParserLimits,
        scanHint: Int = 0
    ) throws(HTTPParseError) -> Bool {
        // The scanner's saved progress is only trusted when the caller says this
        // is a continuation and the saved position still lies inside the bytes;
        // otherwise scanning restarts, which is slower but never wrong.
        if scanHint <= 0 || head.scanner.offset > bytes.count || head.scanner.phase == .done {
            head.scanner = HeadScanner(forRequest: true)
        }
        guard let headLength = try head.scanner.scan(bytes, limits: limits) else { return false }
        head.scanner = HeadScanner(forRequest: true)
        try parseComplete(bytes, headLength: headLength, into: &head, limits: limits)
        return true
    }

    /// Second pass over a head whose line framing the scanner has verified.
    private static func parseComplete(
        _ bytes: UnsafeRawBufferPointer,
        headLength: Int,
        into head: inout RequestHead,
        limits: HTTPParserLimits
    ) throws(HTTPParseError) {
        head.fields.removeAll(keepingCapacity: true)
        head.hopByHop.removeAll(keepingCapacity: true)
        head.headLength = headLength

        // Leading empty lines were checked to be CRLF pairs by the scanner.
        var p = 0
        while bytes[p] == ASCII.cr { p &+= 2 }
        p = try parseRequestLine(bytes, from: p, into: &head, limits: limits)

        let summary = try FieldLineParser.parse(
            bytes, from: p, fields: &head.fields, hopByHop: &head.hopByHop, limits: limits, isRequest: true)
        head.framing = try framing(bytes, summary, head: head)

        if summary.hostIndex >= 0 {
            let value = head.fields[summary.hostIndex].value
            // RFC 9112 §3.2: a server MUST respond 400 to a request whose Host
            // field value is invalid.
            guard FieldValueSyntax.isValidAuthority(bytes, value) else { throw .invalidHost }
            head.host = value
        } else {
            head.host = nil
            // RFC 9112 §3.2: a server MUST respond 400 to any HTTP/1.1 request
            // that lacks a Host header field.
            if head.versionMinor == 1 { throw .missingHost }
        }

        let options = try ConnectionOptions.apply(
            bytes, fields: head.fields, hopByHop: &head.hopByHop, summary: summary, isRequest: true)
        head.keepAlive = head.versionMinor == 1 ? !options.close : (options.keepAlive && !options.close)
        head.connectionNamedFields = options.namedFields
        head.expectContinue = head.versionMinor == 1 && summary.expectContinue
        head.upgradeRequested = summary.upgrade
    }

    /// Decides the body framing from the framing fields (RFC 9112 §6.3).
    private static func framing(
        _ bytes: UnsafeRawBufferPointer,
        _ summary: FieldSummary,
        head: RequestHead
    ) throws(HTTPParseError) -> BodyFraming {
        guard summary.transferEncodingIndex >= 0 else {
            // RFC 9112 §6.3 rules 6 and 7: Content-Length frames the body; with
            // neither field the request has no body.
            if let length = summary.contentLength { return .contentLength(length) }
            return .none
        }
        // RFC 9112 §6.1: a server MAY reject a request with both fields, and
        // §6.3 calls it a likely smuggling attempt; this is the CL.TE / TE.CL
        // vector, so it is always refused.
        if summary.contentLength != nil { throw .contentLengthAndTransferEncoding }
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message MUST be
        // treated as faulty framing; HTTP/1.0 has no chunked coding.
        if head.versionMinor == 0 { throw .transferEncodingInHTTP10 }
        switch FieldValueSyntax.transferEncoding(bytes, head.fields[summary.transferEncodingIndex].value) {
        case nil:
            return .chunked
        case .malformed?:
            throw .malformedTransferEncoding
        case .chunkedNotFinal?:
            // RFC 9112 §6.3 rule 4: chunked not final in a request MUST be
            // answered with 400 and the connection closed.
            throw .chunkedNotFinal
        case .unsupported?:
            // RFC 9112 §6.1: a transfer coding the server does not understand
            // SHOULD be answered with 501.
            throw .unsupportedTransferCoding
        }
    }
}
