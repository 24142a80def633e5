import RedisClient
import Testing

/// RESP encoding of commands built in place.
struct RedisCommandTests {
    @Test func argumentsAreEncodedAsBulkStrings() {
        var command = RedisCommand(argumentCount: 4)
        command.append("SET")
        command.append([0x00, 0xFF])
        command.append(UInt64(1234567890))
        command.append("")
        #expect(command.isComplete)
        #expect(command.bytes == Array("*4\r\n$3\r\nSET\r\n$2\r\n".utf8) + [0x00, 0xFF] + Array("\r\n$10\r\n1234567890\r\n$0\r\n\r\n".utf8))
    }

    @Test func zeroAndMultiDigitCountsAreWrittenInDecimal() {
        var command = RedisCommand(argumentCount: 12)
        for _ in 0..<12 { command.append(UInt64(0)) }
        #expect(command.isComplete)
        #expect(command.bytes.starts(with: Array("*12\r\n$1\r\n0\r\n".utf8)))
    }

    /// The widest number fills the whole scratch buffer the digits are written into.
    @Test func theLargestNumberAndAnArgumentOfTenThousandBytesAreFramed() {
        var command = RedisCommand(argumentCount: 2, capacity: 16)
        command.append(UInt64.max)
        command.append([UInt8](repeating: 0x61, count: 10_000))
        #expect(command.isComplete)
        let expected = Array("*2\r\n$20\r\n18446744073709551615\r\n$10000\r\n".utf8) + [UInt8](repeating: 0x61, count: 10_000) + [13, 10]
        #expect(command.bytes == expected)
    }
}
