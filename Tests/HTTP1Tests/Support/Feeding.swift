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

    /// Whole, byte by byte, and split into two pieces at every offset. Very long
    /// inputs are split at a bounded set of offsets (all of the first and last
    /// 64 bytes plus an even spread) to keep the suite fast.
    static func all(for count: Int) -> [Feeding] {
        var modes: [Feeding] = [.whole, .byteByByte]
        guard count > 1 else { return modes }
        if count <= 400 {
            modes += (1..<count).map { .split(at: $0) }
        } else {
            var offsets = Set(1..<65)
            offsets.formUnion((count - 64)..<count)
            offsets.formUnion(stride(from: 65, to: count - 64, by: max(1, count / 128)))
            modes += offsets.sorted().map { .split(at: $0) }
        }
        return modes
    }
}
