/// First pass over a head: finds where it ends and enforces line framing and
/// size limits, remembering its position so that a head arriving in many small
/// pieces is scanned only once in total.
///
/// The scanner checks only what can be decided byte by byte from the left:
/// line terminators, folded lines, the length of the request-target and the
/// number and size of lines. Everything it rejects is rejected at the same byte
/// whether the input arrives whole or split, so the outcome of a parse never
/// depends on how the peer's bytes were segmented. The second pass
/// (`FieldLineParser` and the start-line parsers) runs only on a complete head.
struct HeadScanner: Sendable {
    enum Phase: UInt8, Sendable {
        case leadingEmptyLines, leadingCR
        case startLine, startLineCR
        case lineStart, fieldLine, fieldCR, finalCR
        case done
    }

    private(set) var phase: Phase
    /// The next byte to examine.
    private(set) var offset = 0
    private var spaces = 0
    private var targetStart = 0
    private var fieldLines = 0
    private let tracksTarget: Bool

    /// - Parameter forRequest: requests may be preceded by empty lines
    ///   (RFC 9112 §2.2) and have a request-target whose length is limited.
    init(forRequest: Bool) {
        phase = forRequest ? .leadingEmptyLines : .startLine
        tracksTarget = forRequest
    }

    /// Continues scanning `bytes`, which must begin with the bytes seen by the
    /// previous calls. Returns the head length once the empty line ending the
    /// head has been seen, or nil when more bytes are needed.
    mutating func scan(_ bytes: UnsafeRawBufferPointer, limits: HTTPParserLimits) throws(HTTPParseError) -> Int? {
        if phase == .done { return offset }
        // Nothing past the size limit is ever looked at: if the head has not
        // ended within it, it is too large no matter what follows.
        let end = min(bytes.count, limits.maxHeaderBytes)
        // The state lives in locals while scanning so the loop works on
        // registers, and is stored back once when the bytes run out.
        var phase = self.phase
        var spaces = self.spaces
        var targetStart = self.targetStart
        var fieldLines = self.fieldLines
        let maxTarget = limits.maxTargetLength
        let maxFields = limits.maxHeaders
        var i = offset
        scanning: while i < end {
            let b = bytes[i]
            switch phase {
            case .leadingEmptyLines:
                // RFC 9112 §2.2: a server SHOULD ignore at least one empty line
                // (CRLF) received before the request-line. A bare LF is not an
                // empty line in the strict grammar.
                if b == ASCII.cr {
                    phase = .leadingCR
                } else if b == ASCII.lf {
                    throw .bareLF
                } else {
                    phase = .startLine
                    continue scanning
                }
            case .leadingCR:
                guard b == ASCII.lf else { throw .bareCR }
                phase = .leadingEmptyLines
            case .startLine:
                if !tracksTarget {
                    // A status line needs only its end found here (its syntax is checked by the
                    // status-line parser): the next CR or LF, eight bytes at a time.
                    let j = Self.lineBreak(bytes, from: i, end: end)
                    guard j < end else {
                        i = end
                        break scanning
                    }
                    // RFC 9112 §2.2: a bare LF line terminator is not accepted.
                    if bytes[j] == ASCII.lf { throw .bareLF }
                    phase = .startLineCR
                    i = j &+ 1
                    continue scanning
                }
                if b > ASCII.sp {
                    // Method, target and version bytes: skip ahead to the next
                    // SP, CR, LF or other control byte, eight bytes at a time.
                    var j = i &+ 1
                    while j &+ 8 <= end && !SWAR.hasByteLess(than: 0x21, in: SWAR.load(bytes, j)) { j &+= 8 }
                    while j < end && bytes[j] > ASCII.sp { j &+= 1 }
                    // RFC 9112 §3: a server receiving a request-target longer
                    // than it wishes to parse MUST respond with 414. Checked as
                    // the target grows, so an unterminated target is refused too.
                    if tracksTarget && spaces == 1 && j &- 1 &- targetStart >= maxTarget { throw .targetTooLong }
                    i = j
                    continue scanning
                }
                if b == ASCII.cr {
                    phase = .startLineCR
                } else if b == ASCII.lf {
                    // RFC 9112 §2.2: a bare LF line terminator is not accepted.
                    throw .bareLF
                } else if tracksTarget {
                    if b == ASCII.sp {
                        spaces &+= 1
                        if spaces == 1 { targetStart = i &+ 1 }
                    } else if spaces == 1 && i &- targetStart >= maxTarget {
                        throw .targetTooLong
                    }
                }
            case .startLineCR:
                // RFC 9112 §2.2: a CR not followed by LF is a bare CR, which
                // recipients MUST reject or replace; this parser rejects.
                guard b == ASCII.lf else { throw .bareCR }
                phase = .lineStart
            case .lineStart, .fieldLine, .fieldCR, .finalCR:
                // The field section is scanned line by line in straight-line
                // code: dispatching on the phase for every line would cost an
                // unpredictable indirect branch each time. Phases are only
                // used to resume a line that the previous input cut short.
                if phase == .fieldLine {
                    let j = Self.lineBreak(bytes, from: i, end: end)
                    guard j < end else {
                        i = end
                        break scanning
                    }
                    if bytes[j] == ASCII.lf { throw .bareLF }
                    phase = .fieldCR
                    i = j &+ 1
                    continue scanning
                }
                if phase == .fieldCR {
                    guard b == ASCII.lf else { throw .bareCR }
                    fieldLines &+= 1
                    if fieldLines > maxFields { throw .tooManyFields }
                    phase = .lineStart
                    i &+= 1
                    continue scanning
                }
                if phase == .finalCR {
                    guard b == ASCII.lf else { throw .bareCR }
                    self.phase = .done
                    offset = i &+ 1
                    return offset
                }
                while i < end {
                    let first = bytes[i]
                    if first == ASCII.cr {
                        // The empty line ending the head.
                        guard i &+ 1 < end else {
                            phase = .finalCR
                            i &+= 1
                            break scanning
                        }
                        // RFC 9112 §2.2: a CR not followed by LF is a bare CR.
                        guard bytes[i &+ 1] == ASCII.lf else { throw .bareCR }
                        self.phase = .done
                        offset = i &+ 2
                        return offset
                    }
                    // RFC 9112 §2.2: a bare LF line terminator is not accepted.
                    if first == ASCII.lf { throw .bareLF }
                    // RFC 9112 §5.2: obs-fold is rejected with 400. A first field
                    // line starting with whitespace (RFC 9112 §2.2) is rejected
                    // the same way, since it could be read as a continuation.
                    if ByteClass.isWhitespace(first) { throw .obsFold }
                    let j = Self.lineBreak(bytes, from: i &+ 1, end: end)
                    guard j < end else {
                        phase = .fieldLine
                        i = end
                        break scanning
                    }
                    if bytes[j] == ASCII.lf { throw .bareLF }
                    guard j &+ 1 < end else {
                        phase = .fieldCR
                        i = j &+ 1
                        break scanning
                    }
                    guard bytes[j &+ 1] == ASCII.lf else { throw .bareCR }
                    fieldLines &+= 1
                    if fieldLines > maxFields { throw .tooManyFields }
                    i = j &+ 2
                }
                phase = .lineStart
                break scanning
            case .done:
                break scanning
            }
            i &+= 1
        }
        self.phase = phase
        self.spaces = spaces
        self.targetStart = targetStart
        self.fieldLines = fieldLines
        offset = i
        if bytes.count >= limits.maxHeaderBytes { throw .headTooLarge }
        return nil
    }

    /// The offset of the first CR or LF at or after `start`, or `end`. Bytes
    /// below 0x0E are found eight at a time; other such bytes (HTAB, controls)
    /// are stepped over here and judged by the field parser.
    @inline(__always)
    private static func lineBreak(_ bytes: UnsafeRawBufferPointer, from start: Int, end: Int) -> Int {
        var j = start
        while true {
            if j &+ 8 <= end {
                let low = SWAR.bytesLess(than: 0x0E, in: SWAR.load(bytes, j))
                if low == 0 {
                    j &+= 8
                    continue
                }
                j &+= SWAR.firstIndex(low)
            } else {
                while j < end && bytes[j] >= 0x0E { j &+= 1 }
                if j == end { return end }
            }
            let c = bytes[j]
            if c == ASCII.cr || c == ASCII.lf { return j }
            j &+= 1
        }
    }
}
