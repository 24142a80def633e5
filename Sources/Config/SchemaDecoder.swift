import Glibc
import Yams

/// Maps the document onto `IdemproxyConfig`, section by section.
struct SchemaDecoder {
    let reader: TreeReader

    static let sections: [(name: String, keys: [String])] = [
        ("upstream", ["url", "connect_timeout", "response_timeout", "max_idle_connections", "idle_timeout"]),
        ("store", ["backend", "memory", "redis", "unavailable"]),
        ("store.memory", ["max_bytes"]),
        ("store.redis", ["url", "tls", "sentinel", "cluster", "min_replicas_acked", "replica_ack_timeout", "key_prefix", "command_timeout", "replay_cache_max_bytes"]),
        ("store.redis.sentinel", ["master", "nodes"]),
        ("store.redis.cluster", ["nodes"]),
        ("store.redis.tls", ["ca_file", "cert_file", "key_file", "server_name"]),
        ("idempotency", IdempotencyOverrides.keys),
        ("limits", ["max_header_bytes", "max_headers", "header_timeout", "body_timeout", "idle_timeout", "send_timeout", "max_connections"]),
        ("admin", ["listen", "token"]),
        ("logging", ["level", "format", "access_log"]),
    ]

    static let rootKeys = [
        "listen", "workers", "upstream", "store", "idempotency", "routes", "limits", "shutdown_grace", "admin", "logging",
    ]

    static func keys(of section: String) -> [String] {
        sections.first { $0.name == section }?.keys ?? []
    }

    private func set<T>(_ target: inout T, _ view: MappingView, _ key: String, _ convert: (Field) -> T?) {
        if let field = view.field(key), let value = convert(field) { target = value }
    }

    /// `nil` only when the document is not a mapping at all.
    func decode(_ root: Field) -> IdemproxyConfig? {
        guard case .mapping = root.node else {
            reader.report("", at: root.mark, "the configuration must be a mapping of keys such as upstream: { url: http://127.0.0.1:3000 }")
            return nil
        }
        guard let top = reader.mapping(root) else { return nil }
        reader.rejectUnknownKeys(top, known: Self.rootKeys) { key in
            guard Suggestion.closest(to: key, among: Self.rootKeys) == nil else { return nil }
            guard let section = Self.sections.first(where: { $0.keys.contains(key) }) else { return nil }
            return " (did you mean \(section.name).\(key)?)"
        }

        var listen = SocketAddressSpec(host: "0.0.0.0", port: 8080)
        set(&listen, top, "listen") { reader.value($0, expected: "a listen address", ValueParser.listenAddress) }

        var workers: Int?
        if let field = top.field("workers"), let text = reader.text(field, expected: "auto or a number of event loops") {
            if text.value == "auto" {
                workers = nil
            } else if text.value.utf8.allSatisfy(ValueParser.isDigit), let count = Int(text.value), (1...256).contains(count) {
                workers = count
            } else {
                reader.report(field, "expected auto or an integer between 1 and 256, got \(text.shown)")
            }
        }

        let upstream = decodeUpstream(top)
        let store = decodeStore(top)

        var idempotency = IdempotencyConfig()
        if let field = top.field("idempotency"), let view = reader.mapping(field) {
            reader.rejectUnknownKeys(view, known: IdempotencyOverrides.keys) { key in
                key == "routes" ? "; routes is a top-level section" : nil
            }
            let overrides = reader.idempotencyOverrides(view)
            idempotency = overrides.applied(to: idempotency)
            reader.validateCombination(idempotency, setAt: overrides)
        }

        var routes: [RouteConfig] = []
        if let field = top.field("routes"), !TreeReader.isNull(field.node) {
            routes = decodeRoutes(field, global: idempotency)
        }
        if store.backend == .redis { checkStoredBodyFitsRedis(top, global: idempotency, routes: routes) }

        var limits = LimitsConfig()
        if let field = top.field("limits"), let view = reader.mapping(field) {
            reader.rejectUnknownKeys(view, known: Self.keys(of: "limits"))
            set(&limits.maxHeaderBytes, view, "max_header_bytes") { reader.size($0, in: 64...(1 << 20)) }
            set(&limits.maxHeaders, view, "max_headers") { reader.integer($0, in: 1...10_000) }
            set(&limits.headerTimeout, view, "header_timeout") { reader.duration($0, exclusive: true) }
            set(&limits.bodyTimeout, view, "body_timeout") { reader.duration($0, exclusive: true) }
            set(&limits.idleTimeout, view, "idle_timeout") { reader.duration($0, exclusive: true) }
            set(&limits.sendTimeout, view, "send_timeout") { reader.duration($0, exclusive: true) }
            set(&limits.maxConnections, view, "max_connections") { reader.integer($0, in: 1...1_000_000) }
        }

        var shutdownGrace: Duration = .seconds(30)
        set(&shutdownGrace, top, "shutdown_grace") { reader.duration($0) }

        var admin = AdminConfig()
        if let field = top.field("admin"), let view = reader.mapping(field) {
            reader.rejectUnknownKeys(view, known: Self.keys(of: "admin"))
            if let listenField = view.field("listen") {
                if TreeReader.isNull(listenField.node) {
                    admin.listen = nil
                } else if let text = reader.text(listenField, expected: "a listen address or \"\"") {
                    if text.value.isEmpty {
                        admin.listen = nil
                    } else {
                        do {
                            admin.listen = try ValueParser.listenAddress(text.value)
                        } catch {
                            reader.report(listenField, error.message + " (write \"\" to disable the admin endpoint)")
                        }
                    }
                }
            }
            if let tokenField = view.field("token"), let token = reader.string(tokenField) {
                // RFC 6750 §2.1 b64token: what a client can send after "Bearer " unquoted.
                if token.isEmpty || ValueParser.isBearerToken(token) {
                    admin.token = token
                } else {
                    reader.report(tokenField, "must be a bearer token (letters, digits and -._~+/ followed by optional =), or \"\" for none")
                }
            }
        }

        var logging = LoggingConfig()
        if let field = top.field("logging"), let view = reader.mapping(field) {
            reader.rejectUnknownKeys(view, known: Self.keys(of: "logging"))
            set(&logging.level, view, "level") { reader.choice($0, as: LogLevel.self) }
            set(&logging.format, view, "format") { reader.choice($0, as: LogFormat.self) }
            set(&logging.accessLog, view, "access_log") { reader.bool($0) }
        }

        return IdemproxyConfig(
            listen: listen,
            workers: workers,
            upstream: upstream ?? UpstreamConfig(host: "127.0.0.1", port: 3000),
            store: store,
            idempotency: idempotency,
            routes: routes,
            limits: limits,
            shutdownGrace: shutdownGrace,
            admin: admin,
            logging: logging)
    }

    /// Redis refuses a bulk string over `proto-max-bulk-len` (512 MB by default), so a completion
    /// carrying a body near that size could never be stored: every retry would fail and the
    /// record would end `unknown`. Refused here instead, at the key that sets it.
    static let redisMaxStoredBody = 500 << 20

    private func checkStoredBodyFitsRedis(_ top: MappingView, global: IdempotencyConfig, routes: [RouteConfig]) {
        let limit = ValueParser.formatSize(Self.redisMaxStoredBody)
        if global.maxStoredBody > Self.redisMaxStoredBody,
           let section = top.field("idempotency"), let view = reader.mapping(section), let field = view.field("max_stored_body") {
            reader.report(field, "must be at most \(limit) with the redis store (Redis' proto-max-bulk-len is 512MB), got \(ValueParser.formatSize(global.maxStoredBody))")
        }
        // Routes that failed to decode are already reported (and then items and routes differ).
        guard let routesField = top.field("routes"), let items = reader.list(routesField, example: "[]"), items.count == routes.count else { return }
        for (item, route) in zip(items, routes) where route.idempotency.maxStoredBody > Self.redisMaxStoredBody && route.idempotency.maxStoredBody != global.maxStoredBody {
            guard let view = reader.mapping(item), let field = view.field("max_stored_body") else { continue }
            reader.report(field, "must be at most \(limit) with the redis store (Redis' proto-max-bulk-len is 512MB), got \(ValueParser.formatSize(route.idempotency.maxStoredBody))")
        }
    }

    // MARK: Sections

    private func decodeUpstream(_ top: MappingView) -> UpstreamConfig? {
        let example = "the URL of the API to protect, such as http://127.0.0.1:3000"
        guard let field = top.field("upstream") else {
            reader.report("upstream.url", at: top.mark, "required key is missing (\(example))")
            return nil
        }
        guard let view = reader.mapping(field) else { return nil }
        reader.rejectUnknownKeys(view, known: Self.keys(of: "upstream"))
        var result: UpstreamConfig?
        if let urlField = view.field("url") {
            if let text = reader.text(urlField, expected: example) {
                do {
                    let url = try ValueParser.upstreamURL(text.value)
                    result = UpstreamConfig(url: text.value, host: url.host, port: url.port, pathPrefix: url.pathPrefix)
                } catch {
                    reader.report(urlField, error.message)
                }
            }
        } else {
            reader.report("upstream.url", at: field.mark, "required key is missing (\(example))")
        }
        var upstream = result ?? UpstreamConfig(host: "127.0.0.1", port: 3000)
        set(&upstream.connectTimeout, view, "connect_timeout") { reader.duration($0, exclusive: true) }
        set(&upstream.responseTimeout, view, "response_timeout") { reader.duration($0, exclusive: true) }
        set(&upstream.maxIdleConnections, view, "max_idle_connections") { reader.integer($0, in: 0...100_000) }
        set(&upstream.idleTimeout, view, "idle_timeout") { reader.duration($0, exclusive: true) }
        return result == nil ? nil : upstream
    }

    private func decodeStore(_ top: MappingView) -> StoreConfig {
        var store = StoreConfig()
        guard let field = top.field("store"), let view = reader.mapping(field) else { return store }
        reader.rejectUnknownKeys(view, known: Self.keys(of: "store"))
        set(&store.backend, view, "backend") { reader.choice($0, as: StoreBackend.self) }
        set(&store.unavailable, view, "unavailable") { reader.choice($0, as: UnavailableMode.self) }
        if let memoryField = view.field("memory"), let memory = reader.mapping(memoryField) {
            reader.rejectUnknownKeys(memory, known: Self.keys(of: "store.memory"))
            set(&store.memoryMaxBytes, memory, "max_bytes") { reader.size($0, in: (64 << 10)...(1 << 40)) }
        }
        guard let redisField = view.field("redis"), let redis = reader.mapping(redisField) else { return store }
        reader.rejectUnknownKeys(redis, known: Self.keys(of: "store.redis"))
        var tlsScheme = false
        if let urlField = redis.field("url"), let text = reader.text(urlField, expected: "a redis:// URL") {
            do {
                let url = try ValueParser.redisURL(text.value)
                tlsScheme = url.tls
                store.redis.url = text.value
                store.redis.host = url.host
                store.redis.port = url.port
                store.redis.username = url.username
                store.redis.password = url.password
                store.redis.database = url.database
            } catch {
                reader.report(urlField, error.message)
            }
        }
        set(&store.redis.keyPrefix, redis, "key_prefix") { field in
            guard let text = reader.text(field, expected: "a string") else { return nil }
            guard !text.value.contains("{"), !text.value.contains("}") else {
                reader.report(field, "must not contain { or }, which would break the Redis Cluster hash tag, got \(text.shown)")
                return nil
            }
            return text.value
        }
        set(&store.redis.commandTimeout, redis, "command_timeout") { reader.duration($0, exclusive: true) }
        set(&store.redis.minReplicasAcked, redis, "min_replicas_acked") { reader.integer($0, in: 0...16) }
        set(&store.redis.replicaAckTimeout, redis, "replica_ack_timeout") { reader.duration($0, exclusive: true) }
        set(&store.redis.replayCacheMaxBytes, redis, "replay_cache_max_bytes") { reader.size($0, in: 0...(1 << 40)) }
        // WAIT holds every command behind it on the connection for up to replica_ack_timeout:
        // at command_timeout or longer, those commands would time out whenever replicas lag.
        if store.redis.minReplicasAcked > 0, store.redis.replicaAckTimeout >= store.redis.commandTimeout,
           let field = redis.field("replica_ack_timeout") ?? redis.field("min_replicas_acked") {
            reader.report(field, "replica_ack_timeout must be shorter than command_timeout: WAIT holds the connection's other commands that long")
        }
        store.redis.tls = decodeRedisTLS(redis, tlsScheme: tlsScheme)
        store.redis.sentinel = decodeSentinel(redis)
        store.redis.clusterNodes = decodeCluster(redis)
        if store.redis.sentinel != nil, store.redis.clusterNodes != nil, let field = redis.field("cluster") {
            reader.report(field, "sentinel and cluster exclude each other: a Redis Cluster fails over by itself")
        }
        if store.redis.clusterNodes != nil, store.redis.database != 0, let field = redis.field("url") {
            reader.report(field, "a Redis Cluster has only database 0, got /\(store.redis.database)")
        }
        return store
    }

    /// `store.redis.cluster.nodes`; an empty list (the SPEC's default) means no cluster.
    private func decodeCluster(_ redis: MappingView) -> [SocketAddressSpec]? {
        guard let field = redis.field("cluster"), let view = reader.mapping(field) else { return nil }
        reader.rejectUnknownKeys(view, known: Self.keys(of: "store.redis.cluster"))
        guard let nodesField = view.field("nodes"), let items = reader.list(nodesField, example: "[10.0.0.7:6379, 10.0.0.8:6379]") else { return nil }
        var nodes: [SocketAddressSpec] = []
        for item in items {
            if let node = reader.value(item, expected: "a cluster node as host:port", ValueParser.clusterNode) { nodes.append(node) }
        }
        return nodes.isEmpty || nodes.count != items.count ? nil : nodes
    }

    /// `store.redis.sentinel`; empty `master` and `nodes` (the SPEC's defaults) mean off.
    private func decodeSentinel(_ redis: MappingView) -> RedisSentinelConfig? {
        guard let field = redis.field("sentinel"), let view = reader.mapping(field) else { return nil }
        reader.rejectUnknownKeys(view, known: Self.keys(of: "store.redis.sentinel"))
        let master = view.field("master").flatMap { reader.string($0) } ?? ""
        var nodes: [SocketAddressSpec] = []
        var listed = 0
        if let nodesField = view.field("nodes"), let items = reader.list(nodesField, example: "[10.0.0.7:26379, 10.0.0.8:26379]") {
            listed = items.count
            for item in items {
                if let node = reader.value(item, expected: "a Sentinel as host:port", ValueParser.sentinelNode) { nodes.append(node) }
            }
        }
        if master.isEmpty && listed == 0 { return nil }
        // A node that did not parse was reported already.
        guard nodes.count == listed else { return nil }
        guard !master.isEmpty else {
            reader.report(view.field("master") ?? field, "the name Sentinel monitors the primary under is required with sentinel nodes (sentinel monitor <name> …)")
            return nil
        }
        guard !nodes.isEmpty else {
            reader.report(view.field("nodes") ?? field, "at least one Sentinel (host:port) is required to find the primary \(master)")
            return nil
        }
        return RedisSentinelConfig(master: master, nodes: nodes)
    }

    /// `store.redis.tls`, which only a `rediss://` URL uses: settings that would be ignored
    /// are an error, so nobody believes a plaintext connection is encrypted.
    private func decodeRedisTLS(_ redis: MappingView, tlsScheme: Bool) -> RedisTLSConfig? {
        var tls = RedisTLSConfig()
        if let field = redis.field("tls"), let view = reader.mapping(field) {
            reader.rejectUnknownKeys(view, known: Self.keys(of: "store.redis.tls"))
            // "" means not given, as in the SPEC's example line.
            func text(_ key: String) -> (Field, String)? {
                guard let field = view.field(key), let value = reader.string(field), !value.isEmpty else { return nil }
                return (field, value)
            }
            func readable(_ given: (Field, String)) -> String? {
                let (field, path) = given
                guard access(path, R_OK) == 0 else {
                    reader.report(field, "cannot read \(path): \(String(cString: strerror(errno)))")
                    return nil
                }
                return path
            }
            let cert = text("cert_file"), key = text("key_file")
            tls.caFile = text("ca_file").flatMap(readable)
            tls.certFile = cert.flatMap(readable)
            tls.keyFile = key.flatMap(readable)
            if let (field, name) = text("server_name") {
                if ValueParser.isHostName(name) || ValueParser.isIPv6Literal(name) {
                    tls.serverName = name
                } else {
                    reader.report(field, "expected a host name or IP address the certificate carries (no port, no brackets), got \"\(name)\"")
                }
            }
            if (cert == nil) != (key == nil) {
                reader.report(field, "cert_file and key_file go together: give both (a client certificate) or neither")
            }
            if !tlsScheme && tls != RedisTLSConfig() {
                reader.report(field, "TLS settings need a rediss:// URL; with redis:// the connection would be plaintext")
            }
        }
        return tlsScheme ? tls : nil
    }

    private func decodeRoutes(_ field: Field, global: IdempotencyConfig) -> [RouteConfig] {
        let example = "[{ match: { path_prefix: /v1/payments, methods: [POST] }, required: true }]"
        guard let items = reader.list(field, example: example) else { return [] }
        var routes: [RouteConfig] = []
        var routePaths: [String] = []
        for item in items {
            guard let view = reader.mapping(item) else { continue }
            if view.entries.isEmpty {
                reader.report(item, "expected a route such as { match: { path_prefix: /v1/payments } }, got \(TreeReader.kind(item.node))")
                continue
            }
            reader.rejectUnknownKeys(view, known: ["match", "enabled"] + IdempotencyOverrides.keys) { key in
                switch key {
                case "routes": "; routes cannot be nested inside a route"
                case "idempotency": "; set idempotency fields directly on the route, such as required: true"
                case "path_prefix": " (did you mean match.path_prefix?)"
                default: nil
                }
            }

            var pathPrefix: String?
            var matchMethods: [String]?
            var prefixField: Field?
            var matchMethodItems: [Field]?
            if let matchField = view.field("match") {
                if let match = reader.mapping(matchField) {
                    reader.rejectUnknownKeys(match, known: ["path_prefix", "methods"])
                    if let field = match.field("path_prefix") {
                        prefixField = field
                        pathPrefix = reader.value(field, expected: "a path prefix", ValueParser.pathPrefix)
                    } else {
                        reader.report(matchField.child("path_prefix"), at: matchField.mark, "required key is missing (such as path_prefix: /v1/payments)")
                    }
                    if let field = match.field("methods") {
                        matchMethods = reader.uniqueList(field, example: "[POST]", identity: { $0 }) { item in
                            reader.value(item, expected: "an HTTP method", ValueParser.methodName)
                        }
                        if matchMethods?.isEmpty == true {
                            reader.report(field, "must not be empty (leave methods out to match every method)")
                            matchMethods = nil
                        } else if matchMethods != nil {
                            matchMethodItems = reader.list(field, example: "[POST]")
                        }
                    }
                }
            } else {
                reader.report(item.child("match"), at: item.mark, "required key is missing (such as match: { path_prefix: /v1/payments })")
            }

            var enabled = true
            set(&enabled, view, "enabled") { reader.bool($0) }

            let overrides = reader.idempotencyOverrides(view)
            let merged = overrides.applied(to: global)
            reader.validateCombination(merged, setAt: overrides)

            if enabled, let matchMethods, let methodItems = matchMethodItems {
                for (method, methodItem) in zip(matchMethods, methodItems)
                where ValueParser.guardableMethods.contains(method) && !merged.methods.contains(method) {
                    reader.report(methodItem, "\(method) is not guarded on this route (guarded: \(merged.methods.joined(separator: ", "))); add it to the route's methods or remove it here")
                }
            }

            guard let pathPrefix else { continue }
            let route = RouteConfig(pathPrefix: pathPrefix, methods: matchMethods, enabled: enabled, idempotency: merged)
            if let (index, earlier) = routes.enumerated().first(where: { Self.shadows($0.element, route) }), let prefixField {
                let which = earlier.methods.map { " for \($0.joined(separator: ", "))" } ?? ""
                reader.report(prefixField, "this route never matches: \(routePaths[index]) (path_prefix \(earlier.pathPrefix)\(which)) comes first and matches all its requests; put the more specific route first")
            }
            routes.append(route)
            routePaths.append(item.path)
        }
        return routes
    }

    /// True when every request `later` matches is already taken by `earlier`.
    static func shadows(_ earlier: RouteConfig, _ later: RouteConfig) -> Bool {
        guard later.pathPrefix.hasPrefix(earlier.pathPrefix) else { return false }
        guard let earlierMethods = earlier.methods else { return true }
        guard let laterMethods = later.methods else { return false }
        return Set(laterMethods).isSubset(of: earlierMethods)
    }
}
