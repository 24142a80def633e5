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

    /// Classifies a field name by its length first, then by whole-word
    /// compares against the lowercase names (little-endian ASCII constants), so
    /// an uninteresting name costs one switch and at most one comparison.
    @inline(__always)
    static func classify(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> FieldKind {
        let s = name.lowerBound
        switch name.count {
        case 2:
            return WordMatch.folded(bytes, s, 2) == 0x6574 ? .te : .other
        case 4:
            return WordMatch.folded(bytes, s, 4) == 0x7473_6F68 ? .host : .other
        case 6:
            return WordMatch.folded(bytes, s, 6) == 0x7463_6570_7865 ? .expect : .other
        case 7:
            let w = WordMatch.folded(bytes, s, 7)
            if w == 0x0065_6461_7267_7075 { return .upgrade }
            return w == 0x0072_656C_6961_7274 ? .trailer : .other
        case 10:
            let w0 = WordMatch.folded(bytes, s, 8), w1 = WordMatch.folded(bytes, s &+ 2, 8)
            if w0 == 0x6974_6365_6E6E_6F63 && w1 == 0x6E6F_6974_6365_6E6E { return .connection }
            if w0 == 0x696C_612D_7065_656B && w1 == 0x6576_696C_612D_7065 { return .keepAlive }
            return .other
        case 14:
            let w0 = WordMatch.folded(bytes, s, 8), w1 = WordMatch.folded(bytes, s &+ 6, 8)
            return w0 == 0x2D74_6E65_746E_6F63 && w1 == 0x6874_676E_656C_2D74 ? .contentLength : .other
        case 16:
            let w0 = WordMatch.folded(bytes, s, 8), w1 = WordMatch.folded(bytes, s &+ 8, 8)
            return w0 == 0x6F63_2D79_786F_7270 && w1 == 0x6E6F_6974_6365_6E6E ? .proxyConnection : .other
        case 17:
            let w0 = WordMatch.folded(bytes, s, 8), w1 = WordMatch.folded(bytes, s &+ 8, 8)
            let w2 = WordMatch.folded(bytes, s &+ 9, 8)
            return w0 == 0x7265_6673_6E61_7274 && w1 == 0x6E69_646F_636E_652D && w2 == 0x676E_6964_6F63_6E65
                ? .transferEncoding : .other
        default:
            return .other
        }
    }
}

/// What the field section says about framing and connection handling, gathered
/// in the same pass that splits the lines.
struct FieldSummary {
    var contentLength: UInt64?
    var transferEncodingIndex = -1
    var hostIndex = -1
    /// The first Connection field and how many there are, so that reading
    /// them does not walk the whole field list again.
    var firstConnectionIndex = -1
    var connectionCount = 0
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
            // Letters, digits and '-' are taken eight at a time; the byte loop judges the rest
            // (and the colon) against the whole tchar set.
            while p &+ 8 <= bytes.count && SWAR.allAlphanumericOrDash(SWAR.load(bytes, p)) { p &+= 8 }
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
            if kind == .other && isUnderscoreFramingAlias(bytes, range.name) { throw .underscoreFramingAlias }
            let index = fields.count
            fields.append(range)
            hopByHop.append(kind.isHopByHop)
            if kind != .other {
                try record(kind, range, index: index, bytes, into: &summary, isRequest: isRequest)
            }
        }
        return summary
    }

    /// Whether the name is Content-Length or Transfer-Encoding spelled with
    /// '_' in place of '-'. Such a name is a valid token and means nothing to
    /// this parser, but CGI-style backends map '_' and '-' to the same variable
    /// and would frame the body by it (Http11Probe SMUG-TRANSFER_ENCODING), so
    /// forwarding it next to the proxy's own framing field invites a desync.
    @inline(__always)
    private static func isUnderscoreFramingAlias(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        let count = name.count
        guard count == 14 || count == 17 else { return false }
        var sawUnderscore = false
        var folded: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &folded) { word in
            for i in 0..<count {
                var b = ByteClass.lowercased(bytes[name.lowerBound &+ i])
                if b == 0x5F {
                    sawUnderscore = true
                    b = 0x2D
                }
                word[i] = b
            }
        }
        guard sawUnderscore else { return false }
        return withUnsafeBytes(of: &folded) { word in
            FieldKind.classify(word, 0..<count) != .other
        }
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
        while true {
            // Jump eight bytes at a time to the next byte that is not plain
            // field content: a control byte (CR included) or DEL.
            if p &+ 8 <= count {
                let w = SWAR.load(bytes, p)
                let special = SWAR.bytesLess(than: 0x20, in: w) | SWAR.bytesEqual(to: 0x7F, in: w)
                if special == 0 {
                    p &+= 8
                    continue
                }
                p &+= SWAR.firstIndex(special)
            }
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
            if summary.connectionCount == 0 { summary.firstConnectionIndex = index }
            summary.connectionCount += 1
        case .upgrade:
            summary.upgrade = true
        case .expect:
            if NameMatch.equals(bytes, range.value, "100-continue") { summary.expectContinue = true }
        case .keepAlive, .proxyConnection, .te, .trailer, .other:
            break
        }
    }
}
