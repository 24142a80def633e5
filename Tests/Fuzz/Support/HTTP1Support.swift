// Shared by the HTTP1 targets (request-head, response-head, chunked-body): feeding a head parser the way a
// connection does, and checking what any accepted head must satisfy.

/// What one parse call, or a whole feeding, ended with.
enum HeadOutcome<Snapshot: Equatable>: Equatable {
    case incomplete
    case rejected(HTTPParseError)
    case accepted(Snapshot)
}

/// Drives one of the head parsers. `parse` is the parser's entry point with its `scanHint`;
/// `snapshot` copies out everything observable about an accepted head.
struct HeadFeeder<Head, Snapshot: Equatable> {
    var parse: (UnsafeRawBufferPointer, inout Head, Int) throws(HTTPParseError) -> Bool
    var snapshot: (Head) -> Snapshot

    /// One parse of `bytes[0..<count]` (copied to an exact allocation) with scan hint `hint`.
    func once(_ bytes: UnsafeRawBufferPointer, count: Int, head: inout Head, hint: Int) -> HeadOutcome<Snapshot> {
        withExactCopy(bytes, count: count) { copy in
            do throws(HTTPParseError) {
                return try parse(copy, &head, hint) ? .accepted(snapshot(head)) : .incomplete
            } catch {
                return .rejected(error)
            }
        }
    }

    /// Feeds `bytes` as a connection does: after each piece arrives the parser is given all the
    /// bytes so far (a fresh buffer each time, as after a reallocation) with `scanHint` set to
    /// the count it saw before. Stops at the first outcome that is not `.incomplete`.
    ///
    /// With `checkEachStep`, every intermediate outcome is also compared with a parse of the
    /// same prefix by a fresh head and no hint, so that the resumed scanner can never disagree
    /// with a scan from the start.
    func fed(
        _ bytes: UnsafeRawBufferPointer,
        cuts: [Int],
        head: inout Head,
        fresh: () -> Head,
        checkEachStep: Bool,
        label: @autoclosure () -> String
    ) -> (outcome: HeadOutcome<Snapshot>, at: Int) {
        var hint = 0
        for cut in cuts {
            let outcome = once(bytes, count: cut, head: &head, hint: hint)
            if checkEachStep {
                var clean = fresh()
                let reference = once(bytes, count: cut, head: &clean, hint: 0)
                fuzzCheck(outcome == reference, """
                    \(label()): the prefix of \(cut) bytes parsed with scanHint \(hint) gave \(outcome), \
                    parsed from the start it gave \(reference); input \(escaped(bytes))
                    """)
            }
            if outcome != .incomplete { return (outcome, cut) }
            hint = cut
        }
        return (.incomplete, cuts.last ?? 0)
    }

    /// The split schedules both head targets use: at an offset the input picks, in random
    /// pieces, and byte by byte for short inputs; each fed schedule must end as `whole` did.
    func checkSplitsAgree(
        _ input: UnsafeRawBufferPointer, whole: HeadOutcome<Snapshot>, head: inout Head, fresh: () -> Head,
        rng: inout SplitMix64, label: String
    ) {
        let n = input.count
        var schedules: [(String, [Int])] = [
            ("split at first byte", Cuts.split(n, at: n > 0 ? Int(input[0]) : 0)),
            ("random pieces", Cuts.random(n, &rng)),
        ]
        if n <= 512 { schedules.append(("byte by byte", Cuts.byteByByte(n))) }
        for (name, cuts) in schedules {
            let (outcome, at) = fed(input, cuts: cuts, head: &head, fresh: fresh, checkEachStep: cuts.count <= 64, label: "\(label), \(name)")
            fuzzCheck(outcome == whole, """
                \(label), \(name): fed in pieces \(cuts) the parse ended at \(at) bytes with \(outcome), \
                whole it gave \(whole); input \(escaped(input))
                """)
        }
    }
}

/// Limits small enough that inputs of a few hundred bytes cross every one of them.
let tightLimits = HTTPParserLimits(maxHeaderBytes: 96, maxHeaders: 3, maxTargetLength: 12, maxChunkExtensionBytes: 8)

/// Checks that `range` lies inside `0..<end`.
func checkInside(_ range: Range<Int>, _ end: Int, _ what: String, _ bytes: UnsafeRawBufferPointer) {
    fuzzCheck(range.lowerBound >= 0 && range.upperBound <= end,
              "\(what) \(range) lies outside the head of \(end) bytes; input \(escaped(bytes))")
}

/// What every accepted field section must satisfy: ranges inside the head and in order, names
/// that are tokens followed by a colon, values of field-value bytes with no OWS around them
/// (RFC 9112 §5, RFC 9110 §5.5), and one hop-by-hop flag per field.
func checkFields(
    _ fields: [FieldRange],
    hopByHop: [Bool],
    headLength: Int,
    after start: Int,
    limits: HTTPParserLimits,
    _ bytes: UnsafeRawBufferPointer
) {
    let input = escaped(bytes)
    fuzzCheck(fields.count == hopByHop.count, "\(fields.count) fields but \(hopByHop.count) hop-by-hop flags; input \(input)")
    fuzzCheck(fields.count <= limits.maxHeaders, "\(fields.count) fields over the limit \(limits.maxHeaders); input \(input)")
    var previousEnd = start
    for field in fields {
        checkInside(field.name, headLength, "field name", bytes)
        checkInside(field.value, headLength, "field value", bytes)
        fuzzCheck(!field.name.isEmpty && field.name.lowerBound >= previousEnd,
                  "field name \(field.name) empty or out of order; input \(input)")
        fuzzCheck(field.name.allSatisfy { ByteClass.isTchar(bytes[$0]) }, "field name \(field.name) not a token; input \(input)")
        fuzzCheck(bytes[field.name.upperBound] == ASCII.colon, "field name \(field.name) not followed by ':'; input \(input)")
        fuzzCheck(field.value.lowerBound > field.name.upperBound, "field value \(field.value) overlaps its name; input \(input)")
        fuzzCheck(field.value.allSatisfy { ByteClass.isFieldValueByte(bytes[$0]) },
                  "field value \(field.value) holds a byte that is not field-vchar/SP/HTAB; input \(input)")
        if let first = field.value.first, let last = field.value.last {
            fuzzCheck(!ByteClass.isWhitespace(bytes[first]) && !ByteClass.isWhitespace(bytes[last]),
                      "field value \(field.value) not trimmed of OWS; input \(input)")
        }
        previousEnd = field.value.upperBound
    }
}

/// The head ends with the empty line: its last four bytes are CR LF CR LF.
func checkHeadEnd(_ headLength: Int, limits: HTTPParserLimits, _ bytes: UnsafeRawBufferPointer) {
    fuzzCheck(headLength >= 4 && headLength <= bytes.count,
              "head length \(headLength) outside 4...\(bytes.count); input \(escaped(bytes))")
    fuzzCheck(headLength <= limits.maxHeaderBytes,
              "head length \(headLength) over the limit \(limits.maxHeaderBytes); input \(escaped(bytes))")
    fuzzCheck(bytes[headLength - 4] == ASCII.cr && bytes[headLength - 3] == ASCII.lf
              && bytes[headLength - 2] == ASCII.cr && bytes[headLength - 1] == ASCII.lf,
              "head of \(headLength) bytes does not end in CRLF CRLF; input \(escaped(bytes))")
}
