import HTTP1
import Testing

/// Contract details of BodyDecoder that the fixture driver does not isolate.
@Suite struct BodyDecoderTests {
    private func next(_ decoder: inout BodyDecoder, _ input: [UInt8]) throws -> (BodyDecoder.Event, Int) {
        try input.withUnsafeBytes { bytes throws in try decoder.next(bytes) }
    }

    @Test func partialChunkSizeLineIsNotConsumed() throws {
        var decoder = BodyDecoder(framing: .chunked)
        let (event, consumed) = try next(&decoder, raw("1a;ext"))
        #expect(event == .needMore)
        #expect(consumed == 0)
        let (event2, consumed2) = try next(&decoder, raw("1a;ext=v\r\nabc"))
        #expect(event2 == .data(10..<13))
        #expect(consumed2 == 13)
        #expect(decoder.bytesDelivered == 3)
    }

    @Test func partialLineAfterDataKeepsItsStart() throws {
        var decoder = BodyDecoder(framing: .chunked)
        let input = raw("2\r\nab\r\n1")
        var (event, consumed) = try next(&decoder, input)
        #expect(event == .data(3..<5))
        (event, consumed) = try next(&decoder, Array(input[5...]))
        // The CRLF after the data is consumed; the incomplete size line "1" is not.
        #expect(event == .needMore)
        #expect(consumed == 2)
    }

    @Test func partialChunkDataIsDeliveredAtOnce() throws {
        var decoder = BodyDecoder(framing: .chunked)
        let (event, consumed) = try next(&decoder, raw("10\r\nabc"))
        #expect(event == .data(4..<7))
        #expect(consumed == 7)
        #expect(!decoder.isComplete)
    }

    @Test func chunkSizeDigitLimitHoldsWhileIncomplete() throws {
        var decoder = BodyDecoder(framing: .chunked)
        #expect(try next(&decoder, raw("FFFFFFFFFFFFFFFF")).0 == .needMore)
        #expect(throws: HTTPParseError.self) { try next(&decoder, raw("FFFFFFFFFFFFFFFF0")) }
    }

    @Test func maximumSixteenDigitChunkSizeIsRepresentable() throws {
        var decoder = BodyDecoder(framing: .chunked)
        let (event, consumed) = try next(&decoder, raw("FFFFFFFFFFFFFFFF\r\nab"))
        #expect(event == .data(18..<20))
        #expect(consumed == 20)
    }

    @Test func extensionLimitHoldsWhileIncomplete() throws {
        var decoder = BodyDecoder(framing: .chunked, limits: HTTPParserLimits(maxChunkExtensionBytes: 8))
        #expect(try next(&decoder, raw("1;abcdef")).0 == .needMore)
        #expect(throws: HTTPParseError(status: 400, reason: "chunk extensions too long")) {
            try next(&decoder, raw("1;abcdefgh"))
        }
    }

    @Test func errorsAreSticky() throws {
        var decoder = BodyDecoder(framing: .chunked)
        #expect(throws: HTTPParseError.self) { try next(&decoder, raw("Z\r\n")) }
        // Valid input afterwards must not resynchronise the stream.
        #expect(throws: HTTPParseError.self) { try next(&decoder, raw("0\r\n\r\n")) }
        #expect(throws: HTTPParseError.self) { try decoder.finishAtEOF() }
    }

    @Test func contentLengthStopsAtTheLength() throws {
        var decoder = BodyDecoder(framing: .contentLength(3))
        let (event, consumed) = try next(&decoder, raw("abcGET"))
        #expect(event == .data(0..<3))
        #expect(consumed == 3)
        #expect(decoder.isComplete)
        #expect(try next(&decoder, raw("GET")) == (.end, 0))
    }

    @Test func noBodyEndsImmediately() throws {
        var decoder = BodyDecoder(framing: .none)
        #expect(decoder.isComplete)
        #expect(try next(&decoder, raw("GET / HTTP/1.1")) == (.end, 0))
        var zero = BodyDecoder(framing: .contentLength(0))
        #expect(try next(&zero, []) == (.end, 0))
    }

    @Test func untilCloseEndsOnlyAtEOF() throws {
        var decoder = BodyDecoder(framing: .untilClose)
        #expect(try next(&decoder, []) == (.needMore, 0))
        #expect(try next(&decoder, raw("abc")) == (.data(0..<3), 3))
        #expect(!decoder.isComplete)
        try decoder.finishAtEOF()
        #expect(decoder.isComplete)
        #expect(decoder.bytesDelivered == 3)
    }

    @Test func eofInsideFixedBodyIsAnError() throws {
        var decoder = BodyDecoder(framing: .contentLength(5))
        _ = try next(&decoder, raw("ab"))
        #expect(throws: HTTPParseError(status: 400, reason: "connection closed before end of body")) {
            try decoder.finishAtEOF()
        }
    }

    @Test func eofAfterCompleteChunkedBodyIsFine() throws {
        var decoder = BodyDecoder(framing: .chunked)
        #expect(try next(&decoder, raw("0\r\n\r\n")) == (.end, 5))
        try decoder.finishAtEOF()
    }

    @Test func callerThatDropsThePartialLineIsStillSafe() throws {
        // A caller breaking the contract (not re-sending the partial line) gets
        // a rescan from the new start, never an out-of-bounds read.
        var decoder = BodyDecoder(framing: .chunked)
        #expect(try next(&decoder, raw("12345")).0 == .needMore)
        #expect(throws: HTTPParseError.self) { try next(&decoder, raw("\r\n")) }
    }
}
