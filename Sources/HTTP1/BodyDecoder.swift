/// Incremental body decoder for Content-Length, chunked and read-until-close
/// bodies.
///
/// The decoder never copies: `.data` events are ranges into the bytes the caller
/// passed, delivered as soon as they arrive (a chunk is not held back until it is
/// complete). Framing bytes (chunk-size lines, the CRLF after chunk data,
/// trailers) are consumed and never reported.
public struct BodyDecoder: Sendable {
    public enum Event: Sendable, Equatable {
        case needMore
        case data(Range<Int>)
        case end
    }

    enum State: Sendable, Equatable {
        case fixed(remaining: UInt64)
        case untilClose
        case chunkLine
        case chunkData(remaining: UInt64)
        case chunkDataCR
        case chunkDataLF
        case trailerLine
        case done
    }

    var state: State
    let limits: HTTPParserLimits
    /// Bytes of the pending framing line already examined. The caller re-sends
    /// an incomplete line from its start, so scanning resumes here instead of
    /// re-reading it, which keeps byte-by-byte input linear.
    var lineProgress = 0
    var chunkLine = ChunkLineState()
    var trailerLine = TrailerLineState()
    var trailerBytes = 0
    var trailerFields = 0
    var failure: HTTPParseError?
    public private(set) var bytesDelivered: UInt64 = 0

    public init(framing: BodyFraming, limits: HTTPParserLimits = .init()) {
        self.limits = limits
        switch framing {
        case .none, .contentLength(0): state = .done
        case .contentLength(let length): state = .fixed(remaining: length)
        case .chunked: state = .chunkLine
        case .untilClose: state = .untilClose
        }
    }

    /// True once the whole body, including a chunked body's trailer section,
    /// has been consumed.
    public var isComplete: Bool { state == .done }

    /// Decodes from the start of `bytes`. Returns one event and how many bytes of
    /// `bytes` it consumed (ranges in `.data` are relative to `bytes`). Callers
    /// loop: advance by `consumed`, call again, until `.needMore` or `.end`.
    ///
    /// On `.needMore`, bytes past `consumed` belong to an incomplete framing line
    /// and must be passed again, with more bytes appended, on the next call.
    public mutating func next(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (event: Event, consumed: Int) {
        if let failure { throw failure }
        do throws(HTTPParseError) {
            return try step(bytes)
        } catch {
            failure = error
            throw error
        }
    }

    /// Tells the decoder the peer closed the connection. This ends an
    /// `.untilClose` body normally; for any other framing an unfinished body is
    /// an error, because a truncated message must not be passed on as complete
    /// (RFC 9112 §8).
    public mutating func finishAtEOF() throws(HTTPParseError) {
        if let failure { throw failure }
        switch state {
        case .done:
            return
        case .untilClose:
            state = .done
        default:
            failure = .incompleteBody
            throw .incompleteBody
        }
    }

    private mutating func step(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (event: Event, consumed: Int) {
        var p = 0
        let count = bytes.count
        while true {
            switch state {
            case .done:
                return (.end, p)
            case .untilClose:
                guard p < count else { return (.needMore, p) }
                bytesDelivered &+= UInt64(count - p)
                return (.data(p..<count), count)
            case .fixed(let remaining):
                guard p < count else { return (.needMore, p) }
                let take = Int(min(UInt64(count - p), remaining))
                state = remaining == UInt64(take) ? .done : .fixed(remaining: remaining - UInt64(take))
                bytesDelivered &+= UInt64(take)
                return (.data(p..<(p + take)), p + take)
            case .chunkData(let remaining):
                guard p < count else { return (.needMore, p) }
                let take = Int(min(UInt64(count - p), remaining))
                state = remaining == UInt64(take) ? .chunkDataCR : .chunkData(remaining: remaining - UInt64(take))
                bytesDelivered &+= UInt64(take)
                return (.data(p..<(p + take)), p + take)
            case .chunkDataCR:
                guard p < count else { return (.needMore, p) }
                // RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data
                // CRLF. Data running past its size (`3\r\nxxx__1a`) or ending in a
                // bare LF means the two ends disagree on where the chunk ends.
                guard bytes[p] == ASCII.cr else { throw .chunkDataNotTerminated }
                p += 1
                state = .chunkDataLF
            case .chunkDataLF:
                guard p < count else { return (.needMore, p) }
                guard bytes[p] == ASCII.lf else { throw .chunkDataNotTerminated }
                p += 1
                beginLine(.chunkLine)
            case .chunkLine:
                guard let lineEnd = try scanChunkLine(bytes, lineStart: p) else { return (.needMore, p) }
                p = lineEnd
                let size = chunkLine.size
                if size == 0 {
                    beginLine(.trailerLine)
                } else {
                    state = .chunkData(remaining: size)
                }
            case .trailerLine:
                guard let (lineEnd, last) = try scanTrailerLine(bytes, lineStart: p) else { return (.needMore, p) }
                p = lineEnd
                if last {
                    state = .done
                    return (.end, p)
                }
                beginLine(.trailerLine)
            }
        }
    }

    private mutating func beginLine(_ next: State) {
        state = next
        lineProgress = 0
        chunkLine = ChunkLineState()
        trailerLine = TrailerLineState()
    }
}
