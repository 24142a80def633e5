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
    /// The method named `name` (as written in configuration), by the same classification
    /// the parser applies to request lines.
    public init(name: String) {
        var name = name
        self = name.withUTF8 { HTTPMethod.classify(UnsafeRawBufferPointer($0), 0..<$0.count) }
    }

    /// Classifies the method token `bytes[range]`, which the caller has already
    /// validated as a token. The token is compared as one little-endian word
    /// against the standard method names (methods are case-sensitive, so no
    /// folding), which keeps this to a switch and one or two compares.
    @inline(__always)
    static func classify(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPMethod {
        let count = range.count
        guard count >= 3 && count <= 7 else { return .other }
        let word = WordMatch.load(bytes, range.lowerBound, count)
        switch count {
        case 3:
            if word == 0x54_4547 { return .get }
            if word == 0x54_5550 { return .put }
        case 4:
            if word == 0x5453_4F50 { return .post }
            if word == 0x4441_4548 { return .head }
        case 5:
            if word == 0x48_4354_4150 { return .patch }
            if word == 0x45_4341_5254 { return .trace }
        case 6:
            if word == 0x4554_454C_4544 { return .delete }
        default:
            if word == 0x53_4E4F_4954_504F { return .options }
            if word == 0x54_4345_4E4E_4F43 { return .connect }
        }
        return .other
    }
}
