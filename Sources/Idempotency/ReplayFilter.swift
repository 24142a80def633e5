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
        for header in responseHeaders where ASCII.equalsIgnoringCase(header.name, "connection") {
            for option in header.value.split(separator: UInt8(ascii: ",")) {
                let token = IdempotencyKeyParser.trimOWS(ArraySlice(option))
                if !token.isEmpty { connectionNamed.append(String(decoding: token, as: UTF8.self)) }
            }
        }
        let dropDefaults = droppedByDefault.filter { name in !keepHeaders.contains { ASCII.equalsIgnoringCase($0, name) } }
        return responseHeaders.filter { header in
            !neverStored.contains { ASCII.equalsIgnoringCase(header.name, $0) }
                && !dropDefaults.contains { ASCII.equalsIgnoringCase(header.name, $0) }
                && !connectionNamed.contains { ASCII.equalsIgnoringCase(header.name, $0) }
        }
    }
}
