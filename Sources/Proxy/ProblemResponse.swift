import HTTP1
import Idempotency

/// RFC 9457 problem responses the proxy itself generates. The `type` URIs are stable and
/// listed in the README; protocol errors that need no explanation beyond the status use
/// `about:blank` as RFC 9457 §4.2.1 recommends.
enum ProblemResponse {
    /// Writes a complete problem response; the body comes from `ProblemDetails`, so the proxy
    /// and the Idempotency module share one definition of every type, title and status.
    /// `extraFields` carries e.g. Retry-After.
    static func write(
        status: Int, type: ProblemType?, detail: String, close: Bool,
        extraFields: [(name: String, value: String)] = [], into out: inout [UInt8]
    ) {
        let body = type.map { ProblemDetails.json(type: $0, status: status, detail: detail) }
            ?? ProblemDetails.json(status: status, title: StatusReason.phrase(for: status), detail: detail)
        var fields: [(name: String, value: String)] = [("Content-Type", ProblemDetails.contentType)]
        fields.append(contentsOf: extraFields)
        body.withUnsafeBytes { raw in
            HeadWriter.writeResponse(status: status, reason: nil, fields: fields, body: raw, close: close, into: &out)
        }
    }

    /// JSON string escaping for the log lines the proxy builds as text: the same escaper the
    /// problem bodies and canonical JSON use.
    static func appendJSONString(_ text: String, to json: inout String) {
        var bytes: [UInt8] = []
        JSONString.write(text, into: &bytes)
        json += String(decoding: bytes, as: UTF8.self)
    }
}
