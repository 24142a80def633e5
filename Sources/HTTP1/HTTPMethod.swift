/// The request method, recognised from the bytes of the request line.
///
/// Methods are case-sensitive (RFC 9110 §9.1), so `get` is not `GET`: it is a
/// syntactically valid token that simply is not one of the standard methods and
/// is therefore reported as `.other`. The exact bytes stay available through
/// `RequestHead.methodRange`, which is what the serializer copies, so `.other`
/// methods are forwarded unchanged.
public enum HTTPMethod: Sendable, Equatable {
    case get, head, post, put, delete, patch, options, connect, trace, other
}

extension HTTPMethod {
    /// Classifies the method token `bytes[range]`, which the caller has already
    /// validated as a token. Comparing by length first keeps this to a handful of
    /// byte compares on the hot path, with no String created.
    @inline(__always)
    static func classify(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPMethod {
        let s = range.lowerBound
        @inline(__always) func eq(_ literal: StaticString) -> Bool {
            literal.withUTF8Buffer { lit in
                for i in 0..<lit.count where bytes[s + i] != lit[i] { return false }
                return true
            }
        }
        switch range.count {
        case 3:
            if eq("GET") { return .get }
            if eq("PUT") { return .put }
        case 4:
            if eq("POST") { return .post }
            if eq("HEAD") { return .head }
        case 5:
            if eq("PATCH") { return .patch }
            if eq("TRACE") { return .trace }
        case 6:
            if eq("DELETE") { return .delete }
        case 7:
            if eq("OPTIONS") { return .options }
            if eq("CONNECT") { return .connect }
        default:
            break
        }
        return .other
    }
}
