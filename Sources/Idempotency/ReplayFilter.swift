import HTTP1

/// Chooses which upstream response fields are stored for replay.
public enum ReplayFilter {
    /// Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the
    /// response, so they are never stored: `Connection`, `Keep-Alive`,
    /// `Proxy-Connection` (non-standard but still sent), `TE`, `Trailer`,
    /// `Transfer-Encoding`, `Upgrade`. `Content-Length` is dropped too
    /// because a replay is re-framed from the stored body (RFC 9112 §6).
    static let neverStored: [String] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "content-length",
    ]

    static let droppedByDefault: [String] = ["set-cookie"]

    /// The field a replay adds (SPEC §4): an upstream's own copy is never stored, or a replay
    /// would carry the upstream's value (say `false`) before the proxy's `true`.
    static let addedByReplay = "idempotent-replayed"

    /// `storedFields` for fields already apart from their head (tests, tools): they are laid
    /// out in one buffer first, so both entry points run the same rules.
    public static func headersToStore(responseHeaders: [HeaderPair], keepHeaders: [String]) -> [HeaderPair] {
        var buffer: [UInt8] = []
        var ranges: [(name: Range<Int>, value: Range<Int>)] = []
        for header in responseHeaders {
            let nameStart = buffer.count
            buffer.append(contentsOf: header.name)
            let valueStart = buffer.count
            buffer.append(contentsOf: header.value)
            ranges.append((nameStart..<valueStart, valueStart..<buffer.count))
        }
        return buffer.withUnsafeBytes { source in
            storedFields(count: ranges.count, in: source, keepHeaders: keepHeaders) { ranges[$0] }
        }
    }

    /// The response fields a replay carries, as name/value pairs (tests, tools): sliced out of
    /// the one buffer of a `StoredResponse` built from them, so nothing of `source` is kept.
    /// Hop-by-hop fields are found here by name (`appendStoredFieldLines`).
    public static func storedFields(
        count: Int, in source: UnsafeRawBufferPointer, keepHeaders: [String],
        field: (Int) -> (name: Range<Int>, value: Range<Int>)
    ) -> [HeaderPair] {
        var lines: [UInt8] = []
        appendStoredFieldLines(count: count, in: source, keepHeaders: keepHeaders, field: field, into: &lines)
        return pairs(ofLines: lines)
    }

    /// The same, with the hop-by-hop fields given by `isHopByHop`.
    public static func storedFields(
        count: Int, in source: UnsafeRawBufferPointer, keepHeaders: [String],
        isHopByHop: (Int) -> Bool,
        field: (Int) -> (name: Range<Int>, value: Range<Int>)
    ) -> [HeaderPair] {
        var lines: [UInt8] = []
        appendStoredFieldLines(count: count, in: source, keepHeaders: keepHeaders, isHopByHop: isHopByHop, field: field, into: &lines)
        return pairs(ofLines: lines)
    }

    private static func pairs(ofLines lines: [UInt8]) -> [HeaderPair] {
        lines.withUnsafeBytes { StoredResponse(status: 200, fieldLines: $0, body: UnsafeRawBufferPointer(start: nil, count: 0)).headers }
    }

    /// Appends the field lines a replay carries, `name: value\r\n` each, copied out of `source`
    /// (the response head as received; `field(i)` gives field i's name and value ranges in it).
    /// Hop-by-hop fields are found here by name: those of `neverStored` and those a Connection
    /// field names.
    public static func appendStoredFieldLines(
        count: Int, in source: UnsafeRawBufferPointer, keepHeaders: [String],
        field: (Int) -> (name: Range<Int>, value: Range<Int>), into out: inout [UInt8]
    ) {
        // RFC 9110 §7.6.1: the fields a Connection field names are hop-by-hop too. Only a
        // response with a Connection field pays for the lookup.
        var firstConnection: Int?
        for index in 0..<count where firstConnection == nil {
            let name = UnsafeRawBufferPointer(rebasing: source[field(index).name])
            if name.count == 10 && ASCII.equalsIgnoringCase(name, "connection") { firstConnection = index }
        }
        func namedByConnection(_ name: UnsafeRawBufferPointer, from first: Int) -> Bool {
            for index in first..<count {
                let (optionName, options) = field(index)
                guard optionName.count == 10,
                    ASCII.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: source[optionName]), "connection")
                else { continue }
                // The options are a comma-separated list of tokens (RFC 9110 §7.6.1, §5.6.1).
                var start = options.lowerBound
                while start < options.upperBound {
                    var end = start
                    while end < options.upperBound && source[end] != UInt8(ascii: ",") { end += 1 }
                    let token = IdempotencyKeyParser.trimOWS(UnsafeRawBufferPointer(rebasing: source[start..<end]))
                    if !token.isEmpty && ASCII.equalsIgnoringCase(token, name) { return true }
                    start = end + 1
                }
            }
            return false
        }
        appendStoredFieldLines(count: count, in: source, keepHeaders: keepHeaders, isHopByHop: { index in
            let name = UnsafeRawBufferPointer(rebasing: source[field(index).name])
            if mayBeDropped(name.count) && neverStored.contains(where: { ASCII.equalsIgnoringCase(name, $0) }) { return true }
            if let firstConnection, namedByConnection(name, from: firstConnection) { return true }
            return false
        }, field: field, into: &out)
    }

    /// The same, for a head whose parser already marked its hop-by-hop fields (`isHopByHop`):
    /// the proxy passes the flags it forwarded the response by, so a replay carries what the
    /// original client received, less the fields dropped by default (Set-Cookie unless kept).
    /// It runs once per guarded response, so names are compared in place, never copied into
    /// strings, and the lines go straight into the caller's buffer (the proxy keeps one per
    /// exchange), from which `StoredResponse(status:fieldLines:body:)` copies them once.
    public static func appendStoredFieldLines(
        count: Int, in source: UnsafeRawBufferPointer, keepHeaders: [String],
        isHopByHop: (Int) -> Bool,
        field: (Int) -> (name: Range<Int>, value: Range<Int>), into out: inout [UInt8]
    ) {
        for index in 0..<count where !isHopByHop(index) {
            let (nameRange, valueRange) = field(index)
            let name = UnsafeRawBufferPointer(rebasing: source[nameRange])
            if mayBeDropped(name.count) {
                // The framing fields again by name, whatever the flags say: a stored
                // Content-Length would be replayed next to the one the replay computes (RFC 9112 §6.3).
                if ASCII.equalsIgnoringCase(name, "content-length") || ASCII.equalsIgnoringCase(name, "transfer-encoding") { continue }
                if ASCII.equalsIgnoringCase(name, addedByReplay) { continue }
                if droppedByDefault.contains(where: { ASCII.equalsIgnoringCase(name, $0) })
                    && !keepHeaders.contains(where: { ASCII.equalsIgnoringCase(name, $0) }) { continue }
            }
            // Field-line syntax was validated by the parser: a name has no colon and a value no
            // CR or LF (RFC 9110 §5.1, §5.5), so the stored line reads back exactly.
            HeadWriter.appendField(name: name, value: UnsafeRawBufferPointer(rebasing: source[valueRange]), into: &out)
        }
    }

    /// False for a name whose length no field of `neverStored`, `droppedByDefault` or
    /// `addedByReplay` has (2, 7, 10, 14, 16, 17, 19): most fields are ruled out without
    /// comparing a byte.
    @inline(__always)
    static func mayBeDropped(_ nameLength: Int) -> Bool {
        switch nameLength {
        case 2, 7, 10, 14, 16, 17, 19: return true
        default: return false
        }
    }
}
