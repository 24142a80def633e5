/// Redis Cluster key → hash slot (Redis Cluster specification, "Keys distribution model"):
/// CRC16 (XMODEM: polynomial 0x1021, initial value 0, no reflection) of the key modulo 16384,
/// where a key with a hash tag (`{…}`, the first `{` and the first `}` after it, at least one
/// byte between) hashes only the tag. idemproxy's keys are `prefix{sha256}`, so a record and
/// everything about it live on one slot.
public enum ClusterSlot {
    public static let count = 16384

    public static func of(_ key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
           let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            return Int(crc16(bytes[(open + 1)..<close]) % UInt16(count))
        }
        return Int(crc16(bytes[...]) % UInt16(count))
    }

    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}
