import Testing
@testable import Idempotency

private func parse(_ values: [String], _ syntax: KeySyntax = .strict, max: Int = 255) -> Result<String, KeyError> {
    IdempotencyKeyParser.parse(fieldValues: values.map { ArraySlice(Array($0.utf8)) }, syntax: syntax, maxLength: max)
}

private func parse(_ value: String, _ syntax: KeySyntax = .strict, max: Int = 255) -> Result<String, KeyError> {
    parse([value], syntax, max: max)
}

private func kind(_ result: Result<String, KeyError>) -> KeyError.Kind? {
    if case .failure(let error) = result { return error.kind }
    return nil
}

struct ValidKey: Sendable, CustomTestStringConvertible {
    let field: String
    let key: String
    var testDescription: String { field }
}

struct InvalidKey: Sendable, CustomTestStringConvertible {
    let field: String
    let kind: KeyError.Kind
    var testDescription: String { field }
}

@Suite struct IdempotencyKeyParserTests {
    // RFC 9651 §3.3.3 sf-strings; valid under both syntaxes.
    static let validStrings: [ValidKey] = [
        ValidKey(field: #""8e03978e-40d5""#, key: "8e03978e-40d5"),
        ValidKey(field: #"   "abc"  "#, key: "abc"),  // OWS around the field value
        ValidKey(field: "\t\"abc\"\t", key: "abc"),
        ValidKey(field: #""a b""#, key: "a b"),  // SP is %x20, allowed inside
        ValidKey(field: #""a\"b""#, key: #"a"b"#),
        ValidKey(field: #""a\\b""#, key: #"a\b"#),
        ValidKey(field: #""a,b;c=d""#, key: "a,b;c=d"),  // separators are plain characters inside quotes
        ValidKey(field: #""!#$%&'()*+-./:<=>?@[]^_`{|}~""#, key: "!#$%&'()*+-./:<=>?@[]^_`{|}~"),
    ]

    @Test(arguments: validStrings)
    func acceptsSfString(_ c: ValidKey) {
        #expect(parse(c.field, .strict) == .success(c.key))
        #expect(parse(c.field, .lenient) == .success(c.key))
    }

    static let invalidStrings: [InvalidKey] = [
        InvalidKey(field: #""a\nb""#, kind: .invalidEscape),  // only \" and \\ exist (RFC 9651 §4.2.5)
        InvalidKey(field: #""\u0041""#, kind: .invalidEscape),
        InvalidKey(field: #""abc\"#, kind: .unterminatedString),
        InvalidKey(field: #""abc\""#, kind: .unterminatedString),
        InvalidKey(field: #""abc"#, kind: .unterminatedString),
        InvalidKey(field: #""""#, kind: .empty),
        InvalidKey(field: "", kind: .empty),
        InvalidKey(field: "  \t ", kind: .empty),
        InvalidKey(field: #""a", "b""#, kind: .list),
        InvalidKey(field: #""a","b""#, kind: .list),
        InvalidKey(field: #""a";x=1"#, kind: .parameters),
        InvalidKey(field: #""a" ;x"#, kind: .parameters),
        InvalidKey(field: #""a" b"#, kind: .trailingCharacters),
        InvalidKey(field: #""a""b""#, kind: .trailingCharacters),
        InvalidKey(field: "\"a\tb\"", kind: .controlCharacter),  // HTAB is not %x20-7E
        InvalidKey(field: "\"a\u{7F}b\"", kind: .controlCharacter),
        InvalidKey(field: "\"a\u{0}b\"", kind: .controlCharacter),
        InvalidKey(field: "\"a\u{1B}b\"", kind: .controlCharacter),
        InvalidKey(field: "\"caf\u{E9}\"", kind: .invalidCharacter),  // non-ASCII is not in sf-string
    ]

    @Test(arguments: invalidStrings)
    func refusesMalformedSfString(_ c: InvalidKey) {
        #expect(kind(parse(c.field, .strict)) == c.kind)
        #expect(kind(parse(c.field, .lenient)) == c.kind)
    }

    @Test func lengthIsCountedAfterUnquoting() {
        let exact = String(repeating: "k", count: 255)
        #expect(parse("\"\(exact)\"") == .success(exact))
        #expect(kind(parse("\"\(exact)k\"")) == .tooLong)
        // 255 escaped quotes are 510 bytes on the wire but 255 characters.
        let escaped = String(repeating: #"\""#, count: 255)
        #expect(parse("\"\(escaped)\"") == .success(String(repeating: "\"", count: 255)))
        #expect(kind(parse(#""abcd""#, max: 3)) == .tooLong)
        #expect(parse(#""abc""#, max: 3) == .success("abc"))
        #expect(kind(parse("abcd", .lenient, max: 3)) == .tooLong)
    }

    @Test func fieldLineCount() {
        #expect(kind(parse([#""a""#, #""a""#])) == .multipleFieldLines)
        #expect(kind(parse([#""a""#, ""], .lenient)) == .multipleFieldLines)
        #expect(kind(parse([String]())) == .missing)
    }

    static let lenientTokens: [ValidKey] = [
        ValidKey(field: "abc-123", key: "abc-123"),
        ValidKey(field: "  8e03978e-40d5\t", key: "8e03978e-40d5"),
        ValidKey(field: "a_b.c~d!#$%&'()*+/:<=>?@[\\]^`{|}", key: "a_b.c~d!#$%&'()*+/:<=>?@[\\]^`{|}"),
        ValidKey(field: "x", key: "x"),
    ]

    @Test(arguments: lenientTokens)
    func lenientAcceptsBareToken(_ c: ValidKey) {
        #expect(parse(c.field, .lenient) == .success(c.key))
        #expect(kind(parse(c.field, .strict)) == .notAString)
    }

    static let badTokens: [InvalidKey] = [
        InvalidKey(field: "a b", kind: .invalidCharacter),
        InvalidKey(field: "a,b", kind: .list),
        InvalidKey(field: "a;x=1", kind: .parameters),
        InvalidKey(field: "a\"b", kind: .invalidCharacter),
        InvalidKey(field: "ab\u{1}", kind: .controlCharacter),
        InvalidKey(field: "a\u{7F}", kind: .controlCharacter),
        InvalidKey(field: "caf\u{E9}", kind: .invalidCharacter),
    ]

    @Test(arguments: badTokens)
    func lenientRefusesMalformedToken(_ c: InvalidKey) {
        #expect(kind(parse(c.field, .lenient)) == c.kind)
    }

    @Test func strictNamesTheRealProblemOfUnquotedValues() {
        #expect(kind(parse("a,b", .strict)) == .list)
        #expect(kind(parse("a;x", .strict)) == .parameters)
        #expect(kind(parse("a b", .strict)) == .notAString)
    }

    @Test func reasonsAreReadable() throws {
        guard case .failure(let error) = parse(#""a";x=1"#) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.reason.contains("parameters"))
        #expect(error.description == error.reason)
    }

    /// The proxy parses into a buffer it keeps: the same acceptance, the same errors and the
    /// key's exact bytes as the `String` parse, for every case above and under both syntaxes,
    /// whatever the buffer held before.
    @Test func parsingIntoABufferAgreesWithTheStringParse() {
        let fields = Self.validStrings.map(\.field) + Self.invalidStrings.map(\.field)
            + Self.lenientTokens.map(\.field) + Self.badTokens.map(\.field) + ["", "  ", "\"\"", String(repeating: "k", count: 300)]
        var buffer = Array("left over from an earlier request".utf8)
        for field in fields {
            for syntax in [KeySyntax.strict, .lenient] {
                let bytes = Array(field.utf8)
                let expected = bytes.withUnsafeBytes {
                    IdempotencyKeyParser.parse(fieldValue: $0, lineCount: 1, syntax: syntax, maxLength: 255)
                }
                let error = bytes.withUnsafeBytes {
                    IdempotencyKeyParser.parse(fieldValue: $0, lineCount: 1, syntax: syntax, maxLength: 255, into: &buffer)
                }
                switch expected {
                case .success(let key):
                    #expect(error == nil && buffer == Array(key.utf8), "\(field.debugDescription) \(syntax)")
                case .failure(let expectedError):
                    #expect(error == expectedError, "\(field.debugDescription) \(syntax)")
                }
            }
        }
        #expect(IdempotencyKeyParser.parse(fieldValue: UnsafeRawBufferPointer(start: nil, count: 0), lineCount: 2,
                                            syntax: .strict, maxLength: 255, into: &buffer)?.kind == .multipleFieldLines)
    }

    @Test func parsesSlicesOfALargerBuffer() {
        let buffer = Array("Idempotency-Key: \"abc\"\r\n".utf8)
        let value = buffer[16..<22]  // ` "abc"`
        #expect(
            IdempotencyKeyParser.parse(fieldValues: [value], syntax: .strict, maxLength: 255) == .success("abc"))
    }
}
