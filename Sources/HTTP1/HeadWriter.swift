/// Serializes heads for forwarding and generated responses, appending to a
/// buffer the caller reuses.
///
/// Forwarded heads are always re-framed: Content-Length and Transfer-Encoding
/// from the source are never copied, and the framing the caller chose is
/// written instead. Copying them would forward whatever ambiguity the sender
/// put there; writing them fresh means the next hop sees exactly one, canonical
/// framing field (RFC 9112 §6.3: an intermediary MUST remove a received
/// Content-Length before forwarding a message that also has Transfer-Encoding).
///
/// `extra` names and values are written as given; they must already be valid
/// field syntax (they come from configuration or from heads parsed strictly).
public enum HeadWriter {
    /// Writes "METHOD TARGET HTTP/1.1\r\n", every field of `head` whose
    /// hopByHop flag is false and whose name is not in `dropping` (lowercase
    /// names), then `extra`, then the framing field, then the final CRLF.
    public static func writeRequestHead(
        _ head: RequestHead,
        source: UnsafeRawBufferPointer,
        extra: [(name: String, value: String)],
        dropping: [String],
        framing: BodyFraming,
        targetPrefix: [UInt8] = [],
        into out: inout [UInt8]
    ) {
        var head = head
        writeRequestStart(&head, source: source, dropping: dropping, targetPrefix: targetPrefix, into: &out)
        for field in extra { out.appendField(field.name, field.value) }
        finishHead(framing: framing, into: &out)
    }

    /// The first part of `writeRequestHead`: the request line and the kept fields. The caller
    /// appends its own field lines (already formatted bytes, so a proxy adds its forwarding
    /// fields without building strings), then calls `finishHead`. `head` is only read: it is
    /// `inout` so that a head stored in an object is read in place, where passing it by value
    /// would copy it (a retain and a release of each of its arrays, on every request).
    public static func writeRequestStart(
        _ head: inout RequestHead,
        source: UnsafeRawBufferPointer,
        dropping: [String],
        targetPrefix: [UInt8],
        into out: inout [UInt8]
    ) {
        let origin = originForm(of: head.target, in: source)
        // The usual case, an origin-form target with no upstream path to prepend: the method, its
        // one SP and the target are copied as one run, exactly as received.
        if targetPrefix.isEmpty, origin == head.target, !origin.isEmpty, source[origin.lowerBound] == UInt8(ascii: "/"),
           head.target.lowerBound == head.methodRange.upperBound &+ 1 {
            out.appendBytes(source, head.methodRange.lowerBound..<head.target.upperBound)
            out.appendLiteral(" HTTP/1.1\r\n")
            writeFields(head.fields, head.hopByHop, source: source, dropping: dropping, into: &out)
            return
        }
        out.appendBytes(source, head.methodRange)
        out.append(ASCII.sp)
        let asterisk = origin.count == 1 && source[origin.lowerBound] == UInt8(ascii: "*")
        // The upstream URL's path, if any, is prepended (e.g. "/api" + "/v1/x").
        if !asterisk { out.append(contentsOf: targetPrefix) }
        if origin.isEmpty || source[origin.lowerBound] == UInt8(ascii: "?") { out.append(UInt8(ascii: "/")) }
        out.appendBytes(source, origin)
        // The proxy speaks HTTP/1.1 to the upstream whatever the client used
        // (RFC 9110 §2.5: intermediaries MUST send their own HTTP-version).
        out.appendLiteral(" HTTP/1.1\r\n")
        writeFields(head.fields, head.hopByHop, source: source, dropping: dropping, into: &out)
    }

    /// Ends a head begun with `writeRequestStart`: the framing field, then the empty line.
    public static func finishHead(framing: BodyFraming, into out: inout [UInt8]) {
        out.appendFraming(framing)
        out.appendCRLF()
    }

    /// Appends "name: value\r\n" with the value taken from `source` as received (a field
    /// value the parser already validated).
    public static func appendField(_ name: StaticString, value: Range<Int>, in source: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.appendLiteral(name)
        out.append(ASCII.colon)
        out.append(ASCII.sp)
        out.appendBytes(source, value)
        out.appendCRLF()
    }

    /// The origin-form part of a target: an absolute-form target ("http://a/b?c") is sent to
    /// the upstream as "/b?c" (a path-less "http://a?q" yields "?q", to which the writer
    /// prepends "/") (RFC 9112 §3.2.2: a server must accept absolute-form, but origin
    /// servers are addressed in origin-form). "*" and origin-form pass unchanged.
    public static func originForm(of target: Range<Int>, in source: UnsafeRawBufferPointer) -> Range<Int> {
        guard target.count > 0, source[target.lowerBound] != UInt8(ascii: "/"), source[target.lowerBound] != UInt8(ascii: "*") else {
            return target
        }
        // Skip "scheme://authority".
        var index = target.lowerBound
        var slashes = 0
        while index < target.upperBound {
            let byte = source[index]
            if byte == UInt8(ascii: "/") {
                slashes += 1
                if slashes == 3 { return index..<target.upperBound }
            } else if byte == UInt8(ascii: "?") && slashes == 2 {
                return index..<target.upperBound
            }
            index += 1
        }
        // No path: the caller writes "/" in front of what is returned (empty or a query).
        return target.upperBound..<target.upperBound
    }

    /// The authority of an absolute-form target ("http://a.example:8080/x" → "a.example:8080"),
    /// or nil for origin-form and asterisk-form. RFC 9112 §3.2.2: a proxy receiving an
    /// absolute-form target replaces Host with this authority.
    public static func absoluteFormAuthority(of target: Range<Int>, in source: UnsafeRawBufferPointer) -> Range<Int>? {
        guard target.count > 0, source[target.lowerBound] != UInt8(ascii: "/"), source[target.lowerBound] != UInt8(ascii: "*") else {
            return nil
        }
        var index = target.lowerBound
        while index + 2 < target.upperBound && !(source[index] == UInt8(ascii: ":") && source[index + 1] == UInt8(ascii: "/") && source[index + 2] == UInt8(ascii: "/")) {
            index += 1
        }
        let start = index + 3
        guard start <= target.upperBound else { return nil }
        var end = start
        while end < target.upperBound && source[end] != UInt8(ascii: "/") && source[end] != UInt8(ascii: "?") { end += 1 }
        return start..<end
    }

    /// Writes "HTTP/1.1 STATUS REASON\r\n", the non-hop-by-hop fields, `extra`,
    /// the framing field (none for `.none` and `.untilClose`),
    /// "Connection: close\r\n" when `close` is true, then the final CRLF. `head` is only read
    /// (`inout` for the reason given at `writeRequestStart`).
    public static func writeResponseHead(
        _ head: inout ResponseHead,
        source: UnsafeRawBufferPointer,
        extra: [(name: String, value: String)],
        framing: BodyFraming,
        close: Bool,
        into out: inout [UInt8]
    ) {
        if head.versionMinor == 1 && !head.reason.isEmpty && head.reason.lowerBound == 13 {
            // An HTTP/1.1 status line with a reason is what would be written: "HTTP/1.1", the
            // validated code and reason, CRLF. It is copied as one run.
            out.appendBytes(source, 0..<head.reason.upperBound &+ 2)
        } else {
            out.appendLiteral("HTTP/1.1 ")
            out.appendDecimal(UInt64(clamping: head.status))
            out.append(ASCII.sp)
            if head.reason.isEmpty {
                out.appendString(StatusReason.phrase(for: head.status))
            } else {
                out.appendBytes(source, head.reason)
            }
            out.appendCRLF()
        }
        writeFields(head.fields, head.hopByHop, source: source, dropping: [], into: &out)
        for field in extra { out.appendField(field.name, field.value) }
        out.appendFraming(framing)
        if close { out.appendLiteral("Connection: close\r\n") }
        out.appendCRLF()
    }

    /// Writes a complete response from strings, for generated errors and
    /// replays. Content-Length is computed from `body` and must not be among
    /// `fields`. 1xx, 204 and 304 responses get neither Content-Length nor body,
    /// since they cannot have content (RFC 9110 §6.4.1, §8.6).
    public static func writeResponse(
        status: Int,
        reason: String?,
        fields: [(name: String, value: String)],
        body: UnsafeRawBufferPointer,
        close: Bool,
        into out: inout [UInt8]
    ) {
        writeResponse(status: status, reason: reason, extra: fields, body: body, close: close, into: &out) { _ in }
    }

    /// A complete response whose first field lines come from `writeFields` (a stored
    /// response's lines, written with `appendField(name:value:into:)` as the exact bytes
    /// received), followed by `extra`; otherwise as above.
    public static func writeResponse(
        status: Int,
        reason: String? = nil,
        extra: [(name: String, value: String)],
        body: UnsafeRawBufferPointer,
        close: Bool,
        into out: inout [UInt8],
        writeFields: (inout [UInt8]) -> Void
    ) {
        let bodyAllowed = responseHasContent(status: status)
        out.appendLiteral("HTTP/1.1 ")
        out.appendDecimal(UInt64(clamping: status))
        out.append(ASCII.sp)
        out.appendString(reason ?? StatusReason.phrase(for: status))
        out.appendCRLF()
        writeFields(&out)
        for field in extra { out.appendField(field.name, field.value) }
        if bodyAllowed { out.appendFraming(.contentLength(UInt64(body.count))) }
        if close { out.appendLiteral("Connection: close\r\n") }
        out.appendCRLF()
        if bodyAllowed { out.appendBytes(body) }
    }

    /// False for the statuses whose responses cannot have content: 1xx, 204 and 304
    /// (RFC 9110 §6.4.1).
    public static func responseHasContent(status: Int) -> Bool {
        status >= 200 && status != 204 && status != 304
    }

    /// One field line, `name: value\r\n`, from bytes kept as received (obs-text included, RFC
    /// 9110 §5.5). Every stored field line is written here, so reading one back
    /// (`StoredResponse`) can rely on the single space after the colon.
    public static func appendField(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.appendBytes(name)
        out.append(ASCII.colon)
        out.append(ASCII.sp)
        out.appendBytes(value)
        out.appendCRLF()
    }

    /// The same for bytes held in arrays.
    public static func appendField(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>, into out: inout [UInt8]) {
        name.withUnsafeBytes { name in value.withUnsafeBytes { appendField(name: name, value: $0, into: &out) } }
    }

    /// Copies the kept field lines. Consecutive kept lines are copied as one
    /// run of source bytes, exactly as received (field-line syntax was already
    /// validated, and OWS around values is allowed on the wire), so a typical
    /// head is forwarded with a few memcpy calls instead of one per field.
    private static func writeFields(
        _ fields: [FieldRange],
        _ hopByHop: [Bool],
        source: UnsafeRawBufferPointer,
        dropping: [String],
        into out: inout [UInt8]
    ) {
        var runStart = -1
        var runEnd = -1
        for index in fields.indices {
            let field = fields[index]
            if hopByHop[index] || isFraming(source, field.name) || isDropped(source, field.name, dropping) { continue }
            // A run only grows over lines that are adjacent in the source, so a
            // line the caller removed from `fields` is never copied by accident.
            if field.name.lowerBound != runEnd {
                if runStart >= 0 { out.appendBytes(source, runStart..<runEnd) }
                runStart = field.name.lowerBound
            }
            runEnd = lineEnd(source, after: field.value.upperBound)
        }
        if runStart >= 0 { out.appendBytes(source, runStart..<runEnd) }
    }

    /// The offset just past the CRLF ending the field line whose value ends at
    /// `valueEnd`; only trailing OWS can lie between the two.
    @inline(__always)
    private static func lineEnd(_ source: UnsafeRawBufferPointer, after valueEnd: Int) -> Int {
        var p = valueEnd
        while source[p] != ASCII.cr { p &+= 1 }
        return p &+ 2
    }

    /// Framing fields are hop-by-hop already; checking again keeps the
    /// re-framing guarantee independent of how the flags were set.
    @inline(__always)
    private static func isFraming(_ source: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch FieldKind.classify(source, name) {
        case .contentLength, .transferEncoding: return true
        default: return false
        }
    }

    @inline(__always)
    private static func isDropped(_ source: UnsafeRawBufferPointer, _ name: Range<Int>, _ dropping: [String]) -> Bool {
        for candidate in dropping where NameMatch.equals(source, name, candidate) { return true }
        return false
    }
}
