import HTTP1

/// Binary encoding of `IdempotencyRecord`, stored as one Redis string value.
///
/// Everything the Redis Lua scripts must read or patch sits in a fixed
/// 69-byte header, so a script uses `string.byte`/`string.sub` (Lua strings
/// are 1-based: add 1 to each offset) and never parses the response.
///
/// | offset | size | field              | encoding                                          |
/// |-------:|-----:|--------------------|---------------------------------------------------|
/// |      0 |    1 | version            | `0x02` (`0x01` records, without `created at`, are still read) |
/// |      1 |    1 | state              | 1 in_flight, 2 completed, 3 unknown (`RecordState`) |
/// |      2 |   32 | fingerprint        | raw SHA-256 bytes                                 |
/// |     34 |   16 | owner token        | raw bytes                                         |
/// |     50 |    8 | lease deadline     | u64 big-endian; in flight only, see `leaseByExpiry` |
/// |     58 |    8 | created at         | u64 big-endian, Unix milliseconds of the claim    |
/// |     66 |    1 | flags              | bit 0: response present; bit 1: body omitted; other bits 0 |
/// |     67 |    2 | status             | u16 big-endian; 0 when no response                |
/// |     69 |    … | response section   | only when flag bit 0 is set, see below            |
///
/// A version 1 record has no `created at`: its flags, status and response
/// sit 8 bytes earlier (58, 59, 61). Such records were written before the
/// upgrade and are read (created at unknown) until they expire.
///
/// Response section:
///
///     varint  header count
///     per header: varint name length, name bytes,
///                 varint value length, value bytes (exactly as received)
///     varint  body length, then the body bytes (0 when the body was omitted)
///
/// Nothing may follow the body. The explicit body length costs at most
/// three bytes for a 1 MiB body and makes a truncated value fail to decode
/// instead of replaying a silently shortened body.
///
/// `varint` is unsigned LEB128: 7 bits per byte, least significant group
/// first, high bit set on every byte but the last; at most 10 bytes.
///
/// In Lua (1-based): `string.byte(v, 2)` is the state,
/// `string.sub(v, 35, 50)` the owner, `string.sub(v, 51, 58)` the deadline,
/// `string.sub(v, 59, 66)` the creation time (version 2).
/// Patching in place: `string.sub(v, 1, 1) .. string.char(3) .. string.sub(v, 3)`
/// marks a record unknown; the deadline is rebuilt from eight
/// `string.char(math.floor(ms / 256^k) % 256)` bytes (exact in Lua's doubles
/// for any ms below 2^53). A record without a response is exactly 69 bytes.
///
/// Size: 70 bytes + (2 + name + value) per header whose name and value are
/// each under 128 bytes + body length (2 bytes below 16 KiB) + body. A
/// 1,024-byte body with `Content-Type: application/json` encodes to 1,126
/// bytes.
public enum RecordCodec {
    public static let version: UInt8 = 2
    /// The layout before `created at`; decoded, never written.
    static let previousVersion: UInt8 = 1

    /// Byte offsets (0-based) of the fixed header fields.
    public enum Offset {
        public static let version = 0
        public static let state = 1
        public static let fingerprint = 2
        public static let owner = 34
        public static let leaseDeadline = 50
        public static let createdAt = 58
        public static let flags = 66
        public static let status = 67
        public static let response = 69
    }

    /// Field lengths of the fixed header.
    public static let fingerprintLength = 32
    public static let ownerLength = 16
    public static let leaseDeadlineLength = 8
    /// Set in an in-flight record's deadline field when the lease is carried by the key's own
    /// expiry (Redis): the other 63 bits are the time the key outlives its lease, so the lease
    /// runs while the key has more than that left. Without it the field is an absolute deadline
    /// (the memory store's monotonic clock, or Redis `TIME` for records of earlier versions),
    /// which an earlier version reading a new record takes to be centuries away: it answers
    /// "in flight" rather than ever executing the request a second time.
    public static let leaseByExpiry: UInt64 = 1 << 63
    /// Size of the fixed header; also the size of a record without response.
    public static let headerLength = 69
    /// How much shorter a version 1 header is (no `created at`).
    static let previousVersionShift = 8

    public enum Flag {
        public static let hasResponse: UInt8 = 0x01
        public static let bodyOmitted: UInt8 = 0x02
        static let known: UInt8 = hasResponse | bodyOmitted
    }

    /// Encodes `record`. The fingerprint and owner must have their fixed
    /// lengths; anything else is a programming error.
    public static func encode(_ record: IdempotencyRecord) -> [UInt8] {
        precondition(record.fingerprint.count == fingerprintLength, "fingerprint must be 32 bytes")
        precondition(record.owner.count == ownerLength, "owner token must be 16 bytes")
        var out: [UInt8] = []
        let section = responseSectionLength(record.response)
        out.reserveCapacity(Offset.flags + section.length)
        out.append(version)
        out.append(record.state.rawValue)
        out.append(contentsOf: record.fingerprint)
        out.append(contentsOf: record.owner)
        appendUInt64(record.leaseDeadlineMillis, to: &out)
        appendUInt64(record.createdAtMillis, to: &out)
        appendResponseSection(record.response, fieldCount: section.fieldCount, to: &out)
        return out
    }

    /// The bytes from `Offset.flags` on (flags, status, fields, body): what a completion sends to
    /// Redis, whose script keeps the stored header (fingerprint, owner, creation time).
    public static func encodeResponseSection(_ response: StoredResponse) -> [UInt8] {
        var out: [UInt8] = []
        let section = responseSectionLength(response)
        out.reserveCapacity(section.length)
        appendResponseSection(response, fieldCount: section.fieldCount, to: &out)
        return out
    }

    /// Exactly what `appendResponseSection` writes, so the output is allocated once, and the
    /// number of fields it writes (counted in the same pass over the stored lines).
    private static func responseSectionLength(_ response: StoredResponse?) -> (length: Int, fieldCount: Int) {
        guard let response else { return (3, 0) }
        var length = 3 + varintLength(response.bodyCount) + response.bodyCount
        var fields = 0
        response.forEachField { name, value in
            length += varintLength(name.count) + name.count + varintLength(value.count) + value.count
            fields += 1
        }
        return (length + varintLength(fields), fields)
    }

    private static func appendResponseSection(_ response: StoredResponse?, fieldCount: Int, to out: inout [UInt8]) {
        guard let response else {
            out.append(0)
            out.append(0)  // status, two bytes
            out.append(0)
            return
        }
        out.append(Flag.hasResponse | (response.bodyOmitted ? Flag.bodyOmitted : 0))
        let status = UInt16(clamping: response.status)
        out.append(UInt8(status >> 8))
        out.append(UInt8(status & 0xFF))
        appendVarint(fieldCount, to: &out)
        response.forEachField { name, value in
            appendVarint(name.count, to: &out)
            name.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) }
            appendVarint(value.count, to: &out)
            value.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) }
        }
        appendVarint(response.bodyCount, to: &out)
        response.withBody { body in body.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) } }
    }

    private static func varintLength(_ value: Int) -> Int {
        var v = UInt64(value), length = 1
        while v >= 0x80 { v >>= 7; length += 1 }
        return length
    }

    public static func decode(_ bytes: [UInt8]) throws(RecordCodecError) -> IdempotencyRecord {
        let result = bytes.withUnsafeBytes { decodeResult($0) }
        return try result.get()
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(RecordCodecError) -> IdempotencyRecord {
        try decodeResult(bytes).get()
    }

    private static func decodeResult(_ bytes: UnsafeRawBufferPointer) -> Result<IdempotencyRecord, RecordCodecError> {
        Result { () throws(RecordCodecError) -> IdempotencyRecord in
            guard bytes.count > Offset.version else { throw .truncated(expected: headerLength, found: bytes.count) }
            let version = bytes[Offset.version]
            guard version == Self.version || version == previousVersion else { throw .unsupportedVersion(version) }
            // Offsets past the lease deadline move back by 8 in a version 1 record.
            let shift = version == previousVersion ? previousVersionShift : 0
            let header = headerLength - shift
            guard bytes.count >= header else { throw .truncated(expected: header, found: bytes.count) }
            guard let state = RecordState(rawValue: bytes[Offset.state]) else {
                throw .invalidState(bytes[Offset.state])
            }
            let fingerprint = Array(bytes[Offset.fingerprint..<Offset.owner])
            let owner = Array(bytes[Offset.owner..<Offset.leaseDeadline])
            var deadline: UInt64 = 0
            for byte in bytes[Offset.leaseDeadline..<Offset.createdAt] { deadline = deadline << 8 | UInt64(byte) }
            var createdAt: UInt64 = 0
            if shift == 0 {
                for byte in bytes[Offset.createdAt..<Offset.flags] { createdAt = createdAt << 8 | UInt64(byte) }
            }
            let flags = bytes[Offset.flags - shift]
            guard flags & ~Flag.known == 0 else { throw .invalidFlags(flags) }
            var record = IdempotencyRecord(
                state: state, fingerprint: fingerprint, owner: owner, leaseDeadlineMillis: deadline,
                createdAtMillis: createdAt)
            guard flags & Flag.hasResponse != 0 else {
                guard flags == 0 else { throw .invalidFlags(flags) }
                guard bytes.count == header else { throw .trailingBytes(bytes.count - header) }
                return record
            }
            let status = Int(bytes[Offset.status - shift]) << 8 | Int(bytes[Offset.status - shift + 1])
            var reader = Reader(bytes: bytes, index: Offset.response - shift)
            let headerCount = try reader.varint()
            // Each header needs at least its two length bytes; refuse counts
            // the input cannot hold before reserving memory for them.
            guard headerCount <= reader.remaining / 2 else { throw .lengthOutOfRange(offset: Offset.response - shift) }
            var ranges: [(name: Range<Int>, value: Range<Int>)] = []
            ranges.reserveCapacity(headerCount)
            var linesCount = 0
            for _ in 0..<headerCount {
                let nameOffset = reader.index
                let name = try reader.field()
                let value = try reader.field()
                // A replay writes these bytes to clients as they are: a name must be a token
                // and a value field-value bytes (RFC 9110 §5.1, §5.5), or a record altered in
                // the store could split the replayed response.
                guard FieldSyntax.isName(UnsafeRawBufferPointer(rebasing: bytes[name])),
                    FieldSyntax.isValue(UnsafeRawBufferPointer(rebasing: bytes[value]))
                else { throw .invalidField(offset: nameOffset) }
                ranges.append((name, value))
                linesCount += name.count + value.count + 4
            }
            let bodyLength = try reader.varint()
            guard bodyLength == reader.remaining else {
                throw bodyLength < reader.remaining
                    ? .trailingBytes(reader.remaining - bodyLength)
                    : .truncated(expected: reader.index + bodyLength, found: bytes.count)
            }
            record.response = StoredResponse(
                status: status, body: UnsafeRawBufferPointer(rebasing: bytes[reader.index...]),
                bodyOmitted: flags & Flag.bodyOmitted != 0, fieldLinesCount: linesCount
            ) { out in
                for (name, value) in ranges {
                    HeadWriter.appendField(
                        name: UnsafeRawBufferPointer(rebasing: bytes[name]), value: UnsafeRawBufferPointer(rebasing: bytes[value]), into: &out)
                }
            }
            return record
        }
    }

    private static func appendUInt64(_ value: UInt64, to out: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    static func appendVarint(_ value: Int, to out: inout [UInt8]) {
        var v = UInt64(value)
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Bounds-checked cursor over the response section.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index: Int

        var remaining: Int { bytes.count - index }

        mutating func varint() throws(RecordCodecError) -> Int {
            let start = index
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < bytes.count else { throw .truncated(expected: index + 1, found: bytes.count) }
                let byte = bytes[index]
                index += 1
                // The tenth byte may only hold the top bit of a UInt64.
                guard shift < 63 || byte <= 1 else { throw .lengthOutOfRange(offset: start) }
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { break }
                shift += 7
            }
            guard value <= UInt64(Int.max) else { throw .lengthOutOfRange(offset: start) }
            return Int(value)
        }

        /// The range of the next length-prefixed field.
        mutating func field() throws(RecordCodecError) -> Range<Int> {
            let start = index
            let length = try varint()
            guard length <= remaining else { throw .lengthOutOfRange(offset: start) }
            defer { index += length }
            return index..<index + length
        }
    }
}

/// Why stored bytes are not a record. Operators see it through
/// `StoreError.corrupt`, so each case names what was wrong and where.
public enum RecordCodecError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(expected: Int, found: Int)
    case unsupportedVersion(UInt8)
    case invalidState(UInt8)
    case invalidFlags(UInt8)
    case lengthOutOfRange(offset: Int)
    case trailingBytes(Int)
    case invalidField(offset: Int)

    public var description: String {
        switch self {
        case .truncated(let expected, let found):
            return "record truncated: needs at least \(expected) bytes, has \(found)"
        case .unsupportedVersion(let v): return "unsupported record version \(v)"
        case .invalidState(let s): return "invalid record state \(s)"
        case .invalidFlags(let f): return "invalid record flags 0x\(String(f, radix: 16))"
        case .lengthOutOfRange(let offset): return "length at offset \(offset) exceeds the record"
        case .trailingBytes(let n): return "\(n) unexpected bytes after the end of the record"
        case .invalidField(let offset): return "the field at offset \(offset) is not a valid field line"
        }
    }
}
