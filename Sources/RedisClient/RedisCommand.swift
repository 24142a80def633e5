/// A command already in RESP form ("*3\r\n$3\r\nSET\r\n…"), built by appending arguments
/// straight into one buffer: no array of arguments, no pointer table, one allocation. hiredis
/// takes it as is (`redisAsyncFormattedCommand`).
public struct RedisCommand: Sendable {
    public private(set) var bytes: [UInt8] = []
    private let declaredCount: Int
    private var appended = 0

    public init(argumentCount: Int, capacity: Int = 256) {
        declaredCount = argumentCount
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "*"))
        appendDecimal(UInt64(argumentCount))
        bytes.append(contentsOf: [13, 10])
    }

    /// True when exactly the declared number of arguments was appended.
    public var isComplete: Bool { appended == declaredCount }

    public mutating func append(_ argument: UnsafeRawBufferPointer) {
        appended += 1
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(UInt64(argument.count))
        bytes.append(contentsOf: [13, 10])
        bytes.append(contentsOf: argument)
        bytes.append(contentsOf: [13, 10])
    }

    public mutating func append(_ argument: [UInt8]) {
        argument.withUnsafeBytes { append($0) }
    }

    public mutating func append(_ argument: String) {
        var argument = argument
        argument.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    public mutating func append(_ number: UInt64) {
        var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes of scratch
        let count = withUnsafeMutableBytes(of: &digits) { raw -> Int in
            var value = number
            var index = raw.count
            repeat {
                index -= 1
                raw[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
            let length = raw.count - index
            append(UnsafeRawBufferPointer(rebasing: raw[index...]))
            return length
        }
        _ = count
    }

    private mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        let start = bytes.count
        var value = value
        while value > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(value % 10))
            value /= 10
        }
        bytes[start...].reverse()
    }
}
