/// Chooses which upstream response fields are stored for replay.
public enum ReplayFilter {
    /// Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the
    /// response, so they are never stored: `Connection`, `Keep-Alive`,
    /// `Proxy-Connection` (non-standard but still sent), `TE`, `Trailer`,
    /// `Transfer-Encoding`, `Upgrade`. `Content-Length` is dropped too
    /// because a replay is re-framed from the stored body (RFC 9112 §6).
    static let neverStored: [String] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "content-length",
    ]

    static let droppedByDefault: [String] = ["set-cookie"]

    public static func headersToStore(responseHeaders: [HeaderPair], keepHeaders: [String]) -> [HeaderPair] {
        // RFC 9110 §7.6.1: fields named in Connection are hop-by-hop too. Collected only when
        // a Connection field exists, and names are compared without building lowercased
        // copies: this runs once per guarded response.
        var connectionNamed: [String] = []
        var anyDropped = false
        for header in responseHeaders where mayBeDropped(header.name) {
            anyDropped = true
            guard ASCII.equalsIgnoringCase(header.name, "connection") else { continue }
            for option in header.value.split(separator: UInt8(ascii: ",")) {
                let token = IdempotencyKeyParser.trimOWS(ArraySlice(option))
                if !token.isEmpty { connectionNamed.append(String(decoding: token, as: UTF8.self)) }
            }
        }
        // The usual response (Date, Server, Content-Type, Content-Length) drops one field.
        if !anyDropped && connectionNamed.isEmpty { return responseHeaders }
        let dropDefaults = droppedByDefault.filter { name in !keepHeaders.contains { ASCII.equalsIgnoringCase($0, name) } }
        return responseHeaders.filter { header in
            !(mayBeDropped(header.name) && neverStored.contains { ASCII.equalsIgnoringCase(header.name, $0) })
                && !(mayBeDropped(header.name) && dropDefaults.contains { ASCII.equalsIgnoringCase(header.name, $0) })
                && !connectionNamed.contains { ASCII.equalsIgnoringCase(header.name, $0) }
        }
    }

    /// False for a name whose length no field of `neverStored` or `droppedByDefault` has
    /// (2, 7, 10, 14, 16, 17): most fields are ruled out without comparing a byte.
    @inline(__always)
    static func mayBeDropped(_ name: ArraySlice<UInt8>) -> Bool {
        switch name.count {
        case 2, 7, 10, 14, 16, 17: return true
        default: return false
        }
    }
}
