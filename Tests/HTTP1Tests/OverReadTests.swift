import HTTP1
import Testing

/// Every prefix of every fixture is parsed from memory that ends at an
/// inaccessible page. The parsers load eight bytes at a time, and a load that
/// strays past the caller's bytes would crash this test instead of silently
/// reading a neighbour's data.
@Suite struct OverReadTests {
    @Test func requestPrefixesNeverReadPastTheBuffer() {
        let memory = GuardedMemory()
        for fixture in RequestFixtures.all {
            for end in 0...fixture.input.count {
                memory.withBytesAtEnd(fixture.input[..<end]) { bytes in
                    var head = RequestHead()
                    guard let done = try? RequestHeadParser.parse(bytes, into: &head, limits: fixture.limits),
                          done else { return }
                    drain(UnsafeRawBufferPointer(rebasing: bytes[head.headLength...]),
                          BodyDecoder(framing: head.framing, limits: fixture.limits))
                }
            }
        }
        #expect(RequestFixtures.all.count > 100)
    }

    @Test func responsePrefixesNeverReadPastTheBuffer() {
        let memory = GuardedMemory()
        for fixture in ResponseFixtures.all {
            for end in 0...fixture.input.count {
                memory.withBytesAtEnd(fixture.input[..<end]) { bytes in
                    var head = ResponseHead()
                    guard let done = try? ResponseHeadParser.parse(
                        bytes, into: &head, requestMethod: fixture.requestMethod, limits: fixture.limits),
                          done else { return }
                    drain(UnsafeRawBufferPointer(rebasing: bytes[head.headLength...]),
                          BodyDecoder(framing: head.framing, limits: fixture.limits))
                }
            }
        }
        #expect(ResponseFixtures.all.count > 20)
    }

    @Test func writersNeverReadPastTheSource() throws {
        let memory = GuardedMemory()
        let input = raw("GET /x HTTP/1.1\r\nHost: a\r\nX-Last: v\r\n\r\n")
        try memory.withBytesAtEnd(input[...]) { bytes throws in
            var head = RequestHead()
            #expect(try RequestHeadParser.parse(bytes, into: &head, limits: .init()))
            var out: [UInt8] = []
            HeadWriter.writeRequestHead(head, source: bytes, extra: [], dropping: [], framing: .none, into: &out)
            #expect(text(out) == text(input))
        }
    }

    /// Decodes the whole remainder, ignoring errors; only memory safety matters here.
    private func drain(_ bytes: UnsafeRawBufferPointer, _ decoder: BodyDecoder) {
        var decoder = decoder
        var offset = 0
        while let (event, consumed) = try? decoder.next(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            offset += consumed
            if event == .end || event == .needMore { return }
        }
    }
}
