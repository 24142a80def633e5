/// The ways a fixture's bytes are delivered to the parser. A strict parser must
/// reach the same outcome whatever the segmentation, because an attacker
/// controls where TCP segments split.
enum Feeding: CustomStringConvertible {
    case whole
    case byteByByte
    case split(at: Int)

    func pieces(of input: [UInt8]) -> [[UInt8]] {
        switch self {
        case .whole:
            return [input]
        case .byteByByte:
            return input.map { [$0] }
        case .split(let offset):
            return [Array(input[..<offset]), Array(input[offset...])]
        }
    }

    var description: String {
        switch self {
        case .whole: return "whole"
        case .byteByByte: return "byte by byte"
        case .split(let offset): return "split at \(offset)"
        }
    }

    /// Whole, byte by byte, and split into two pieces at every offset.
    static func all(for count: Int) -> [Feeding] {
        [.whole, .byteByByte] + (1..<max(1, count)).map { .split(at: $0) }
    }
}
