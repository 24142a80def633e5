import HTTP1
import Testing
@testable import Proxy

/// `Exchange.reset()` resets property by property; a property it forgot would leak from one
/// request into the next on a keep-alive connection.
struct ExchangeResetTests {
    /// Every stored property but the ones `reset` keeps, as text.
    private func resettable(_ exchange: Exchange) -> [String] {
        Mirror(reflecting: exchange).children
            .filter { $0.label != "responseHead" && $0.label != "requestsServed" }
            .map { "\($0.label ?? "?")=\($0.value)" }
    }

    @Test func aResetExchangeReadsAsAFreshOneButForWhatItKeeps() {
        // A property added to Exchange must be reset in `reset()` and set below.
        #expect(Mirror(reflecting: Exchange()).children.map { $0.label ?? "?" } == [
            "method", "clientVersionMinor", "clientKeepAlive", "requestDecoder", "requestChunked", "requestBodyDone",
            "responseHead", "responseScanHint", "responseStarted", "responseStreamStart", "responseEndsAtClose", "responseDecoder", "responseChunked", "retryable",
            "retried", "requestsServed", "guarded", "outcome", "status", "startNanos", "upstreamStartNanos", "logMethod",
            "logTarget", "logged",
        ])
        var exchange = Exchange()
        exchange.method = .post
        exchange.clientVersionMinor = 0
        exchange.clientKeepAlive = false
        exchange.requestDecoder = BodyDecoder(framing: .chunked)
        exchange.requestChunked = true
        exchange.requestBodyDone = true
        exchange.responseScanHint = 17
        exchange.responseStarted = true
        exchange.responseStreamStart = 4096
        exchange.responseEndsAtClose = true
        exchange.responseDecoder = BodyDecoder(framing: .contentLength(9))
        exchange.responseChunked = true
        exchange.retryable = true
        exchange.retried = true
        exchange.requestsServed = 5
        exchange.outcome = .replayed
        exchange.status = 201
        exchange.startNanos = 1
        exchange.upstreamStartNanos = 2
        exchange.logMethod = "POST"
        exchange.logTarget = "/v1/x"
        exchange.logged = true
        var head = ResponseHead()
        head.fields.reserveCapacity(32)
        head.status = 201
        exchange.responseHead = head
        #expect(resettable(exchange) != resettable(Exchange()))

        exchange.reset()
        #expect(resettable(exchange) == resettable(Exchange()))
        #expect(exchange.requestsServed == 5)
        #expect(exchange.responseHead.fields.capacity >= 32)
    }
}
