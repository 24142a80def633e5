extension IdemproxyConfig {
    /// The global idempotency settings, which apply where no route matches.
    public var defaultIdempotency: IdempotencyConfig { idempotency }

    /// The first route whose prefix and methods match; `nil` means the global
    /// settings apply. A query string in `path` is ignored, and percent-encoded
    /// unreserved characters (`%70` for `p`) match their plain form.
    public func route(forPath path: some StringProtocol, method: some StringProtocol) -> RouteConfig? {
        routeIndex(forPath: path.utf8, method: method.utf8).map { routes[$0] }
    }

    /// Byte-oriented variant of `route(forPath:method:)`.
    public func route(forPath path: some Collection<UInt8>, method: some StringProtocol) -> RouteConfig? {
        routeIndex(forPath: path, method: method.utf8).map { routes[$0] }
    }

    /// Byte-oriented variant of `route(forPath:method:)`.
    public func route(forPath path: some Collection<UInt8>, method: some Collection<UInt8>) -> RouteConfig? {
        routeIndex(forPath: path, method: method).map { routes[$0] }
    }

    /// The settings guarding a request, or `nil` when it is not guarded
    /// (its route is disabled, or its method is not among the guarded ones).
    public func idempotency(forPath path: some StringProtocol, method: some StringProtocol) -> IdempotencyConfig? {
        let settings: IdempotencyConfig
        if let route = route(forPath: path, method: method) {
            guard route.enabled else { return nil }
            settings = route.idempotency
        } else {
            settings = idempotency
        }
        return settings.guards(method: method) ? settings : nil
    }

    /// Index into `routes` of the first match.
    public func routeIndex(forPath path: some Collection<UInt8>, method: some Collection<UInt8>) -> Int? {
        guard !routes.isEmpty else { return nil }
        var target = Array(path.prefix { $0 != UInt8(ascii: "?") })
        if target.contains(UInt8(ascii: "%")) { target = RoutePath.decodingUnreserved(target) }
        for (index, route) in routes.enumerated() {
            guard target.starts(with: route.pathPrefix.utf8) else { continue }
            if let methods = route.methods, !methods.contains(where: { $0.utf8.elementsEqual(method) }) { continue }
            return index
        }
        return nil
    }
}

enum RoutePath {
    /// Replaces `%XX` escapes of unreserved characters (ALPHA, DIGIT, `-._~`)
    /// with the character; other escapes stay as written.
    static func decodingUnreserved(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
               let high = ValueParser.hexValue(bytes[index + 1]), let low = ValueParser.hexValue(bytes[index + 2]) {
                let decoded = high << 4 | low
                if ValueParser.isLetter(decoded) || ValueParser.isDigit(decoded)
                    || decoded == UInt8(ascii: "-") || decoded == UInt8(ascii: ".")
                    || decoded == UInt8(ascii: "_") || decoded == UInt8(ascii: "~") {
                    out.append(decoded)
                    index += 3
                    continue
                }
            }
            out.append(bytes[index])
            index += 1
        }
        return out
    }
}
