import HTTP1
import Idempotency

/// The idempotency side of one guarded request: its key, the buffered request, its claim, and
/// the response captured for replay. A class because the request and captured body can be
/// large and must not be copied with the `Exchange` value.
final class GuardedExchange {
    enum Stage {
        /// Reading the body (bounded by `max_request_body`).
        case buffering
        /// Waiting for the store's answer to the claim.
        case claiming
        /// Parked under `concurrent: wait` until the owner settles or `wait_timeout` passes.
        case waiting
        /// We own the claim and the request is with the upstream.
        case forwarding
        /// The store was unreachable and the request went out unguarded (pass_through).
        case passThrough
        /// The record was completed, released or marked unknown (or never claimed).
        case settled
    }

    private(set) var policy: GuardPolicy
    /// The unquoted Idempotency-Key, as bytes (`takeKey`).
    private(set) var key: [UInt8] = []
    /// The request head bytes, copied out of the read buffer; `head`'s ranges index into it.
    private(set) var headBytes: [UInt8] = []
    private(set) var head = RequestHead()
    /// Where the key, scope and Content-Type lines are in `head`.
    private(set) var fields: GuardedFields
    var body: [UInt8] = []
    var stage: Stage = .buffering
    private(set) var owner: [UInt8]
    /// The storage key's bytes (`StorageKey.write`), in a buffer kept from request to request
    /// (and left as it is until the next key is written over it: same length, same prefix).
    private(set) var storageKeyBytes: [UInt8] = []
    private var hasStorageKey = false
    /// The same key as a String, made the first time it is needed: a replay from the memory
    /// store never needs it (`IdempotencyStore.claimNow(storageKey:...)`).
    private var storageKeyText: String?
    var fingerprint: [UInt8] = []
    /// A lease refresh found the record gone or owned by another request (counted once).
    var leaseLost = false
    var waitDeadline: UInt64 = 0
    var pollDelayMillis: UInt64 = 20

    // Response capture.
    var status = 0
    /// The field lines a replay will carry, already filtered (`ReplayFilter.appendStoredFieldLines`).
    /// It and `capturedBody` are copied into the stored response when the exchange settles, so
    /// both keep their capacity from one request to the next.
    var storedFieldLines: [UInt8] = []
    var capturedBody: [UInt8] = []
    var bodyOmitted = false

    /// Buffers up to this size are kept when the object is reused; larger ones are freed, so
    /// one large request does not pin its memory to the connection.
    static let keptCapacity = 16 * 1024

    init(policy: GuardPolicy, head: borrowing RequestHead, source: UnsafeRawBufferPointer, fields: GuardedFields, owner: [UInt8]) {
        self.policy = policy
        self.fields = fields
        self.owner = owner
        copyHead(head, source: source)
    }

    /// True once nothing can still act on this exchange: it owns no claim and waits for no
    /// store answer or owner. With no other reference left it may serve the next request.
    var isFinished: Bool {
        switch stage {
        case .settled, .passThrough, .buffering: return true
        case .claiming, .waiting, .forwarding: return false
        }
    }

    /// Prepares a finished exchange that nobody else references for a new request, keeping
    /// its head and body buffers (the caller checks `isFinished` and uniqueness).
    /// Serves a new request with this object. The owner token and the fingerprint are written
    /// into the previous request's buffers when nothing else holds them (a replay stored
    /// neither), so a replay allocates neither.
    func reuse(policy: GuardPolicy, head: borrowing RequestHead, source: UnsafeRawBufferPointer, fields: GuardedFields, ownerTokens: inout OwnerTokenSource) {
        self.policy = policy
        self.fields = fields
        ownerTokens.next(into: &owner)
        copyHead(head, source: source)
        if body.capacity > Self.keptCapacity { body = [] } else { body.removeAll(keepingCapacity: true) }
        stage = .buffering
        hasStorageKey = false
        storageKeyText = nil
        fingerprint.removeAll(keepingCapacity: true)
        leaseLost = false
        waitDeadline = 0
        pollDelayMillis = 20
        status = 0
        Self.empty(&storedFieldLines)
        Self.empty(&capturedBody)
        bodyOmitted = false
    }

    /// Called when its request is finished. The exchange stays with an idle keep-alive
    /// connection until the next guarded request, so a large request or response body must not
    /// stay with it: ten thousand idle clients must not each pin a megabyte.
    func releaseLargeBuffers() {
        guard isFinished else { return }
        if body.capacity > Self.keptCapacity { body = [] }
        // The response's buffers are copied into the stored record, so what they keep is only
        // spare room for the next response on this connection: a typical one's, no more.
        Self.empty(&capturedBody, keeping: Self.keptResponseCapacity)
        Self.empty(&storedFieldLines, keeping: Self.keptResponseCapacity)
    }

    static let keptResponseCapacity = 4 * 1024

    /// Empties a buffer, keeping its capacity unless it grew past `limit`.
    private static func empty(_ buffer: inout [UInt8], keeping limit: Int = keptCapacity) {
        // An empty buffer is left alone: emptying it again is a call and a uniqueness check.
        if buffer.capacity > limit { buffer = [] } else if !buffer.isEmpty { buffer.removeAll(keepingCapacity: true) }
    }

    /// Takes the request's parsed key from the connection's buffer, giving it this exchange's
    /// previous key buffer in exchange: swapped, so neither is copied and both keep their capacity.
    func takeKey(from parsed: inout [UInt8]) {
        swap(&key, &parsed)
    }

    /// Exchanges this request's head with `other` (the connection's, while the buffered request
    /// is forwarded); a second call swaps them back.
    func swapHead(with other: inout RequestHead) {
        swap(&head, &other)
    }

    /// Keeps the head: the read buffer it was parsed from is reused for the next read.
    private func copyHead(_ parsed: borrowing RequestHead, source: UnsafeRawBufferPointer) {
        if headBytes.capacity > Self.keptCapacity { headBytes = [] } else { headBytes.removeAll(keepingCapacity: true) }
        headBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: source[0..<parsed.headLength]))
        head.copyContents(of: parsed)
    }

    /// Computes the storage key from the request's key and, when the route has one, its scope.
    func setStorageKey(prefix: String) {
        let scoped = policy.scopeHeader != nil
        key.withUnsafeBytes { key in
            if scoped {
                withScope { StorageKey.write(prefix: prefix, scope: $0, key: key, into: &storageKeyBytes) }
            } else {
                StorageKey.write(prefix: prefix, scope: nil, key: key, into: &storageKeyBytes)
            }
        }
        hasStorageKey = true
        storageKeyText = nil
    }

    /// The storage key ("" until it is known).
    var storageKey: String {
        if let storageKeyText { return storageKeyText }
        guard hasStorageKey else { return "" }
        let text = String(decoding: storageKeyBytes, as: UTF8.self)
        storageKeyText = text
        return text
    }

    /// The storage key's digest, shortened, for the access log (`AccessLog.keyHashLength`);
    /// nil until the key is known.
    var keyHash: Substring? {
        hasStorageKey ? RecordLookup.keyHash(ofStorageKey: storageKey) : nil
    }

    /// True while a claim we own is outstanding and must still be completed or released.
    var ownsClaim: Bool { stage == .forwarding }

    func capture(_ data: UnsafeRawBufferPointer) {
        guard !bodyOmitted else { return }
        if capturedBody.count + data.count > policy.maxStoredBody {
            // Too large to replay: the client still gets all of it, retries get
            // replay-unavailable naming the original status.
            bodyOmitted = true
            Self.empty(&capturedBody)
            return
        }
        capturedBody.append(contentsOf: data)
    }

    /// The response as stored: one new buffer, the replay's own bytes.
    var storedResponse: StoredResponse {
        storedFieldLines.withUnsafeBytes { lines in
            capturedBody.withUnsafeBytes { body in
                StoredResponse(status: status, fieldLines: lines, body: bodyOmitted ? UnsafeRawBufferPointer(start: nil, count: 0) : body, bodyOmitted: bodyOmitted)
            }
        }
    }

    /// SHA-256 over method, target, the policy's fields and the body, all as the exact bytes
    /// received (SPEC §3): nothing is decoded as text, so obs-text bytes count.
    func computeFingerprint() {
        headBytes.withUnsafeBytes { source in head.fields.withUnsafeBufferPointer { fieldLines in
            let fieldsInHead = HeadFields(fields: fieldLines, source: source)
            let contentType = fields.contentType.map { UnsafeRawBufferPointer(rebasing: source[$0]) }
            let method = UnsafeRawBufferPointer(rebasing: source[head.methodRange])
            // The path and query the upstream receives: the same request in absolute-form
            // ("http://a/x", or "http://a?q" sent as "/?q") fingerprints as in origin-form.
            let origin = UnsafeRawBufferPointer(rebasing: source[HeadWriter.originForm(of: head.target, in: source)])
            guard TargetCheck.isRootless(origin) else {
                return Fingerprinter.fingerprint(
                    method: method, target: origin, fields: fieldsInHead, contentType: contentType, body: body, policy: policy.fingerprint,
                    into: &fingerprint)
            }
            ([UInt8(ascii: "/")] + origin).withUnsafeBytes { target in
                Fingerprinter.fingerprint(
                    method: method, target: target, fields: fieldsInHead, contentType: contentType, body: body, policy: policy.fingerprint,
                    into: &fingerprint)
            }
        } }
    }

    /// True when the scope header is present with a value that is not empty: an empty value
    /// identifies nobody, and every caller sending it would share one namespace (SPEC §3).
    var hasScope: Bool {
        guard let first = fields.scope.first else { return false }
        if fields.scope.count == 1 { return !first.isEmpty }
        var anyValue = false
        headBytes.withUnsafeBytes { source in
            head.forEachValue(ofField: policy.scopeHeader ?? "", in: source) { if !$0.isEmpty { anyValue = true } }
        }
        return anyValue
    }

    /// Calls `body` with the scope as hashed into the storage key: the value of the one
    /// scope line, or of several lines joined with ", " (RFC 9110 §5.3).
    func withScope<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        headBytes.withUnsafeBytes { source in
            if fields.scope.count == 1, let first = fields.scope.first {
                return body(UnsafeRawBufferPointer(rebasing: source[first]))
            }
            var joined: [UInt8] = []
            var firstLine = true
            head.forEachValue(ofField: policy.scopeHeader ?? "", in: source) { value in
                if !firstLine { joined.append(contentsOf: [0x2C, 0x20]) }
                firstLine = false
                joined.append(contentsOf: UnsafeRawBufferPointer(rebasing: source[value]))
            }
            return joined.withUnsafeBytes(body)
        }
    }
}

/// Where a guarded request's key, scope and Content-Type lines are, found in one pass over
/// its field lines (values index the head's bytes).
struct GuardedFields {
    struct Lines {
        var first: Range<Int>? = nil
        var count = 0

        mutating func add(_ value: Range<Int>) {
            if first == nil { first = value }
            count += 1
        }
    }

    var key = Lines()
    var scope = Lines()
    var contentType: Range<Int>? = nil

    init(head: borrowing RequestHead, source: UnsafeRawBufferPointer, policy: GuardPolicy) {
        // A name can only match a name of its own length, so the bytes are compared only then.
        let keyName = policy.keyHeaderBytes
        let scopeName = policy.scopeHeaderBytes ?? []
        for index in head.fields.indices {
            let field = head.fields[index]
            let length = field.name.count
            if length == keyName.count && head.field(index, isNamed: keyName, in: source) { key.add(field.value) }
            if length == scopeName.count && head.field(index, isNamed: scopeName, in: source) { scope.add(field.value) }
            if length == Self.contentType.count && contentType == nil && head.field(index, isNamed: Self.contentType, in: source) {
                contentType = field.value
            }
        }
    }

    private static let contentType: [UInt8] = Array("content-type".utf8)
}

/// The policy's fingerprint fields, read from the head where they are.
private struct HeadFields: FingerprintFields {
    /// The head's field lines (borrowed for the fingerprint's duration, so no array is retained).
    let fields: UnsafeBufferPointer<FieldRange>
    let source: UnsafeRawBufferPointer

    func forEachValue(named lowercasedName: [UInt8], _ body: (UnsafeRawBufferPointer) -> Void) {
        RequestHead.forEachValue(ofField: lowercasedName, among: fields, in: source) { body(UnsafeRawBufferPointer(rebasing: source[$0])) }
    }
}
