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

    let policy: GuardPolicy
    let key: String
    /// The request head bytes, copied out of the read buffer; `head`'s ranges index into it.
    let headBytes: [UInt8]
    let head: RequestHead
    var body: [UInt8] = []
    var stage: Stage = .buffering
    let owner: [UInt8]
    var storageKey = ""
    var fingerprint: [UInt8] = []
    /// A lease refresh found the record gone or owned by another request (counted once).
    var leaseLost = false
    var waitDeadline: UInt64 = 0
    var pollDelayMillis: UInt64 = 20

    // Response capture.
    var status = 0
    var responseHeaders: [HeaderPair] = []
    var capturedBody: [UInt8] = []
    var bodyOmitted = false

    init(policy: GuardPolicy, key: String, headBytes: [UInt8], head: RequestHead, owner: [UInt8]) {
        self.owner = owner
        self.policy = policy
        self.key = key
        self.headBytes = headBytes
        self.head = head
    }

    /// The storage key's digest, shortened, for the access log (`AccessLog.keyHashLength`);
    /// nil until the key is known.
    var keyHash: Substring? {
        storageKey.isEmpty ? nil : RecordLookup.keyHash(ofStorageKey: storageKey)
    }

    /// True while a claim we own is outstanding and must still be completed or released.
    var ownsClaim: Bool { stage == .forwarding }

    func capture(_ data: UnsafeRawBufferPointer) {
        guard !bodyOmitted else { return }
        if capturedBody.count + data.count > policy.maxStoredBody {
            // Too large to replay: the client still gets all of it, retries get
            // replay-unavailable naming the original status.
            bodyOmitted = true
            capturedBody = []
            return
        }
        capturedBody.append(contentsOf: data)
    }

    var storedResponse: StoredResponse {
        StoredResponse(
            status: status,
            headers: HeaderPair.compacted(ReplayFilter.headersToStore(responseHeaders: responseHeaders, keepHeaders: policy.keepHeaders)),
            body: bodyOmitted ? [] : capturedBody, bodyOmitted: bodyOmitted)
    }

    /// SHA-256 over method, target, the policy's fields and the body, all as the exact bytes
    /// received (SPEC §3): nothing is decoded as text, so obs-text bytes count.
    func computeFingerprint() -> [UInt8] {
        var fields: [(name: [UInt8], value: ArraySlice<UInt8>)] = []
        for (name, nameBytes) in zip(policy.fingerprintHeaderNames, policy.fingerprint.lowercasedHeaderBytes) {
            for value in values(of: name) { fields.append((nameBytes, value)) }
        }
        let contentType = values(of: "content-type").first
        return headBytes.withUnsafeBytes { source in
            // The path and query the upstream receives: the same request in absolute-form
            // ("http://a/x", or "http://a?q" sent as "/?q") fingerprints as in origin-form.
            let origin = UnsafeRawBufferPointer(rebasing: source[HeadWriter.originForm(of: head.target, in: source)])
            let fingerprint = { [self] (target: UnsafeRawBufferPointer) in
                Fingerprinter.fingerprint(
                    method: UnsafeRawBufferPointer(rebasing: source[head.methodRange]), target: target,
                    headers: fields, contentType: contentType, body: body, policy: policy.fingerprint)
            }
            return TargetCheck.isRootless(origin) ? ([UInt8(ascii: "/")] + origin).withUnsafeBytes(fingerprint) : fingerprint(origin)
        }
    }

    /// Raw values of every field line named `lowercasedName`.
    func values(of lowercasedName: String) -> [ArraySlice<UInt8>] {
        headBytes.withUnsafeBytes { head.values(ofField: lowercasedName, in: $0) }.map { headBytes[$0] }
    }
}
