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
        // Nothing past the size limit is ever looked at: if the head has not
        // ended within it, it is too large no matter what follows.
        let end = min(bytes.count, limits.maxHeaderBytes)
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
                if b == ASCII.cr {
                    phase = .startLineCR
                } else if b == ASCII.lf {
                    // RFC 9112 §2.2: a bare LF line terminator is not accepted.
                    throw .bareLF
                } else if tracksTarget {
                    if b == ASCII.sp {
                        spaces += 1
                        if spaces == 1 { targetStart = i + 1 }
                    } else if spaces == 1 && i - targetStart >= limits.maxTargetLength {
                        // RFC 9112 §3: a server receiving a request-target longer
                        // than it wishes to parse MUST respond with 414. Checked
                        // per byte so that an unterminated target is refused too.
                        throw .targetTooLong
                    }
                }
            case .startLineCR:
                // RFC 9112 §2.2: a CR not followed by LF is a bare CR, which
                // recipients MUST reject or replace; this parser rejects.
                guard b == ASCII.lf else { throw .bareCR }
                phase = .lineStart
            case .lineStart:
                if b == ASCII.cr {
                    phase = .finalCR
                } else if b == ASCII.lf {
                    throw .bareLF
                } else if ByteClass.isWhitespace(b) {
                    // RFC 9112 §5.2: obs-fold is rejected with 400. A first field
                    // line starting with whitespace (RFC 9112 §2.2) is rejected
                    // the same way, since it could be read as a continuation.
                    throw .obsFold
                } else {
                    phase = .fieldLine
                }
            case .fieldLine:
                // Skip eight bytes at a time while none of them is a CR or LF
                // (both are below 0x0E).
                var j = i
                while j &+ 8 <= end && !SWAR.hasByteLess(than: 0x0E, in: SWAR.load(bytes, j)) { j &+= 8 }
                while j < end {
                    let c = bytes[j]
                    if c == ASCII.cr || c == ASCII.lf { break }
                    j &+= 1
                }
                i = j
                guard j < end else { break scanning }
                if bytes[j] == ASCII.lf { throw .bareLF }
                phase = .fieldCR
            case .fieldCR:
                guard b == ASCII.lf else { throw .bareCR }
                fieldLines += 1
                if fieldLines > limits.maxHeaders { throw .tooManyFields }
                phase = .lineStart
            case .finalCR:
                guard b == ASCII.lf else { throw .bareCR }
                phase = .done
                offset = i + 1
                return i + 1
            case .done:
                return offset
            }
            i &+= 1
        }
        offset = i
        if phase == .done { return offset }
        if bytes.count >= limits.maxHeaderBytes { throw .headTooLarge }
        return nil
    }
}
