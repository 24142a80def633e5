/// Position inside one line of a trailer section
/// (`trailer-section = *( field-line CRLF )`, RFC 9112 §7.1.2).
struct TrailerLineState: Sendable {
    enum Phase: UInt8, Sendable {
        case lineStart, name, value, lf, finalLF
    }

    var phase = Phase.lineStart
}

extension BodyDecoder {
    /// Scans one trailer line starting at `lineStart`, resuming where an
    /// earlier call stopped. Returns the offset past its LF and whether it was
    /// the empty line ending the message, or nil when incomplete.
    ///
    /// Trailer fields are validated like header fields and then discarded: the
    /// proxy re-frames bodies and never forwards trailers, but a malformed
    /// trailer still means the sender and the proxy disagree about the message.
    mutating func scanTrailerLine(
        _ bytes: UnsafeRawBufferPointer,
        lineStart: Int
    ) throws(HTTPParseError) -> (end: Int, last: Bool)? {
        if lineStart + lineProgress > bytes.count {
            lineProgress = 0
            trailerLine = TrailerLineState()
        }
        var i = lineStart + lineProgress
        let count = bytes.count
        while i < count {
            let b = bytes[i]
            // The whole trailer section shares the header size limit, checked
            // per byte so that an endless trailer line is refused while it grows.
            if trailerBytes + (i - lineStart) >= limits.maxHeaderBytes { throw .trailersTooLarge }
            switch trailerLine.phase {
            case .lineStart:
                if b == ASCII.cr {
                    trailerLine.phase = .finalLF
                } else if b == ASCII.lf {
                    throw .bareLF
                } else if ByteClass.isWhitespace(b) {
                    // RFC 9112 §5.2: obs-fold is rejected here as in the head.
                    throw .obsFold
                } else if b == ASCII.colon {
                    throw .emptyFieldName
                } else if ByteClass.isTchar(b) {
                    trailerLine.phase = .name
                } else {
                    throw .invalidFieldName
                }
            case .name:
                if b == ASCII.colon {
                    try checkTrailerName(bytes, lineStart..<i)
                    trailerLine.phase = .value
                } else if ByteClass.isWhitespace(b) {
                    // RFC 9112 §5.1: no whitespace between field name and colon.
                    throw .whitespaceBeforeColon
                } else if b == ASCII.cr {
                    throw .missingColon
                } else if b == ASCII.lf {
                    throw .bareLF
                } else if !ByteClass.isTchar(b) {
                    throw .invalidFieldName
                }
            case .value:
                if b == ASCII.cr {
                    trailerLine.phase = .lf
                } else if b == ASCII.lf {
                    throw .bareLF
                } else if !ByteClass.isFieldValueByte(b) {
                    // RFC 9110 §5.5: no NUL or other controls in field values.
                    throw .invalidFieldValue
                }
            case .lf, .finalLF:
                guard b == ASCII.lf else { throw .bareCR }
                let length = i + 1 - lineStart
                trailerBytes += length
                lineProgress = 0
                if trailerLine.phase == .finalLF { return (i + 1, true) }
                trailerFields += 1
                if trailerFields > limits.maxHeaders { throw .trailersTooLarge }
                return (i + 1, false)
            }
            i += 1
        }
        lineProgress = i - lineStart
        return nil
    }

    /// RFC 9110 §6.5.1: fields needed to frame or route a message cannot be
    /// sent as trailers. A framing field here is a smuggling attempt aimed at a
    /// hop that merges trailers into the header section, so it is refused.
    private func checkTrailerName(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) throws(HTTPParseError) {
        switch FieldKind.classify(bytes, name) {
        case .contentLength, .transferEncoding, .host:
            throw .forbiddenTrailerField
        default:
            return
        }
    }
}
