/// Checks on the request path that the parser, being syntax-only, does not make. Routes
/// match path prefixes, so any spelling of a path that an upstream would resolve to another
/// path is a way around a route (SPEC §5): such targets are refused rather than normalised,
/// because the upstream must receive exactly the path that was routed. Only the path is
/// checked; the query may hold anything. Route prefixes still match case-sensitively: an
/// upstream that routes case-insensitively needs its routes written for every spelling, or a
/// catch-all policy.
enum TargetCheck {
    /// Why `path` (origin-form, before any query) cannot be routed, or nil.
    /// - dot segments "." and ".." (RFC 3986 §3.3), also percent-encoded ("%2e", "%2E%2e",
    ///   ".%2e"), which upstreams commonly decode and then resolve;
    /// - empty segments ("//"), which many upstreams merge into one slash.
    static func problem(in path: UnsafeRawBufferPointer) -> String? {
        var segmentStart = 0
        var index = 0
        let slash = UInt8(ascii: "/"), question = UInt8(ascii: "?")
        while index <= path.count {
            let byte: UInt8 = index < path.count ? path[index] : question
            if byte == UInt8(ascii: "\\") { return "the request target contains a backslash, which some upstreams read as a slash" }
            if byte == UInt8(ascii: ";") { return "the request target has a ';' path parameter, which some upstreams strip before routing" }
            if byte == UInt8(ascii: "%"), let problem = encodedProblem(path, at: index) { return problem }
            if byte == slash || byte == question {
                let segment = UnsafeRawBufferPointer(rebasing: path[segmentStart..<index])
                if isDotSegment(segment) { return "the request target contains dot segments" }
                // The segment before the first slash is empty in origin-form ("/a"): fine.
                if segment.isEmpty && byte == slash && index > 0 { return "the request target contains an empty path segment (//)" }
                if byte == question { return nil }
                segmentStart = index + 1
            }
            index += 1
        }
        return nil
    }

    /// Percent-encodings in the path that common upstreams decode into something that routes
    /// differently: "%2F" (a slash to WSGI's PATH_INFO and older Go muxes), "%5C" (a backslash,
    /// a slash to WHATWG URL parsers), "%00", and "%25" (double encoding: "%252e" is a dot to a
    /// server that decodes twice). Dot escapes are handled with the segments.
    static func encodedProblem(_ path: UnsafeRawBufferPointer, at index: Int) -> String? {
        guard index + 2 < path.count else { return nil }
        let high = path[index + 1], low = path[index + 2] | 0x20
        switch (high, low) {
        case (UInt8(ascii: "2"), UInt8(ascii: "f")), (UInt8(ascii: "5"), UInt8(ascii: "c")):
            return "the request target encodes a slash or backslash (%2F, %5C), which some upstreams decode before routing"
        case (UInt8(ascii: "0"), UInt8(ascii: "0")):
            return "the request target encodes a NUL byte"
        case (UInt8(ascii: "2"), UInt8(ascii: "5")):
            return "the request target is percent-encoded twice (%25), which some upstreams decode twice"
        default:
            return nil
        }
    }

    /// An origin-form part with no path: an absolute-form target without one, which the
    /// upstream receives with "/" in front (RFC 9112 §3.2.1).
    static func isRootless(_ path: UnsafeRawBufferPointer) -> Bool {
        path.isEmpty || path[0] == UInt8(ascii: "?")
    }

    /// "." or ".." where each dot may be spelled "%2e" or "%2E".
    static func isDotSegment(_ segment: UnsafeRawBufferPointer) -> Bool {
        var dots = 0
        var index = 0
        while index < segment.count {
            if segment[index] == UInt8(ascii: ".") {
                index += 1
            } else if index + 3 <= segment.count, segment[index] == UInt8(ascii: "%"), segment[index + 1] == UInt8(ascii: "2"),
                      segment[index + 2] | 0x20 == UInt8(ascii: "e") {
                index += 3
            } else {
                return false
            }
            dots += 1
            if dots > 2 { return false }
        }
        return dots == 1 || dots == 2
    }
}
