import Testing
@testable import Idempotency

@Suite struct ProblemDetailsTests {
    @Test func exactDocument() {
        let json = ProblemDetails.json(type: .keyReused, status: 422, detail: "different body")
        #expect(
            String(decoding: json, as: UTF8.self)
                == #"{"type":"https://idemproxy.dev/problems/key-reused","title":"Idempotency-Key reused for a different request","status":422,"detail":"different body"}"#)
    }

    @Test func detailIsEscaped() {
        let json = ProblemDetails.json(type: .invalidKey, status: 400, detail: "bad \"key\" \\ \n\u{1}")
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.hasSuffix(#""detail":"bad \"key\" \\ \n\u0001"}"#))
        // And the document is valid JSON by our own strict parser.
        #expect(Fingerprinter.canonicalJSON(json) != nil)
    }

    @Test func defaultsAndOmittedDetail() {
        let text = String(decoding: ProblemDetails.json(type: .storeUnavailable), as: UTF8.self)
        #expect(text == #"{"type":"https://idemproxy.dev/problems/store-unavailable","title":"Idempotency store unavailable","status":503}"#)
    }

    @Test(arguments: ProblemType.allCases)
    func everyTypeIsWellFormed(_ type: ProblemType) {
        #expect(type.uri == "https://idemproxy.dev/problems/\(type.rawValue)")
        #expect((400...599).contains(type.defaultStatus))
        #expect(!type.title.isEmpty)
        #expect(Fingerprinter.canonicalJSON(ProblemDetails.json(type: type, status: nil, detail: "d")) != nil)
    }

    @Test func statuses() {
        #expect(ProblemType.missingKey.defaultStatus == 400)
        #expect(ProblemType.keyReused.defaultStatus == 422)
        #expect(ProblemType.inFlight.defaultStatus == 409)
        #expect(ProblemType.outcomeUnknown.defaultStatus == 409)
        #expect(ProblemType.replayUnavailable.defaultStatus == 409)
        #expect(ProblemType.bodyTooLarge.defaultStatus == 413)
        #expect(ProblemType.upstreamTimeout.defaultStatus == 504)
        #expect(ProblemType.upstreamUnreachable.defaultStatus == 502)
    }
}
