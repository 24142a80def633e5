import Synchronization

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

/// The upstream's response as kept for replay. Stripe-style: status,
/// selected headers and body of the first execution, "regardless of whether
/// it succeeds or fails".
public struct StoredResponse: Sendable, Equatable {
    // Changing a field drops the bytes built from the old ones (a copy shares the box).
    public var status: Int { didSet { serialized = SerializedReplay() } }
    /// Already filtered by `ReplayFilter.storedFields`.
    public var headers: [HeaderPair] { didSet { serialized = SerializedReplay() } }
    /// Empty when `bodyOmitted`.
    public var body: [UInt8] { didSet { serialized = SerializedReplay() } }
    /// The response exceeded `max_stored_body`: it was delivered to the
    /// original client but cannot be replayed (`replay-unavailable`).
    public var bodyOmitted: Bool { didSet { serialized = SerializedReplay() } }
    /// The replay's bytes as the proxy writes them, built at the first replay and shared by
    /// every copy of this response (store entries, cached records): a later replay copies them
    /// out in one piece instead of formatting the head again. Not part of equality.
    public private(set) var serialized = SerializedReplay()

    /// Whether a replay keeps its bytes in `serialized`: only for bodies up to
    /// `SerializedReplay.maxBodyBytes`, where formatting the head is a real part of the cost and
    /// a second copy is small. A larger body is written straight into the output each time.
    public var keepsSerializedReplay: Bool { body.count <= SerializedReplay.maxBodyBytes }

    /// What `serialized` will hold once built (the body and a head: status line, the stored
    /// field lines, `Idempotent-Replayed`, `Content-Length`), or 0 when it is never built.
    /// Stores count it against their bounds.
    public var serializedSizeEstimate: Int {
        keepsSerializedReplay ? body.count + headers.reduce(96) { $0 + $1.name.count + $1.value.count + 4 } : 0
    }

    /// The bytes this response keeps alive, as the stores count them against their bounds: the
    /// body, each field line plus `perFieldOverhead` (its slices and array slot), and the replay
    /// bytes once built.
    public func retainedBytes(perFieldOverhead: Int) -> Int {
        body.count + headers.reduce(0) { $0 + $1.name.count + $1.value.count + perFieldOverhead } + serializedSizeEstimate
    }

    public init(status: Int, headers: [HeaderPair] = [], body: [UInt8] = [], bodyOmitted: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bodyOmitted = bodyOmitted
    }

    public static func == (a: StoredResponse, b: StoredResponse) -> Bool {
        a.status == b.status && a.headers == b.headers && a.body == b.body && a.bodyOmitted == b.bodyOmitted
    }
}

/// Bytes built once from a `StoredResponse` and kept with it. Any worker may replay a record
/// of the memory store, so the slot is locked (uncontended: one lock per replay).
public final class SerializedReplay: Sendable {
    public static let maxBodyBytes = 4096
    private let bytes = Mutex<[UInt8]?>(nil)

    public init() {}

    /// The bytes, built by `build` the first time.
    public func get(orBuild build: () -> [UInt8]) -> [UInt8] {
        if let built = bytes.withLock({ $0 }) { return built }
        let built = build()
        bytes.withLock { $0 = built }
        return built
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
