import Synchronization

import HTTP1

/// Lifecycle of one idempotency record (SPEC §4).
///
///     (none) ──claim──▶ inFlight ──complete──▶ completed
///                          │ ├──release──▶ (none)         safe to retry
///                          │ └──markUnknown──▶ unknown     request sent, no answer
///                          └──lease expired──▶ unknown (hold) | (none) (release)
///
/// The raw values are the byte stored at offset 1 of an encoded record
/// (`RecordCodec`), which the Redis Lua scripts read and patch.
public enum RecordState: UInt8, Sendable, Equatable, CaseIterable {
    /// Claimed by an owner whose upstream exchange is running.
    case inFlight = 1
    /// The upstream answered; the response is stored for replay.
    case completed = 2
    /// The request may or may not have executed upstream. Retrying with
    /// the same key is refused, and a new key is not safe either.
    case unknown = 3
}

/// One response field line as stored for replay: the exact bytes received. Field values may
/// carry obs-text (RFC 9110 §5.5), which is not UTF-8; decoding them as text would replay
/// U+FFFD in place of the original bytes.
///
/// Name and value are slices, usually of one buffer holding all the stored fields
/// (`ReplayFilter.storedFields`) or of the stored record, so capturing a response costs one
/// allocation for the bytes, not two per field.
public struct HeaderPair: Sendable, Equatable, Hashable {
    public var name: ArraySlice<UInt8>
    public var value: ArraySlice<UInt8>

    public init(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>) {
        self.name = name
        self.value = value
    }

    public init(name: [UInt8], value: [UInt8]) {
        self.init(name: name[...], value: value[...])
    }

    public init(name: String, value: String) {
        self.init(name: Array(name.utf8)[...], value: Array(value.utf8)[...])
    }

    /// The name as text (field names are tokens, so ASCII).
    public var nameText: String { String(decoding: name, as: UTF8.self) }
}

/// The upstream's response as kept for replay. Stripe-style: status, selected headers and body
/// of the first execution, "regardless of whether it succeeds or fails".
///
/// It is kept as the replay itself: one buffer holding the response exactly as a replay writes
/// it to an HTTP/1.1 keep-alive client (status line, the stored field lines as received,
/// `Idempotent-Replayed: true`, `Content-Length`, the blank line, the body). A replay is one
/// copy of those bytes, and a stored response is one allocation, whatever its number of fields.
/// Status, fields and body are read back out of the buffer; the field lines are written as
/// `name: value` from validated fields (no CR or LF in a value, no colon in a name), so reading
/// them back is exact.
public struct StoredResponse: Sendable, Equatable {
    public var status: Int {
        get { Int(storedStatus) }
        set { self = StoredResponse(status: newValue, headers: headers, body: body, bodyOmitted: bodyOmitted) }
    }
    /// The response exceeded `max_stored_body`: it was delivered to the original client but
    /// cannot be replayed (`replay-unavailable`). Its body is then empty.
    public var bodyOmitted: Bool
    /// The stored field lines (already filtered by `ReplayFilter`), as name/value pairs sliced
    /// out of the buffer.
    public var headers: [HeaderPair] {
        get {
            var pairs: [HeaderPair] = []
            forEachFieldRange { name, value in pairs.append(HeaderPair(name: bytes[name], value: bytes[value])) }
            return pairs
        }
        set { self = StoredResponse(status: status, headers: newValue, body: body, bodyOmitted: bodyOmitted) }
    }
    /// Empty when `bodyOmitted`. A copy: `bodyCount` and `withBody` read it in place.
    public var body: [UInt8] {
        get { Array(bytes[bodyStart...]) }
        set { self = StoredResponse(status: status, headers: headers, body: newValue, bodyOmitted: bodyOmitted) }
    }

    /// The replay for a keep-alive HTTP/1.1 client, then (for a status that has no content,
    /// RFC 9110 §6.4.1) the body the upstream sent anyway, which a replay never writes.
    private var bytes: [UInt8]
    // Offsets into `bytes`, 32-bit: a stored body is at most 1 GiB (`max_stored_body`), and a
    // memory-store record carries these inline in its table slot.
    /// The stored field lines are `bytes[fieldsStart..<fieldsEnd]`; `Idempotent-Replayed`
    /// follows them.
    private var fieldsStartOffset: UInt32
    private var fieldsEndOffset: UInt32
    /// Where the head's blank line ends.
    private var bodyStartOffset: UInt32
    /// Where the replay ends: the end of the bytes, or `bodyStart` when the status has no content.
    private var replayEndOffset: UInt32
    private var storedStatus: UInt16

    private var fieldsStart: Int { Int(fieldsStartOffset) }
    private var fieldsEnd: Int { Int(fieldsEndOffset) }
    private var bodyStart: Int { Int(bodyStartOffset) }
    private var replayEnd: Int { Int(replayEndOffset) }

    public init(status: Int, headers: [HeaderPair] = [], body: [UInt8] = [], bodyOmitted: Bool = false) {
        let linesCount = headers.reduce(0) { $0 + $1.name.count + $1.value.count + 4 }
        self = body.withUnsafeBytes { body in
            StoredResponse(status: status, body: body, bodyOmitted: bodyOmitted, fieldLinesCount: linesCount) { out in
                for field in headers { HeadWriter.appendField(name: field.name, value: field.value, into: &out) }
            }
        }
    }

    /// From field lines already written as `name: value\r\n` (`ReplayFilter.appendStoredFieldLines`),
    /// so the proxy's capture is copied once, into the buffer. The lines must come from
    /// validated fields: a name without colon, CR or LF, a value without CR or LF.
    public init(status: Int, fieldLines: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, bodyOmitted: Bool = false) {
        self.init(status: status, body: body, bodyOmitted: bodyOmitted, fieldLinesCount: fieldLines.count) { out in
            fieldLines.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) }
        }
    }

    /// The buffer written in one pass: `writeFieldLines` appends about `fieldLinesCount` bytes
    /// of field lines (`RecordCodec` writes them from a record's fields as it checks them).
    init(
        status: Int, body: UnsafeRawBufferPointer, bodyOmitted: Bool, fieldLinesCount: Int,
        writeFieldLines: (inout [UInt8]) -> Void
    ) {
        // A status is three digits (RFC 9110 §15); the clamp only keeps a caller's mistake
        // from trapping here.
        storedStatus = UInt16(clamping: status)
        self.bodyOmitted = bodyOmitted
        var bytes: [UInt8] = []
        // Status line, Idempotent-Replayed, Content-Length and the blank line: at most 113 bytes
        // (the longest reason phrase is 31, a length at most 20 digits).
        bytes.reserveCapacity(fieldLinesCount + body.count + 113)
        var fieldsStart = 0, fieldsEnd = 0
        HeadWriter.writeResponse(status: status, extra: Self.replayedField, body: body, close: false, into: &bytes) { out in
            fieldsStart = out.count
            writeFieldLines(&out)
            fieldsEnd = out.count
        }
        let replayEnd = bytes.count
        let bodyWritten = HeadWriter.responseHasContent(status: status)
        if !bodyWritten { body.withMemoryRebound(to: UInt8.self) { bytes.append(contentsOf: $0) } }
        replayEndOffset = UInt32(replayEnd)
        bodyStartOffset = UInt32(bodyWritten ? bytes.count - body.count : replayEnd)
        fieldsStartOffset = UInt32(fieldsStart)
        fieldsEndOffset = UInt32(fieldsEnd)
        self.bytes = bytes
    }

    static let replayedField: [(name: String, value: String)] = [("Idempotent-Replayed", "true")]

    /// The body's length, without copying it.
    public var bodyCount: Int { bytes.count - bodyStart }

    /// The body in place.
    public func withBody<R>(_ read: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { try read(UnsafeRawBufferPointer(rebasing: $0[bodyStart...])) }
    }

    /// Calls `visit` with the ranges of each stored field's name and value in the buffer, in order.
    private func forEachFieldRange(_ visit: (Range<Int>, Range<Int>) -> Void) {
        bytes.withUnsafeBufferPointer { buffer in
            var index = fieldsStart
            while index < fieldsEnd {
                var colon = index
                while buffer[colon] != UInt8(ascii: ":") { colon += 1 }
                var lineEnd = colon + 2
                while buffer[lineEnd] != UInt8(ascii: "\r") { lineEnd += 1 }
                visit(index..<colon, colon + 2..<lineEnd)
                index = lineEnd + 2
            }
        }
    }

    /// Each stored field's name and value bytes, in order, read in place.
    public func forEachField(_ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeBytes { raw in
            forEachFieldRange { name, value in
                visit(UnsafeRawBufferPointer(rebasing: raw[name]), UnsafeRawBufferPointer(rebasing: raw[value]))
            }
        }
    }

    /// How many fields are stored.
    public var fieldCount: Int {
        var count = 0
        forEachFieldRange { _, _ in count += 1 }
        return count
    }

    /// What a replay writes to an HTTP/1.1 client whose connection stays open without being
    /// told so: the stored bytes as they are.
    public var keepAliveReplay: ArraySlice<UInt8> { bytes[..<replayEnd] }

    /// A replay that must name its connection's fate, `Connection: close` or (to an HTTP/1.0
    /// client, RFC 9112 §9.3) `Connection: keep-alive`: the stored head, that field, the body.
    public func writeReplay(connectionField: StaticString, into out: inout [UInt8]) {
        out.append(contentsOf: bytes[..<(bodyStart - 2)])  // the head without its blank line
        connectionField.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: "\r\n\r\n".utf8)
        out.append(contentsOf: bytes[bodyStart..<replayEnd])
    }

    /// The bytes this response keeps alive, as the stores count them against their bounds.
    public var storedBytes: Int { bytes.capacity + MemoryLayout<Self>.size }

    public static func == (a: StoredResponse, b: StoredResponse) -> Bool {
        a.storedStatus == b.storedStatus && a.bodyOmitted == b.bodyOmitted && a.bytes == b.bytes
    }
}

/// What the store keeps under one storage key.
public struct IdempotencyRecord: Sendable, Equatable {
    public var state: RecordState
    /// SHA-256 request fingerprint (`Fingerprinter`), 32 bytes.
    public var fingerprint: [UInt8]
    /// Random token of the claim's owner (`OwnerToken`), 16 bytes. Every
    /// transition out of `inFlight` compares it, so a stale owner (paused
    /// past its lease, say) can never overwrite a newer owner's record.
    public var owner: [UInt8]
    /// Absolute lease deadline in milliseconds of the store's clock
    /// (monotonic for the memory store, Redis `TIME` for Redis). Only
    /// meaningful while `inFlight`.
    public var leaseDeadlineMillis: UInt64
    /// When the claim was made, in Unix milliseconds (wall clock: Redis `TIME`, or the proxy's
    /// for the memory store); 0 when unknown (a record written before this was kept). For
    /// operators only (SPEC §8 `created_at`); nothing decides by it.
    public var createdAtMillis: UInt64
    /// Present exactly when `state == .completed`.
    public var response: StoredResponse?

    public init(
        state: RecordState, fingerprint: [UInt8], owner: [UInt8], leaseDeadlineMillis: UInt64,
        createdAtMillis: UInt64 = 0, response: StoredResponse? = nil
    ) {
        self.state = state
        self.fingerprint = fingerprint
        self.owner = owner
        self.leaseDeadlineMillis = leaseDeadlineMillis
        self.createdAtMillis = createdAtMillis
        self.response = response
    }

    /// Whether an in-flight claim's lease has run out at `nowMillis`.
    public func leaseExpired(atMillis nowMillis: UInt64) -> Bool {
        state == .inFlight && leaseDeadlineMillis <= nowMillis
    }
}
