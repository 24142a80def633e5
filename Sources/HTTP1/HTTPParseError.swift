/// A protocol violation or limit crossed while parsing a message.
///
/// `status` is the response a server should send for a request that failed this
/// way (400, 413, 414, 431, 501 or 505). For responses received from an upstream
/// the caller answers 502 whatever the status says. `reason` is a short, fixed
/// phrase for logs; it is built from string literals only, so creating an error
/// never allocates.
///
/// Errors are sticky: a parser or decoder that has thrown keeps throwing the
/// same error, because after a framing error the position of the next message in
/// the stream is unknown and must never be guessed (RFC 9112 §11.2).
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String {
        "HTTP parse error \(status): \(reason)"
    }
}

// MARK: - Line framing (RFC 9112 §2.2, §5.2)

extension HTTPParseError {
    static var bareLF: Self { .init(status: 400, reason: "bare LF used as line terminator") }
    static var bareCR: Self { .init(status: 400, reason: "bare CR in message framing") }
    static var obsFold: Self { .init(status: 400, reason: "line starts with whitespace (obs-fold)") }
    static var headTooLarge: Self { .init(status: 431, reason: "header section too large") }
    static var tooManyFields: Self { .init(status: 431, reason: "too many header fields") }
}

// MARK: - Start line (RFC 9112 §3, §4)

extension HTTPParseError {
    static var invalidMethod: Self { .init(status: 400, reason: "invalid method token") }
    static var invalidRequestLine: Self { .init(status: 400, reason: "malformed request line") }
    static var invalidTarget: Self { .init(status: 400, reason: "invalid request-target") }
    static var targetTooLong: Self { .init(status: 414, reason: "request-target too long") }
    static var invalidVersion: Self { .init(status: 400, reason: "malformed HTTP version") }
    static var unsupportedVersion: Self { .init(status: 505, reason: "HTTP version not supported") }
    static var invalidStatusLine: Self { .init(status: 400, reason: "malformed status line") }
}

// MARK: - Field lines (RFC 9112 §5, RFC 9110 §5.5)

extension HTTPParseError {
    static var whitespaceBeforeColon: Self {
        .init(status: 400, reason: "whitespace between field name and colon")
    }
    static var invalidFieldName: Self { .init(status: 400, reason: "invalid character in field name") }
    static var emptyFieldName: Self { .init(status: 400, reason: "empty field name") }
    static var missingColon: Self { .init(status: 400, reason: "field line without colon") }
    static var invalidFieldValue: Self { .init(status: 400, reason: "invalid character in field value") }
    static var invalidConnection: Self { .init(status: 400, reason: "malformed Connection field") }
    static var missingHost: Self { .init(status: 400, reason: "missing Host field") }
    static var duplicateHost: Self { .init(status: 400, reason: "more than one Host field") }
    static var invalidHost: Self { .init(status: 400, reason: "invalid Host field value") }
}

// MARK: - Message framing (RFC 9112 §6)

extension HTTPParseError {
    static var contentLengthAndTransferEncoding: Self {
        .init(status: 400, reason: "Content-Length and Transfer-Encoding both present")
    }
    static var invalidContentLength: Self { .init(status: 400, reason: "malformed Content-Length") }
    static var duplicateContentLength: Self { .init(status: 400, reason: "more than one Content-Length field") }
    static var duplicateTransferEncoding: Self {
        .init(status: 400, reason: "more than one Transfer-Encoding field")
    }
    static var malformedTransferEncoding: Self { .init(status: 400, reason: "malformed Transfer-Encoding") }
    static var chunkedNotFinal: Self {
        .init(status: 400, reason: "chunked is not the single final transfer coding")
    }
    static var unsupportedTransferCoding: Self {
        .init(status: 501, reason: "unsupported transfer coding")
    }
    static var underscoreFramingAlias: Self {
        .init(status: 400, reason: "framing field name spelled with underscore")
    }
    static var transferEncodingInHTTP10: Self {
        .init(status: 400, reason: "Transfer-Encoding in an HTTP/1.0 message")
    }
}

// MARK: - Chunked body (RFC 9112 §7.1)

extension HTTPParseError {
    static var invalidChunkSize: Self { .init(status: 400, reason: "malformed chunk size") }
    static var chunkSizeTooLong: Self { .init(status: 400, reason: "chunk size has too many digits") }
    static var invalidChunkExtension: Self { .init(status: 400, reason: "malformed chunk extension") }
    static var chunkExtensionTooLong: Self { .init(status: 400, reason: "chunk extensions too long") }
    static var chunkDataNotTerminated: Self { .init(status: 400, reason: "chunk data not followed by CRLF") }
    static var forbiddenTrailerField: Self { .init(status: 400, reason: "framing field in trailer section") }
    static var trailersTooLarge: Self { .init(status: 431, reason: "trailer section too large") }
    static var incompleteBody: Self { .init(status: 400, reason: "connection closed before end of body") }
}
