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
        appendLineEnd()
    }

    /// True when exactly the declared number of arguments was appended.
    public var isComplete: Bool { appended == declaredCount }

    public mutating func append(_ argument: UnsafeRawBufferPointer) {
        appended += 1
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(UInt64(argument.count))
        appendLineEnd()
        bytes.append(contentsOf: argument)
        appendLineEnd()
    }

    /// Appends `count` arguments already framed as RESP bulk strings (taken from another
    /// command's `bytes`), as they are.
    public mutating func appendFramed(_ framed: ArraySlice<UInt8>, count: Int) {
        appended += count
        bytes.append(contentsOf: framed)
    }

    public mutating func append(_ argument: [UInt8]) {
        argument.withUnsafeBytes { append($0) }
    }

    public mutating func append(_ argument: String) {
        var argument = argument
        argument.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    public mutating func append(_ number: UInt64) {
        Self.withDecimal(number) { append($0) }
    }

    // Two appends, not `append(contentsOf: [13, 10])`: the literal may become an array on the
    // heap for every call, and commands are built for every guarded request.
    private mutating func appendLineEnd() {
        bytes.append(13)
        bytes.append(10)
    }

    private mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        Self.withDecimal(value) { bytes.append(contentsOf: $0) }
    }

    /// Calls `body` with the decimal digits of `value`, written from the end of a scratch buffer
    /// on the stack. (Reversing digits appended to `bytes` through `bytes[start...]` copied
    /// the whole buffer on each call: the slice shares it, so it is not uniquely referenced.)
    private static func withDecimal<Result>(_ value: UInt64, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes; UInt64.max has 20 digits
        return withUnsafeMutableBytes(of: &digits) { raw in
            var value = value
            var index = raw.count
            repeat {
                index -= 1
                raw[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
            return body(UnsafeRawBufferPointer(rebasing: raw[index...]))
        }
    }
}
