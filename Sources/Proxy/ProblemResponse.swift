import HTTP1

/// RFC 9457 problem details for the responses the proxy itself generates. The `type` URIs are
/// stable and listed in the README; protocol errors that need no explanation beyond the status
/// use `about:blank` as RFC 9457 §4.2.1 recommends.
enum ProblemResponse {
    static let typeBase = "https://idemproxy.dev/problems/"

    /// Writes a complete problem response. `extraFields` carries e.g. Retry-After.
    static func write(
        status: Int, type: String?, detail: String, close: Bool,
        extraFields: [(name: String, value: String)] = [], into out: inout [UInt8]
    ) {
        let title = StatusReason.phrase(for: status)
        var json = "{\"type\":\""
        json += type.map { typeBase + $0 } ?? "about:blank"
        json += "\",\"title\":"
        appendJSONString(title, to: &json)
        json += ",\"status\":\(status),\"detail\":"
        appendJSONString(detail, to: &json)
        json += "}"
        var fields: [(name: String, value: String)] = [("Content-Type", "application/problem+json")]
        fields.append(contentsOf: extraFields)
        var body = Array(json.utf8)
        body.withUnsafeMutableBytes { raw in
            HeadWriter.writeResponse(status: status, reason: nil, fields: fields, body: UnsafeRawBufferPointer(raw), close: close, into: &out)
        }
    }

    static func appendJSONString(_ text: String, to json: inout String) {
        json += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": json += "\\\""
            case "\\": json += "\\\\"
            case "\n": json += "\\n"
            case "\r": json += "\\r"
            case "\t": json += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    json += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    json.unicodeScalars.append(scalar)
                }
            }
        }
        json += "\""
    }
}
