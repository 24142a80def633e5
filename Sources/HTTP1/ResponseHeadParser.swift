/// Parses a response head received from an upstream. Every violation throws;
/// the caller answers its client with 502 and closes the upstream connection,
/// because after a framing error the upstream byte stream cannot be trusted.
public enum ResponseHeadParser {
    /// Returns false when the head is incomplete; true when `head` was filled.
    /// `requestMethod` is the method of the request this response answers, which
    /// RFC 9112 §6.3 needs to decide whether a body follows.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer,
        into head: inout ResponseHead,
        requestMethod: HTTPMethod,
        limits: HTTPParserLimits,
        scanHint: Int = 0
    ) throws(HTTPParseError) -> Bool {
        if scanHint <= 0 || head.scanner.offset > bytes.count || head.scanner.phase == .done {
            head.scanner = HeadScanner(forRequest: false)
        }
        guard let headLength = try head.scanner.scan(bytes, limits: limits) else { return false }
        head.scanner = HeadScanner(forRequest: false)
        try parseComplete(bytes, headLength: headLength, into: &head, requestMethod: requestMethod, limits: limits)
        return true
    }

    private static func parseComplete(
        _ bytes: UnsafeRawBufferPointer,
        headLength: Int,
        into head: inout ResponseHead,
        requestMethod: HTTPMethod,
        limits: HTTPParserLimits
    ) throws(HTTPParseError) {
        head.fields.removeAll(keepingCapacity: true)
        head.hopByHop.removeAll(keepingCapacity: true)
        head.headLength = headLength

        let p = try parseStatusLine(bytes, into: &head)
        let summary = try FieldLineParser.parse(
            bytes, from: p, fields: &head.fields, hopByHop: &head.hopByHop, limits: limits, isRequest: false)

        var chunked = false
        if summary.transferEncodingIndex >= 0 {
            // RFC 9112 §6.3 rule 3: both fields in a response "ought to be
            // handled as an error"; forwarding such a response is how responses
            // get split.
            if summary.contentLength != nil { throw .contentLengthAndTransferEncoding }
            // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
            if head.versionMinor == 0 { throw .transferEncodingInHTTP10 }
            // RFC 9112 §6.3 rule 4 would read a non-chunked coding until close,
            // but the proxy could neither decode it nor tell the client about it
            // once Transfer-Encoding is dropped, so anything but plain chunked
            // is refused.
            switch FieldValueSyntax.transferEncoding(bytes, head.fields[summary.transferEncodingIndex].value) {
            case nil: chunked = true
            case .malformed?: throw .malformedTransferEncoding
            case .chunkedNotFinal?: throw .chunkedNotFinal
            case .unsupported?: throw .unsupportedTransferCoding
            }
        }
        head.contentLength = summary.contentLength

        let status = head.status
        let bodyForbidden = status < 200 || status == 204 || status == 304
        head.announcedForbiddenBody = bodyForbidden && (chunked || (summary.contentLength ?? 0) > 0)
        if requestMethod == .head || bodyForbidden {
            // RFC 9112 §6.3 rule 1: responses to HEAD, 1xx, 204 and 304 end at
            // the empty line after the head, whatever their fields say.
            head.framing = .none
        } else if requestMethod == .connect && status < 300 {
            // RFC 9112 §6.3 rule 2: a 2xx to CONNECT switches to a tunnel.
            head.framing = .none
        } else if chunked {
            head.framing = .chunked
        } else if let length = summary.contentLength {
            head.framing = .contentLength(length)
        } else {
            // RFC 9112 §6.3 rule 8: otherwise the body runs until the server closes.
            head.framing = .untilClose
        }

        let options = try ConnectionOptions.apply(
            bytes, fields: head.fields, hopByHop: &head.hopByHop, summary: summary, isRequest: false)
        let persistent = head.versionMinor == 1 ? !options.close : (options.keepAlive && !options.close)
        head.keepAlive = persistent && head.framing != .untilClose
    }

    /// status-line = HTTP-version SP status-code SP [ reason-phrase ]
    /// (RFC 9112 §4). Returns the offset of the first field line.
    ///
    /// Named leniency: a status line that ends right after the code (`HTTP/1.1 200` without
    /// the SP before an empty reason) is accepted, as nginx, HAProxy and llhttp accept it.
    /// It cannot be confused with anything else (the line still ends in CRLF after exactly
    /// three digits), so accepting it opens no desynchronisation.
    private static func parseStatusLine(
        _ bytes: UnsafeRawBufferPointer,
        into head: inout ResponseHead
    ) throws(HTTPParseError) -> Int {
        var lineEnd = 0
        while bytes[lineEnd] != ASCII.cr { lineEnd &+= 1 }
        // "HTTP/1.1" SP 3DIGIT SP is 13 bytes; the reason may be empty but the
        // second SP may not be omitted.
        guard lineEnd >= 12,
              let (major, minor) = RequestHeadParser.versionDigits(bytes, 0..<8),
              bytes[8] == ASCII.sp, lineEnd == 12 || bytes[12] == ASCII.sp else { throw .invalidStatusLine }
        guard major == 1, minor <= 1 else { throw .unsupportedVersion }
        head.versionMinor = Int(minor)

        // RFC 9110 §15: status-code = 3DIGIT, from 100 to 999 here since the
        // first digit gives the class.
        let d0 = bytes[9] &- 0x30, d1 = bytes[10] &- 0x30, d2 = bytes[11] &- 0x30
        guard d0 >= 1, d0 <= 9, d1 < 10, d2 < 10 else { throw .invalidStatusLine }
        head.status = Int(d0) * 100 + Int(d1) * 10 + Int(d2)

        // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
        if lineEnd > 13 {
            for i in 13..<lineEnd where !ByteClass.isFieldValueByte(bytes[i]) { throw .invalidStatusLine }
        }
        head.reason = lineEnd == 12 ? 12..<12 : 13..<lineEnd
        return lineEnd &+ 2
    }
}
