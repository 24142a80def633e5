import HTTP1
import Testing

/// What an accepted fixture must produce. Fields left nil are not checked;
/// every fixture still checks that all its bytes were consumed by exactly
/// `messages` messages.
struct Accepted: Sendable {
    var method: HTTPMethod? = nil
    var target: String? = nil
    var framing: BodyFraming? = nil
    var body: String? = nil
    var fields: [String]? = nil
    var forwarded: [String]? = nil
    var keepAlive: Bool? = nil
    var expectContinue: Bool? = nil
    var upgradeRequested: Bool? = nil
    var host: String?? = nil
    var status: Int? = nil
    var contentLength: UInt64?? = nil
    var messages = 1
}

enum Expected: Sendable {
    case accept(Accepted)
    case reject(Int)
}

/// One parser fixture: the bytes, why they are interesting, and what a strict
/// parser must do with them.
struct Fixture: Sendable, CustomTestStringConvertible {
    var name: String
    /// Why the fixture exists: the RFC clause or smuggling category it pins.
    var why: String
    var input: [UInt8]
    var expected: Expected
    var limits = HTTPParserLimits()
    var requestMethod: HTTPMethod = .get
    var closesAtEnd = false

    var testDescription: String { name }

    static func accept(_ name: String, _ why: String, _ input: String, _ check: Accepted,
                       limits: HTTPParserLimits = .init(), requestMethod: HTTPMethod = .get,
                       closesAtEnd: Bool = false) -> Fixture {
        Fixture(name: name, why: why, input: raw(input), expected: .accept(check), limits: limits,
                requestMethod: requestMethod, closesAtEnd: closesAtEnd)
    }

    static func reject(_ name: String, _ why: String, _ input: String, _ status: Int,
                       limits: HTTPParserLimits = .init(), requestMethod: HTTPMethod = .get,
                       closesAtEnd: Bool = false) -> Fixture {
        Fixture(name: name, why: why, input: raw(input), expected: .reject(status), limits: limits,
                requestMethod: requestMethod, closesAtEnd: closesAtEnd)
    }

    static func reject(_ name: String, _ why: String, bytes: [UInt8], _ status: Int,
                       limits: HTTPParserLimits = .init()) -> Fixture {
        Fixture(name: name, why: why, input: bytes, expected: .reject(status), limits: limits)
    }
}
