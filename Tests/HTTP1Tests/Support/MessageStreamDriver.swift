import HTTP1

/// Everything observable about one accepted message, copied out of the
/// buffer so outcomes from different feedings can be compared.
struct ParsedMessage: Equatable, CustomStringConvertible {
    var method: HTTPMethod = .get
    var methodText = ""
    var target = ""
    var status = 0
    var versionMinor = 1
    var fields: [String] = []
    var hopByHop: [Bool] = []
    var framing: BodyFraming = .none
    var keepAlive = true
    var expectContinue = false
    var upgradeRequested = false
    var host: String?
    var contentLength: UInt64?
    var headLength = 0
    var body: [UInt8] = []
    /// Head plus every body byte the decoder consumed, framing included.
    var consumed = 0

    var description: String {
        "\(methodText)\(status) \(target) fields=\(fields) framing=\(framing) body=\(text(body)) consumed=\(consumed)"
    }
}

enum StreamEnd: Equatable {
    /// All input was consumed and the last message ended exactly at its end.
    case clean
    /// A message was still incomplete when the input ran out.
    case incomplete
    /// The parser or decoder threw; the status is the one it reported.
    case rejected(Int)
}

struct StreamOutcome: Equatable, CustomStringConvertible {
    var messages: [ParsedMessage] = []
    var end: StreamEnd = .clean

    var description: String { "\(end) after \(messages.count) message(s): \(messages)" }
}

/// Plays the part of a connection: appends each piece of input to a buffer,
/// parses heads (passing `scanHint`), loops the body decoder over what follows,
/// drops consumed bytes, and starts the next pipelined message right after.
struct MessageStreamDriver {
    enum Side {
        case request
        case response(to: HTTPMethod)
    }

    var side: Side
    var limits = HTTPParserLimits()
    /// Whether the peer closes the connection after the last piece, which ends
    /// an `.untilClose` response body.
    var closesAtEnd = false

    func run(_ pieces: [[UInt8]]) -> StreamOutcome {
        var outcome = StreamOutcome()
        var buffer: [UInt8] = []
        var request = RequestHead()
        var response = ResponseHead()
        var scanned = 0
        var current: ParsedMessage?
        var decoder = BodyDecoder(framing: .none, limits: limits)

        do {
            for piece in pieces {
                buffer += piece
                while true {
                    if current == nil {
                        if buffer.isEmpty { break }
                        let hint = scanned
                        let done = try buffer.withUnsafeBytes { bytes in
                            try parseHead(bytes, request: &request, response: &response, hint: hint)
                        }
                        guard done else {
                            scanned = buffer.count
                            break
                        }
                        scanned = 0
                        let message = buffer.withUnsafeBytes { snapshot($0, request: request, response: response) }
                        buffer.removeFirst(message.headLength)
                        decoder = BodyDecoder(framing: message.framing, limits: limits)
                        current = message
                    }
                    let (event, consumed) = try buffer.withUnsafeBytes { try decoder.next($0) }
                    if case .data(let range) = event { current!.body += buffer[range] }
                    buffer.removeFirst(consumed)
                    current!.consumed += consumed
                    if event == .needMore { break }
                    if event == .end {
                        outcome.messages.append(current!)
                        current = nil
                    }
                }
            }
            if closesAtEnd, current != nil {
                try decoder.finishAtEOF()
                outcome.messages.append(current!)
                current = nil
            }
        } catch let error as HTTPParseError {
            outcome.end = .rejected(error.status)
            return outcome
        } catch {
            outcome.end = .rejected(-1)
            return outcome
        }
        outcome.end = current == nil && buffer.isEmpty ? .clean : .incomplete
        return outcome
    }

    private func parseHead(
        _ bytes: UnsafeRawBufferPointer,
        request: inout RequestHead,
        response: inout ResponseHead,
        hint: Int
    ) throws -> Bool {
        switch side {
        case .request:
            return try RequestHeadParser.parse(bytes, into: &request, limits: limits, scanHint: hint)
        case .response(let method):
            return try ResponseHeadParser.parse(
                bytes, into: &response, requestMethod: method, limits: limits, scanHint: hint)
        }
    }

    private func snapshot(_ bytes: UnsafeRawBufferPointer, request: RequestHead, response: ResponseHead) -> ParsedMessage {
        var message = ParsedMessage()
        switch side {
        case .request:
            message.method = request.method
            message.methodText = text(bytes, request.methodRange)
            message.target = text(bytes, request.target)
            message.versionMinor = request.versionMinor
            message.fields = request.fields.map { text(bytes, $0.name) + ": " + text(bytes, $0.value) }
            message.hopByHop = request.hopByHop
            message.framing = request.framing
            message.keepAlive = request.keepAlive
            message.expectContinue = request.expectContinue
            message.upgradeRequested = request.upgradeRequested
            message.host = request.host.map { text(bytes, $0) }
            message.headLength = request.headLength
        case .response:
            message.status = response.status
            message.target = text(bytes, response.reason)
            message.versionMinor = response.versionMinor
            message.fields = response.fields.map { text(bytes, $0.name) + ": " + text(bytes, $0.value) }
            message.hopByHop = response.hopByHop
            message.framing = response.framing
            message.keepAlive = response.keepAlive
            message.contentLength = response.contentLength
            message.headLength = response.headLength
        }
        message.consumed = message.headLength
        return message
    }
}
