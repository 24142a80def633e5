/// Parsers for the values of the fields that decide framing and routing. Each
/// one accepts exactly the RFC grammar and nothing more, because every
/// tolerated variant is a variant some other hop may read differently.
enum FieldValueSyntax {
    /// Content-Length = 1*DIGIT (RFC 9110 §8.6).
    ///
    /// Rejected, each with 400: an empty value (read as 0 by some servers), a
    /// sign, hex, internal whitespace (`4 2`), and lists even of identical values
    /// (RFC 9110 §8.6 lets a recipient collapse those, but a strict proxy gains
    /// nothing by it). More than 19 digits is refused so the value always fits a
    /// UInt64 without overflow checks.
    static func contentLength(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(HTTPParseError) -> UInt64 {
        guard !range.isEmpty, range.count <= 19 else { throw .invalidContentLength }
        var value: UInt64 = 0
        for i in range {
            let d = bytes[i] &- 0x30
            guard d < 10 else { throw .invalidContentLength }
            value = value &* 10 &+ UInt64(d)
        }
        // 19 digits can exceed what a signed 64-bit length holds; so many bytes could never
        // be sent, and a peer that parses lengths as Int64 would read another value.
        guard value <= UInt64(Int64.max) else { throw .invalidContentLength }
        return value
    }

    enum TransferCodingError {
        case malformed, chunkedNotFinal, unsupported
    }

    /// Checks that a Transfer-Encoding value is exactly `chunked`
    /// (case-insensitive, RFC 9112 §7), reporting how it fails otherwise.
    ///
    /// - malformed: non-token codings or parameters. Empty list elements
    ///   (`, chunked`) are accepted and ignored, as RFC 9110 §5.6.1 requires of
    ///   recipients; the value is never forwarded (messages are re-framed), so
    ///   no next hop can read it differently.
    /// - chunkedNotFinal: chunked missing, not last, or applied twice
    ///   (RFC 9112 §6.1, §6.3 rule 4), including `xchunked`.
    /// - unsupported: a well-formed list ending in chunked with other codings
    ///   before it, which this proxy cannot decode (RFC 9112 §6.1: 501).
    static func transferEncoding(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> TransferCodingError? {
        var sawChunked = false
        var codings = 0
        var elementStart = range.lowerBound
        var p = range.lowerBound
        while true {
            let atEnd = p == range.upperBound
            if atEnd || bytes[p] == ASCII.comma {
                var s = elementStart
                var e = p
                while s < e && ByteClass.isWhitespace(bytes[s]) { s += 1 }
                while e > s && ByteClass.isWhitespace(bytes[e - 1]) { e -= 1 }
                if s < e {
                    for i in s..<e where !ByteClass.isTchar(bytes[i]) { return .malformed }
                    if sawChunked { return .chunkedNotFinal }
                    sawChunked = NameMatch.equals(bytes, s..<e, "chunked")
                    codings += 1
                }
                if atEnd { break }
                elementStart = p + 1
            }
            p += 1
        }
        if !sawChunked { return .chunkedNotFinal }
        return codings == 1 ? nil : .unsupported
    }

    /// Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2).
    ///
    /// The host is either an IP literal in brackets or a reg-name / IPv4 address
    /// made of unreserved characters, sub-delims and percent-encodings. Anything
    /// else, notably SP, '@' (userinfo), '/', '?' and '#', would let the value be
    /// split into a different authority by the upstream. An empty host is
    /// refused: http and https URIs always have one (RFC 9110 §4.2.1).
    static func isValidAuthority(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var p = range.lowerBound
        let end = range.upperBound
        guard p < end else { return false }
        if bytes[p] == 0x5B {  // "["
            p += 1
            let literalStart = p
            while p < end && bytes[p] != 0x5D {
                let b = bytes[p]
                guard ByteClass.isHostByte(b), b != 0x5B, b != 0x25 else { return false }
                p += 1
            }
            guard p < end, p > literalStart else { return false }
            p += 1  // "]"
        } else {
            let hostStart = p
            // Letters, digits, '-' and '.' (host names and IPv4 addresses) eight at a time; the
            // byte loop judges the rest, ':' and '%' included.
            while p &+ 8 <= end && SWAR.allAlphanumeric(SWAR.load(bytes, p), or: 0x2D, 0x2E) { p &+= 8 }
            while p < end && bytes[p] != ASCII.colon {
                let b = bytes[p]
                guard ByteClass.isHostByte(b), b != 0x5B, b != 0x5D else { return false }
                if b == 0x25 {  // "%" HEXDIG HEXDIG
                    guard p + 2 < end,
                          ByteClass.hexValue(bytes[p + 1]) != nil,
                          ByteClass.hexValue(bytes[p + 2]) != nil else { return false }
                    p += 2
                }
                p += 1
            }
            guard p > hostStart else { return false }
        }
        if p == end { return true }
        guard bytes[p] == ASCII.colon else { return false }
        p += 1
        while p < end {
            guard ByteClass.isDigit(bytes[p]) else { return false }
            p += 1
        }
        return true
    }

    /// Whether `bytes[range]` is a request-target in authority-form with a
    /// mandatory port (RFC 9112 §3.2.3).
    static func isAuthorityForm(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        guard isValidAuthority(bytes, range), let last = range.last, ByteClass.isDigit(bytes[last]) else {
            return false
        }
        // The trailing digits must belong to a port, not to the host itself.
        var p = last
        while p > range.lowerBound && ByteClass.isDigit(bytes[p]) { p -= 1 }
        return bytes[p] == ASCII.colon
    }
}
