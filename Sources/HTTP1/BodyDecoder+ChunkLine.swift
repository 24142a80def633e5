/// Position inside one chunk-size line:
/// `chunk-size [ chunk-ext ] CRLF` with
/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`
/// (RFC 9112 §7.1, §7.1.1).
struct ChunkLineState: Sendable {
    enum Phase: UInt8, Sendable {
        case size
        case spaceBeforeSemicolon
        case nameStart
        case name
        case spaceAfterName
        case valueStart
        case token
        case quoted
        case quotedEscape
        case afterQuoted
        case lf
    }

    var phase = Phase.size
    var digits = 0
    var size: UInt64 = 0
}

extension BodyDecoder {
    /// The most hex digits a chunk size may have: 16 fill a UInt64 exactly, so
    /// a larger size can never be represented and is refused before overflow.
    static let maxChunkSizeDigits = 16

    /// Scans the chunk-size line starting at `lineStart`, resuming after the
    /// part examined by an earlier call. Returns the offset just past its LF, or
    /// nil when the line is still incomplete.
    ///
    /// Every check runs byte by byte, so a line that can never become valid is
    /// refused as soon as its first bad byte arrives, and the digit and
    /// extension limits hold even while the line is incomplete.
    mutating func scanChunkLine(_ bytes: UnsafeRawBufferPointer, lineStart: Int) throws(HTTPParseError) -> Int? {
        if lineStart + lineProgress > bytes.count {
            // The caller did not re-send the line as promised; start it over.
            lineProgress = 0
            chunkLine = ChunkLineState()
        }
        var i = lineStart + lineProgress
        let count = bytes.count
        let maxExtension = limits.maxChunkExtensionBytes
        while i < count {
            let b = bytes[i]
            if chunkLine.phase == .lf {
                // RFC 9112 §2.2 / §7.1: the line ends in CRLF; a CR followed by
                // anything else (`2\r\r;a`) is a bare CR.
                guard b == ASCII.lf else { throw .bareCR }
                lineProgress = 0
                return i + 1
            }
            if b == ASCII.lf { throw .bareLF }
            if chunkLine.phase == .size, let digit = ByteClass.hexValue(b) {
                chunkLine.digits += 1
                // RFC 9112 §7.1: recipients MUST anticipate large sizes and
                // prevent integer overflow.
                if chunkLine.digits > Self.maxChunkSizeDigits { throw .chunkSizeTooLong }
                chunkLine.size = chunkLine.size << 4 | UInt64(digit)
                i += 1
                continue
            }
            // Everything after the digits and before the CR is extension bytes;
            // RFC 9112 §7.1.1 asks servers to bound them.
            if b != ASCII.cr && i - lineStart - chunkLine.digits >= maxExtension {
                throw .chunkExtensionTooLong
            }
            try advanceExtension(b)
            i += 1
        }
        lineProgress = i - lineStart
        return nil
    }

    /// One byte of the chunk-size line after the digits.
    private mutating func advanceExtension(_ b: UInt8) throws(HTTPParseError) {
        let isSpace = ByteClass.isWhitespace(b)
        switch chunkLine.phase {
        case .size:
            // RFC 9112 §7.1: chunk-size = 1*HEXDIG. An empty size, a sign, "0x",
            // an underscore or a leading space is not a size, and reading the
            // longest valid prefix (`1these-bytes`) is the smuggling bug.
            guard chunkLine.digits > 0 else { throw .invalidChunkSize }
            if b == ASCII.cr {
                chunkLine.phase = .lf
            } else if b == ASCII.semicolon {
                chunkLine.phase = .nameStart
            } else if isSpace {
                chunkLine.phase = .spaceBeforeSemicolon
            } else {
                throw .invalidChunkSize
            }
        case .spaceBeforeSemicolon:
            // BWS is only allowed before a ";", never before the CRLF.
            if b == ASCII.semicolon {
                chunkLine.phase = .nameStart
            } else if !isSpace {
                throw .invalidChunkExtension
            }
        case .nameStart:
            if ByteClass.isTchar(b) {
                chunkLine.phase = .name
            } else if !isSpace {
                throw .invalidChunkExtension
            }
        case .name:
            if b == ASCII.cr {
                chunkLine.phase = .lf
            } else if b == ASCII.semicolon {
                chunkLine.phase = .nameStart
            } else if b == ASCII.equals {
                chunkLine.phase = .valueStart
            } else if isSpace {
                chunkLine.phase = .spaceAfterName
            } else if !ByteClass.isTchar(b) {
                throw .invalidChunkExtension
            }
        case .spaceAfterName:
            if b == ASCII.equals {
                chunkLine.phase = .valueStart
            } else if b == ASCII.semicolon {
                chunkLine.phase = .nameStart
            } else if !isSpace {
                throw .invalidChunkExtension
            }
        case .valueStart:
            // chunk-ext-val = token / quoted-string
            if b == ASCII.dquote {
                chunkLine.phase = .quoted
            } else if ByteClass.isTchar(b) {
                chunkLine.phase = .token
            } else if !isSpace {
                throw .invalidChunkExtension
            }
        case .token:
            if b == ASCII.cr {
                chunkLine.phase = .lf
            } else if b == ASCII.semicolon {
                chunkLine.phase = .nameStart
            } else if isSpace {
                chunkLine.phase = .spaceBeforeSemicolon
            } else if !ByteClass.isTchar(b) {
                throw .invalidChunkExtension
            }
        case .quoted:
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
            // (RFC 9110 §5.6.4); an unterminated quote never reaches the CRLF.
            if b == ASCII.dquote {
                chunkLine.phase = .afterQuoted
            } else if b == ASCII.backslash {
                chunkLine.phase = .quotedEscape
            } else if !ByteClass.isFieldValueByte(b) {
                throw .invalidChunkExtension
            }
        case .quotedEscape:
            // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            guard ByteClass.isFieldValueByte(b) else { throw .invalidChunkExtension }
            chunkLine.phase = .quoted
        case .afterQuoted:
            if b == ASCII.cr {
                chunkLine.phase = .lf
            } else if b == ASCII.semicolon {
                chunkLine.phase = .nameStart
            } else if isSpace {
                chunkLine.phase = .spaceBeforeSemicolon
            } else {
                throw .invalidChunkExtension
            }
        case .lf:
            throw .bareCR
        }
    }
}
