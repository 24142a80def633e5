/// Chooses which upstream response fields are stored for replay.
public enum ReplayFilter {
    /// Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the
    /// response, so they are never stored: `Connection`, `Keep-Alive`,
    /// `Proxy-Connection` (non-standard but still sent), `TE`, `Trailer`,
    /// `Transfer-Encoding`, `Upgrade`. `Content-Length` is dropped too
    /// because a replay is re-framed from the stored body (RFC 9112 §6).
    static let neverStored: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "content-length",
    ]

    /// Fields dropped unless `replay.keep_headers` names them: replaying a
    /// `Set-Cookie` would hand a session minted for the first request to
    /// whoever retries, so it is opt-in (SPEC §4).
    static let droppedByDefault: Set<String> = ["set-cookie"]

    /// The response fields to store, in their original order.
    ///
    /// - Parameters:
    ///   - responseHeaders: the upstream response's fields.
    ///   - keepHeaders: `replay.keep_headers`, case-insensitive. It can
    ///     rescue `Set-Cookie`; it cannot rescue hop-by-hop fields, whose
    ///     replay would corrupt framing.
    public static func headersToStore(responseHeaders: [HeaderPair], keepHeaders: [String]) -> [HeaderPair] {
        var dropped = neverStored
        // RFC 9110 §7.6.1: fields named in Connection are hop-by-hop too.
        for header in responseHeaders where ASCII.equalsIgnoringCase(header.name, "connection") {
            for option in header.value.utf8.split(separator: UInt8(ascii: ",")) {
                let token = IdempotencyKeyParser.trimOWS(ArraySlice(option))
                if !token.isEmpty {
                    dropped.insert(String(decoding: token.map(ASCII.fold), as: UTF8.self))
                }
            }
        }
        let kept = Set(keepHeaders.map(ASCII.lowercased))
        for name in droppedByDefault where !kept.contains(name) {
            dropped.insert(name)
        }
        return responseHeaders.filter { !dropped.contains(ASCII.lowercased($0.name)) }
    }
}
