// libFuzzer target `chunked-body`: BodyDecoder (Sources/HTTP1) with chunked framing under the
// default limits and under limits small enough to be crossed, and with Content-Length and
// read-until-close framing.
//
// The input is the byte stream after a head. It is fed whole, split in two at an offset taken
// from its first byte, in two patterns of random pieces (sizes from a generator seeded by the
// input) and byte by byte (inputs up to 1024 bytes), the way a connection does: unconsumed
// bytes are passed again with the next piece appended, each time in a fresh buffer. Then the
// peer closes (`finishAtEOF`). Invariants:
// - every pattern decodes the same data bytes and ends the same way (complete, closed, or the
//   same error), and a complete body consumed the same bytes;
// - no call consumes more bytes than it was given; a `.data` range is non-empty, inside the
//   bytes given, and ends where the consumed bytes end; `bytesDelivered` counts the data;
// - errors are sticky and `.end` stays `.end`;
// - the decoded data, chunked again by ChunkedEncoder in random chunk sizes, decodes back to
//   the same data and is consumed exactly.

enum BodyEnd: Equatable {
    /// `.end`: the body and any trailer section are complete.
    case complete
    /// The body ended because the peer closed (read-until-close framing).
    case closed
    case failed(HTTPParseError)
}

struct Decoded: Equatable {
    var data: [UInt8] = []
    var consumed = 0
    var end = BodyEnd.complete
}

private func decode(
    _ input: UnsafeRawBufferPointer,
    cuts: [Int],
    framing: BodyFraming,
    limits: HTTPParserLimits,
    label: @autoclosure () -> String
) -> Decoded {
    var decoder = BodyDecoder(framing: framing, limits: limits)
    var result = Decoded()
    // Bytes before `start` are consumed; the caller's buffer is input[start..<cut].
    var start = 0
    func fail(_ message: String) -> Never {
        fuzzFail("\(label()), pieces \(cuts): \(message); input \(escaped(input))")
    }
    for cut in cuts {
        while true {
            let buffer = UnsafeRawBufferPointer(rebasing: input[start..<cut])
            let event: BodyDecoder.Event
            let consumed: Int
            do throws(HTTPParseError) {
                (event, consumed) = try withExactCopy(buffer, count: buffer.count) {
                    (copy) throws(HTTPParseError) -> (BodyDecoder.Event, Int) in try decoder.next(copy)
                }
            } catch {
                // Errors are sticky, whatever bytes come next.
                do throws(HTTPParseError) {
                    let again = try withExactCopy(buffer, count: buffer.count) {
                        (copy) throws(HTTPParseError) -> (BodyDecoder.Event, Int) in try decoder.next(copy)
                    }
                    fail("after \(error) the decoder returned \(again)")
                } catch let second {
                    if second != error { fail("after \(error) the decoder threw \(second)") }
                }
                // How far the caller got before the error depends on the pieces (a line may
                // have been consumed in an earlier call), so only data and error are compared.
                result.end = .failed(error)
                result.consumed = -1
                return result
            }
            if consumed < 0 || consumed > buffer.count {
                fail("consumed \(consumed) of the \(buffer.count) bytes given")
            }
            switch event {
            case .data(let range):
                if range.isEmpty || range.lowerBound < 0 || range.upperBound != consumed {
                    fail("data \(range) with \(consumed) bytes consumed of \(buffer.count)")
                }
                result.data += buffer[range]
            case .needMore:
                break
            case .end:
                if !decoder.isComplete { fail(".end but not complete") }
            }
            start += consumed
            result.consumed = start
            if event == .end {
                let after = try? withExactCopy(input, count: 0) {
                    (copy) throws(HTTPParseError) -> (BodyDecoder.Event, Int) in try decoder.next(copy)
                }
                if after?.0 != .end || after?.1 != 0 { fail("after .end the decoder returned \(String(describing: after))") }
                result.end = .complete
                checkDelivered(decoder, result, fail)
                return result
            }
            if event == .needMore { break }
        }
    }
    do throws(HTTPParseError) {
        try decoder.finishAtEOF()
        result.end = .closed
        if !decoder.isComplete { fail("closed but not complete") }
    } catch {
        result.end = .failed(error)
        result.consumed = -1
    }
    checkDelivered(decoder, result, fail)
    return result
}

private func checkDelivered(_ decoder: BodyDecoder, _ result: Decoded, _ fail: (String) -> Never) {
    if decoder.bytesDelivered != UInt64(result.data.count) {
        fail("bytesDelivered \(decoder.bytesDelivered) but \(result.data.count) data bytes were delivered")
    }
}

private func check(
    _ input: UnsafeRawBufferPointer, framing: BodyFraming, limits: HTTPParserLimits, label: @autoclosure () -> String
) -> Decoded {
    let n = input.count
    let whole = decode(input, cuts: Cuts.whole(n), framing: framing, limits: limits, label: label())
    var rng = SplitMix64(hashing: input)
    var schedules = [
        Cuts.split(n, at: n > 0 ? Int(input[0]) : 0),
        Cuts.random(n, &rng),
        Cuts.random(n, &rng),
    ]
    if n <= 1024 { schedules.append(Cuts.byteByByte(n)) }
    for cuts in schedules {
        let fed = decode(input, cuts: cuts, framing: framing, limits: limits, label: label())
        fuzzCheck(fed == whole, """
            \(label()): fed in pieces \(cuts) the body decoded to \(escaped(fed.data)), consumed \(fed.consumed), \
            ended \(fed.end); whole it decoded to \(escaped(whole.data)), consumed \(whole.consumed), ended \(whole.end); \
            input \(escaped(input))
            """)
    }
    return whole
}

/// Chunks `data` in random sizes with ChunkedEncoder and decodes the result.
private func checkRoundTrip(_ data: [UInt8], _ rng: inout SplitMix64) {
    var encoded: [UInt8] = []
    var offset = 0
    while offset < data.count {
        let size = min(data.count - offset, rng.upTo(16))
        ChunkedEncoder.writeChunkHeader(size: size, into: &encoded)
        encoded += data[offset..<(offset + size)]
        ChunkedEncoder.writeChunkTrailer(into: &encoded)
        offset += size
    }
    ChunkedEncoder.writeLastChunk(into: &encoded)
    let decoded = encoded.withUnsafeBytes { bytes in
        decode(bytes, cuts: Cuts.random(bytes.count, &rng), framing: .chunked, limits: .init(), label: "round trip")
    }
    fuzzCheck(decoded == Decoded(data: data, consumed: encoded.count, end: .complete), """
        the data \(escaped(data)) chunked as \(escaped(encoded)) decoded to \(escaped(decoded.data)), \
        consumed \(decoded.consumed), ended \(decoded.end)
        """)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let chunked = check(input, framing: .chunked, limits: HTTPParserLimits(), label: "chunked, default limits")
    _ = check(input, framing: .chunked, limits: tightLimits, label: "chunked, tight limits")
    var rng = SplitMix64(hashing: input, salt: 1)
    checkRoundTrip(chunked.data, &rng)

    // Content-Length framing takes its length from the first byte; read-until-close takes all.
    let length = UInt64(size > 0 ? input[0] : 0)
    let fixed = check(input, framing: .contentLength(length), limits: .init(), label: "Content-Length \(length)")
    let expected = length <= UInt64(size)
        ? Decoded(data: Array(input.prefix(Int(length))), consumed: Int(length), end: .complete)
        : Decoded(data: Array(input), consumed: -1, end: .failed(HTTPParseError(status: 400, reason: "connection closed before end of body")))
    fuzzCheck(fixed == expected, "Content-Length \(length): \(fixed) for input \(escaped(input))")
    let untilClose = check(input, framing: .untilClose, limits: .init(), label: "until close")
    fuzzCheck(untilClose == Decoded(data: Array(input), consumed: size, end: .closed),
              "until close: \(untilClose) for input \(escaped(input))")
    return 0
}
