/// The outcome of reading every Connection field of a head.
struct ConnectionOptions {
    var close = false
    var keepAlive = false
    /// A Connection field named a field present in the head (now marked hop-by-hop).
    var namedFields = false

    /// Reads the Connection fields (RFC 9110 §7.6.1), records `close` and
    /// `keep-alive`, and marks every field named by a connection option as
    /// hop-by-hop.
    ///
    /// RFC 9110 §7.6.1: a proxy MUST remove the fields a Connection field names
    /// before forwarding. Skipping that lets a client strip an end-to-end field
    /// the proxy relies on, or smuggle one the upstream trusts, past the proxy.
    /// Names are compared case-insensitively like all field names (RFC 9110 §5.1).
    ///
    /// RFC 9110 §5.6.1: recipients MUST accept and ignore empty list elements,
    /// so `close,,` is fine; a non-token element is a malformed field (400).
    static func apply(
        _ bytes: UnsafeRawBufferPointer,
        fields: [FieldRange],
        hopByHop: inout [Bool],
        summary: FieldSummary,
        isRequest: Bool
    ) throws(HTTPParseError) -> ConnectionOptions {
        var options = ConnectionOptions()
        guard summary.connectionCount > 0 else { return options }
        var remaining = summary.connectionCount
        for index in summary.firstConnectionIndex..<fields.count where remaining > 0 {
            let field = fields[index]
            guard FieldKind.classify(bytes, field.name) == .connection else { continue }
            remaining -= 1
            let range = field.value
            // The usual whole value: a single option that names no field to look for.
            if isKeepAlive(bytes, range) {
                options.keepAlive = true
                continue
            }
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
                        let token = s..<e
                        for i in token where !ByteClass.isTchar(bytes[i]) { throw .invalidConnection }
                        // "close" and "keep-alive" are connection options; like any
                        // option they also name a field to remove (RFC 9110 §7.6.1, which
                        // reserves the name Close for that reason). The Keep-Alive field is
                        // hop-by-hop already, so "keep-alive" needs no search.
                        if NameMatch.equals(bytes, token, "close") {
                            options.close = true
                            if markNamed(token, bytes, fields: fields, hopByHop: &hopByHop) { options.namedFields = true }
                        } else if NameMatch.equals(bytes, token, "keep-alive") {
                            options.keepAlive = true
                        } else if !(isRequest && NameMatch.equals(bytes, token, "host")) {
                            // RFC 9112 §3.2: Host is required end to end; a Connection
                            // field naming it must not leave the upstream request without it.
                            // A response's Host (meaningless there) is removed like any other.
                            if markNamed(token, bytes, fields: fields, hopByHop: &hopByHop) { options.namedFields = true }
                        }
                    }
                    if atEnd { break }
                    elementStart = p + 1
                }
                p += 1
            }
        }
        return options
    }

    /// Whether the value is exactly "keep-alive" in any case, compared as two overlapping words.
    @inline(__always)
    private static func isKeepAlive(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        guard range.count == 10 else { return false }
        let start = range.lowerBound
        return NameMatch.lowercasedWord(WordMatch.load(bytes, start, 8)) == 0x696C_612D_7065_656B  // "keep-ali"
            && NameMatch.lowercasedWord(WordMatch.load(bytes, start &+ 2, 8)) == 0x6576_696C_612D_7065  // "ep-alive"
    }

    /// Returns whether a field was marked.
    private static func markNamed(
        _ token: Range<Int>,
        _ bytes: UnsafeRawBufferPointer,
        fields: [FieldRange],
        hopByHop: inout [Bool]
    ) -> Bool {
        var marked = false
        for index in fields.indices where !hopByHop[index] && NameMatch.equals(bytes, fields[index].name, token) {
            hopByHop[index] = true
            marked = true
        }
        return marked
    }
}
