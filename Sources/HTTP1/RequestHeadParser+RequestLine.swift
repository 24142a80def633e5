extension RequestHeadParser {
    /// request-line = method SP request-target SP HTTP-version (RFC 9112 §3),
    /// with exactly one SP between the parts. Returns the offset of the first
    /// field line.
    static func parseRequestLine(
        _ bytes: UnsafeRawBufferPointer,
        from start: Int,
        into head: inout RequestHead,
        limits: HTTPParserLimits
    ) throws(HTTPParseError) -> Int {
        var p = start
        while ByteClass.isTchar(bytes[p]) { p &+= 1 }
        // RFC 9112 §3.1: method = token. A non-token byte (including a second
        // SP or a leading SP) makes the line unparseable.
        guard p > start, bytes[p] == ASCII.sp else { throw .invalidMethod }
        head.methodRange = start..<p
        head.method = HTTPMethod.classify(bytes, head.methodRange)
        p &+= 1

        let targetStart = p
        // Fast path over long targets: eight bytes at a time while all are
        // visible ASCII (no byte below 0x21, none with the high bit, no DEL) and
        // none is "#", which the byte loop below must see.
        while p &+ 8 <= bytes.count {
            let w = SWAR.load(bytes, p)
            if SWAR.hasByteLess(than: 0x21, in: w) || w & 0x8080_8080_8080_8080 != 0 || SWAR.hasByte(0x7F, in: w)
                || SWAR.hasByte(0x23, in: w) {
                break
            }
            p &+= 8
        }
        while true {
            let b = bytes[p]
            if b == ASCII.sp || b == ASCII.cr { break }
            // RFC 9112 §3.2 / RFC 3986: a request-target has no whitespace,
            // controls or non-ASCII bytes; RFC 9112 §3 says invalid request-line
            // syntax is answered with 400.
            guard ByteClass.isVisibleASCII(b) else { throw .invalidTarget }
            // RFC 9112 §3.2: no request-target form has a fragment; a client must not
            // send one, and forwarding it would hand the upstream a target it may
            // route differently.
            if b == 0x23 { throw .invalidTarget }  // "#"
            p &+= 1
        }
        // An empty target means two consecutive SPs; a CR here means the
        // version is missing (an HTTP/0.9-style line).
        guard p > targetStart, bytes[p] == ASCII.sp else { throw .invalidRequestLine }
        head.target = targetStart..<p
        if head.target.count > limits.maxTargetLength { throw .targetTooLong }
        p &+= 1

        let versionStart = p
        while bytes[p] != ASCII.cr { p &+= 1 }
        head.versionMinor = try version(bytes, versionStart..<p)
        try validateTargetForm(bytes, head.target, method: head.method)
        return p &+ 2
    }

    /// HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
    /// Well-formed versions other than 1.0 and 1.1 get 505 (RFC 9110 §15.6.6);
    /// anything else, such as `HTTP/1.32`, is a malformed line and gets 400.
    static func version(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(HTTPParseError) -> Int {
        guard let (major, minor) = versionDigits(bytes, range) else { throw .invalidVersion }
        guard major == 1, minor <= 1 else { throw .unsupportedVersion }
        return Int(minor)
    }

    static func versionDigits(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> (UInt8, UInt8)? {
        guard range.count == 8 else { return nil }
        let s = range.lowerBound
        guard bytes[s] == 0x48, bytes[s + 1] == 0x54, bytes[s + 2] == 0x54, bytes[s + 3] == 0x50,
              bytes[s + 4] == ASCII.slash, ByteClass.isDigit(bytes[s + 5]), bytes[s + 6] == 0x2E,
              ByteClass.isDigit(bytes[s + 7]) else { return nil }
        return (bytes[s + 5] - 0x30, bytes[s + 7] - 0x30)
    }

    /// Checks that the target has the form its method requires (RFC 9112 §3.2).
    static func validateTargetForm(
        _ bytes: UnsafeRawBufferPointer,
        _ target: Range<Int>,
        method: HTTPMethod
    ) throws(HTTPParseError) {
        // RFC 9112 §3.2.3: authority-form is used only for, and always by, CONNECT.
        if method == .connect {
            guard FieldValueSyntax.isAuthorityForm(bytes, target) else { throw .invalidTarget }
            return
        }
        let first = bytes[target.lowerBound]
        // RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ].
        if first == ASCII.slash { return }
        // RFC 9112 §3.2.4: asterisk-form is used only for a server-wide OPTIONS.
        if first == ASCII.asterisk && target.count == 1 {
            guard method == .options else { throw .invalidTarget }
            return
        }
        // RFC 9112 §3.2.2: absolute-form, which servers MUST accept. Only http
        // and https make sense for this proxy.
        guard let authorityStart = schemeEnd(bytes, target) else { throw .invalidTarget }
        var p = authorityStart
        while p < target.upperBound {
            let b = bytes[p]
            if b == ASCII.slash || b == 0x3F || b == 0x23 { break }  // "/" "?" "#"
            p += 1
        }
        // RFC 9110 §4.2.1: an http URI with an empty host MUST be rejected;
        // RFC 9110 §4.2.4: userinfo ('@') SHOULD be treated as an error.
        guard FieldValueSyntax.isValidAuthority(bytes, authorityStart..<p) else { throw .invalidTarget }
    }

    /// The offset after "http://" or "https://" (scheme case-insensitive,
    /// RFC 3986 §3.1), or nil.
    private static func schemeEnd(_ bytes: UnsafeRawBufferPointer, _ target: Range<Int>) -> Int? {
        let s = target.lowerBound
        if target.count > 7 && NameMatch.equals(bytes, s..<(s + 7), "http://") { return s + 7 }
        if target.count > 8 && NameMatch.equals(bytes, s..<(s + 8), "https://") { return s + 8 }
        return nil
    }
}
