/// The fields whose meaning the parser itself needs: message framing, routing
/// and connection management.
enum FieldKind: UInt8, Sendable {
    case other, contentLength, transferEncoding, host, connection, keepAlive
    case proxyConnection, te, trailer, upgrade, expect

    /// Fields that describe one connection rather than the message and so are
    /// never forwarded (RFC 9110 §7.6.1). Content-Length is included because
    /// the proxy re-frames every message it forwards; Transfer-Encoding is
    /// hop-by-hop by definition (RFC 9112 §6.1).
    var isHopByHop: Bool {
        switch self {
        case .contentLength, .transferEncoding, .connection, .keepAlive,
             .proxyConnection, .te, .trailer, .upgrade:
            return true
        case .other, .host, .expect:
            return false
        }
    }

    /// Classifies a field name by its length first, so that the common case of
    /// an uninteresting name costs one switch and at most one comparison.
    @inline(__always)
    static func classify(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> FieldKind {
        switch name.count {
        case 2: return NameMatch.equals(bytes, name, "te") ? .te : .other
        case 4: return NameMatch.equals(bytes, name, "host") ? .host : .other
        case 6: return NameMatch.equals(bytes, name, "expect") ? .expect : .other
        case 7:
            if NameMatch.equals(bytes, name, "upgrade") { return .upgrade }
            return NameMatch.equals(bytes, name, "trailer") ? .trailer : .other
        case 10:
            if NameMatch.equals(bytes, name, "connection") { return .connection }
            return NameMatch.equals(bytes, name, "keep-alive") ? .keepAlive : .other
        case 14: return NameMatch.equals(bytes, name, "content-length") ? .contentLength : .other
        case 16: return NameMatch.equals(bytes, name, "proxy-connection") ? .proxyConnection : .other
        case 17: return NameMatch.equals(bytes, name, "transfer-encoding") ? .transferEncoding : .other
        default: return .other
        }
    }
}

/// What the field section says about framing and connection handling, gathered
/// in the same pass that splits the lines.
struct FieldSummary {
    var contentLength: UInt64?
    var transferEncodingIndex = -1
    var hostIndex = -1
    var sawConnection = false
    var expectContinue = false
    var upgrade = false
}

/// Splits and validates the field lines of a complete head (RFC 9112 §5).
///
/// Line framing has already been checked by `HeadScanner`: every line ends in
/// CRLF, no CR stands alone and no line starts with whitespace. What remains is
/// the syntax inside each line and the rules about repeated framing fields.
enum FieldLineParser {
    static func parse(
        _ bytes: UnsafeRawBufferPointer,
        from start: Int,
        fields: inout [FieldRange],
        hopByHop: inout [Bool],
        limits: HTTPParserLimits,
        isRequest: Bool
    ) throws(HTTPParseError) -> FieldSummary {
        var summary = FieldSummary()
        var p = start
        while bytes[p] != ASCII.cr {
            let nameStart = p
            while ByteClass.isTchar(bytes[p]) { p &+= 1 }
            let nameEnd = p
            let stop = bytes[p]
            if stop != ASCII.colon {
                // RFC 9112 §5.1: no whitespace is allowed between the field name
                // and colon, and a server MUST reject such a request with 400;
                // accepting it is the "Content-Length : 34" smuggling vector.
                if ByteClass.isWhitespace(stop) { throw .whitespaceBeforeColon }
                // RFC 9112 §5: a field line is field-name ":" OWS field-value OWS.
                if stop == ASCII.cr { throw .missingColon }
                // RFC 9110 §5.1: a field name is a token; anything else (NUL,
                // '@', obs-text, ...) could be read differently downstream.
                throw .invalidFieldName
            }
            // RFC 9110 §5.1: field-name = token, so it is never empty.
            if nameEnd == nameStart { throw .emptyFieldName }
            p &+= 1
            while ByteClass.isWhitespace(bytes[p]) { p &+= 1 }
            let valueStart = p
            p = try scanValue(bytes, from: p)
            var valueEnd = p
            while valueEnd > valueStart && ByteClass.isWhitespace(bytes[valueEnd &- 1]) { valueEnd &-= 1 }
            p &+= 2

            if fields.count >= limits.maxHeaders { throw .tooManyFields }
            let range = FieldRange(name: nameStart..<nameEnd, value: valueStart..<valueEnd)
            let kind = FieldKind.classify(bytes, range.name)
            let index = fields.count
            fields.append(range)
            hopByHop.append(kind.isHopByHop)
            if kind != .other {
                try record(kind, range, index: index, bytes, into: &summary, isRequest: isRequest)
            }
        }
        return summary
    }

    /// Validates a field value up to its CR and returns the CR's offset.
    ///
    /// RFC 9110 §5.5: field values consist of visible characters, SP, HTAB and
    /// obs-text; NUL, CR, LF and other controls MUST be rejected or replaced,
    /// and forwarding them is how header injection reaches the next hop.
    @inline(__always)
    private static func scanValue(_ bytes: UnsafeRawBufferPointer, from start: Int) throws(HTTPParseError) -> Int {
        var p = start
        let count = bytes.count
        // Fast path: eight bytes at a time while all are >= 0x20 and none is DEL.
        while p &+ 8 <= count {
            let w = SWAR.load(bytes, p)
            if SWAR.hasByteLess(than: 0x20, in: w) || SWAR.hasByte(0x7F, in: w) { break }
            p &+= 8
        }
        while true {
            let b = bytes[p]
            if b == ASCII.cr { return p }
            if !ByteClass.isFieldValueByte(b) { throw .invalidFieldValue }
            p &+= 1
        }
    }

    private static func record(
        _ kind: FieldKind,
        _ range: FieldRange,
        index: Int,
        _ bytes: UnsafeRawBufferPointer,
        into summary: inout FieldSummary,
        isRequest: Bool
    ) throws(HTTPParseError) {
        switch kind {
        case .contentLength:
            // RFC 9112 §6.3: repeated Content-Length lines are invalid framing.
            // Even identical repeats are refused: intermediaries disagree on
            // which one wins (the "CL: 0 then CL: 31" smuggling vector).
            if summary.contentLength != nil { throw .duplicateContentLength }
            summary.contentLength = try FieldValueSyntax.contentLength(bytes, range.value)
        case .transferEncoding:
            // RFC 9112 §6.1 allows combining repeated lines, but two lines are a
            // classic TE.TE obfuscation; a well-behaved sender never needs them.
            if summary.transferEncodingIndex >= 0 { throw .duplicateTransferEncoding }
            summary.transferEncodingIndex = index
        case .host:
            guard isRequest else { return }
            // RFC 9112 §3.2: a server MUST respond 400 to a request with more
            // than one Host field line.
            if summary.hostIndex >= 0 { throw .duplicateHost }
            summary.hostIndex = index
        case .connection:
            summary.sawConnection = true
        case .upgrade:
            summary.upgrade = true
        case .expect:
            if NameMatch.equals(bytes, range.value, "100-continue") { summary.expectContinue = true }
        case .keepAlive, .proxyConnection, .te, .trailer, .other:
            break
        }
    }
}
