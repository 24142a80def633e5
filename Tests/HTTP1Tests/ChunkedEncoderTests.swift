import HTTP1
import Testing

@Suite struct ChunkedEncoderTests {
    @Test(arguments: [(1, "1"), (10, "a"), (26, "1a"), (255, "ff"), (4096, "1000"), (0x7FFF_FFFF, "7fffffff")])
    func chunkHeaderIsLowercaseHex(size: Int, hex: String) {
        var out: [UInt8] = []
        ChunkedEncoder.writeChunkHeader(size: size, into: &out)
        #expect(text(out) == hex + "\r\n")
    }

    @Test func encodedBodyDecodesBack() throws {
        var out: [UInt8] = []
        let pieces = ["hello", " ", String(repeating: "x", count: 300)]
        for piece in pieces {
            ChunkedEncoder.writeChunkHeader(size: piece.utf8.count, into: &out)
            out += Array(piece.utf8)
            ChunkedEncoder.writeChunkTrailer(into: &out)
        }
        ChunkedEncoder.writeLastChunk(into: &out)
        #expect(text(out.suffix(5)) == "0\r\n\r\n")

        var decoder = BodyDecoder(framing: .chunked)
        var body: [UInt8] = []
        var offset = 0
        try out.withUnsafeBytes { bytes throws in
            while true {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                let (event, consumed) = try decoder.next(rest)
                if case .data(let range) = event { body += rest[range] }
                offset += consumed
                if event == .end || event == .needMore { break }
            }
        }
        #expect(decoder.isComplete)
        #expect(offset == out.count)
        #expect(text(body) == pieces.joined())
    }
}
