import Glibc
/// The validated contents of one idemproxy configuration file.
///
/// Every initializer defaults to the values documented for the YAML schema, so
/// code (and tests) can build a configuration without a file.
public struct IdemproxyConfig: Sendable, Equatable {
    /// Address the proxy listens on.
    public var listen: SocketAddressSpec
    /// Number of event loops; `nil` means one per core (`auto`).
    public var workers: Int?
    public var upstream: UpstreamConfig
    public var store: StoreConfig
    /// The global idempotency settings, used where no route matches.
    public var idempotency: IdempotencyConfig
    /// Routes in file order; the first match wins.
    public var routes: [RouteConfig]
    public var limits: LimitsConfig
    /// How long in-flight exchanges may take to finish after SIGTERM/SIGINT.
    public var shutdownGrace: Duration
    public var admin: AdminConfig
    public var logging: LoggingConfig

    public init(
        listen: SocketAddressSpec = SocketAddressSpec(host: "0.0.0.0", port: 8080),
        workers: Int? = nil,
        upstream: UpstreamConfig,
        store: StoreConfig = StoreConfig(),
        idempotency: IdempotencyConfig = IdempotencyConfig(),
        routes: [RouteConfig] = [],
        limits: LimitsConfig = LimitsConfig(),
        shutdownGrace: Duration = .seconds(30),
        admin: AdminConfig = AdminConfig(),
        logging: LoggingConfig = LoggingConfig()
    ) {
        self.listen = listen
        self.workers = workers
        self.upstream = upstream
        self.store = store
        self.idempotency = idempotency
        self.routes = routes
        self.limits = limits
        self.shutdownGrace = shutdownGrace
        self.admin = admin
        self.logging = logging
    }
}

/// A numeric listen address. `host` is always an IPv4 or IPv6 literal
/// (`localhost` is stored as `127.0.0.1`); IPv6 hosts are stored without brackets.
public struct SocketAddressSpec: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// True when `host` is an IPv6 literal.
    public var isIPv6: Bool { host.contains(":") }

    /// True when only this machine can connect: `localhost`, 127.0.0.0/8 or `::1`. Any other
    /// host, names included, may be reachable from elsewhere.
    public var isLoopback: Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare == "localhost" { return true }
        // Decided on the parsed address, so every spelling of ::1 or of a v4-mapped
        // 127.0.0.0/8 address counts.
        var v4 = in_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, bare, &v6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
        return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
    }

    /// `host:port`, or `[host]:port` for IPv6.
    public var description: String {
        isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

public struct UpstreamConfig: Sendable, Equatable {
    /// The URL as written (after environment expansion).
    public var url: String
    /// Host name or address literal; IPv6 without brackets.
    public var host: String
    public var port: UInt16
    /// Path prefix prepended to every forwarded request target, without a
    /// trailing slash; empty when the URL has no path.
    public var pathPrefix: String
    public var connectTimeout: Duration
    public var responseTimeout: Duration
    /// Idle keep-alive connections kept per worker; 0 disables pooling.
    public var maxIdleConnections: Int
    /// Idle pooled connections are closed after this long.
    public var idleTimeout: Duration

    public init(
        url: String? = nil,
        host: String,
        port: UInt16 = 80,
        pathPrefix: String = "",
        connectTimeout: Duration = .seconds(2),
        responseTimeout: Duration = .seconds(60),
        maxIdleConnections: Int = 64,
        idleTimeout: Duration = .seconds(30)
    ) {
        let bracketed = host.contains(":") ? "[\(host)]" : host
        self.url = url ?? "http://\(bracketed):\(port)\(pathPrefix)"
        self.host = host
        self.port = port
        self.pathPrefix = pathPrefix
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
        self.maxIdleConnections = maxIdleConnections
        self.idleTimeout = idleTimeout
    }

    /// `host:port` as sent in an HTTP authority (IPv6 in brackets, port 80 omitted).
    public var authority: String {
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? bracketed : "\(bracketed):\(port)"
    }
}

public enum KeySyntax: String, Sendable, Equatable, CaseIterable {
    /// sf-string or a bare token.
    case lenient
    /// sf-string only.
    case strict
}

public enum ConcurrentMode: String, Sendable, Equatable, CaseIterable {
    /// `409` while the original is in flight.
    case reject
    /// Wait up to `waitTimeout` for the original, then replay it.
    case wait
}

public enum IndeterminateMode: String, Sendable, Equatable, CaseIterable {
    /// Keep the record as `unknown` until its TTL ends.
    case hold
    /// Remove the record so the key can be retried.
    case release
}

/// What happens to a guarded request without the scope header (SPEC §3, `scope.missing`).
public enum ScopeMissingMode: String, Sendable, Equatable, CaseIterable {
    /// Answer `400 missing-scope`: the request is never put in a namespace shared by callers.
    case reject
    /// Forward it unguarded and count it (`outcome="unscoped"`).
    case unscoped
}

public enum FingerprintBodyMode: String, Sendable, Equatable, CaseIterable {
    /// Hash the body bytes as received.
    case raw
    /// Canonicalise JSON bodies before hashing.
    case json
}

/// Idempotency settings, either global or the effective settings of one route.
public struct IdempotencyConfig: Sendable, Equatable {
    /// Request header carrying the key.
    public var header: String
    public var keySyntax: KeySyntax
    public var keyMaxLength: Int
    /// Guarded methods, a subset of POST, PATCH, PUT and DELETE.
    public var methods: [String]
    /// A guarded request without a key is rejected with `400`.
    public var required: Bool
    public var ttl: Duration
    public var lease: Duration
    public var concurrent: ConcurrentMode
    public var waitTimeout: Duration
    public var indeterminate: IndeterminateMode
    /// Upstream statuses after which the record is removed (safe to retry).
    public var releaseStatuses: [Int]
    public var maxRequestBody: Int
    public var maxStoredBody: Int
    /// Header identifying the caller; empty disables scoping.
    public var scopeHeader: String
    /// A guarded request that lacks `scopeHeader` (while scoping is on).
    public var scopeMissing: ScopeMissingMode
    public var fingerprintHeaders: [String]
    public var fingerprintBody: FingerprintBodyMode
    /// RFC 6901 JSON Pointers removed before hashing (only with `.json`).
    public var ignoreFields: [String]
    /// Headers replayed even though they are dropped by default (e.g. `Set-Cookie`).
    public var replayKeepHeaders: [String]

    public init(
        header: String = "Idempotency-Key",
        keySyntax: KeySyntax = .lenient,
        keyMaxLength: Int = 255,
        methods: [String] = ["POST", "PATCH"],
        required: Bool = false,
        ttl: Duration = .seconds(24 * 3600),
        lease: Duration = .seconds(30),
        concurrent: ConcurrentMode = .reject,
        waitTimeout: Duration = .seconds(10),
        indeterminate: IndeterminateMode = .hold,
        releaseStatuses: [Int] = [429, 503],
        maxRequestBody: Int = 1 << 20,
        maxStoredBody: Int = 1 << 20,
        scopeHeader: String = "Authorization",
        scopeMissing: ScopeMissingMode = .reject,
        fingerprintHeaders: [String] = ["Content-Type"],
        fingerprintBody: FingerprintBodyMode = .raw,
        ignoreFields: [String] = [],
        replayKeepHeaders: [String] = []
    ) {
        self.header = header
        self.keySyntax = keySyntax
        self.keyMaxLength = keyMaxLength
        self.methods = methods
        self.required = required
        self.ttl = ttl
        self.lease = lease
        self.concurrent = concurrent
        self.waitTimeout = waitTimeout
        self.indeterminate = indeterminate
        self.releaseStatuses = releaseStatuses
        self.maxRequestBody = maxRequestBody
        self.maxStoredBody = maxStoredBody
        self.scopeHeader = scopeHeader
        self.scopeMissing = scopeMissing
        self.fingerprintHeaders = fingerprintHeaders
        self.fingerprintBody = fingerprintBody
        self.ignoreFields = ignoreFields
        self.replayKeepHeaders = replayKeepHeaders
    }

    /// True when requests with this method are guarded under these settings.
    public func guards(method: some StringProtocol) -> Bool {
        methods.contains { $0.utf8.elementsEqual(method.utf8) }
    }

    /// `ignoreFields` split into unescaped reference tokens
    /// (`/a~1b/c` → `["a/b", "c"]`; the empty pointer → `[]`).
    public var ignoreFieldTokens: [[String]] {
        ignoreFields.map(JSONPointer.referenceTokens)
    }
}

/// One entry of `routes`, with its overrides already merged into the global settings.
public struct RouteConfig: Sendable, Equatable {
    /// Plain string prefix of the request path (`/internal/`).
    public var pathPrefix: String
    /// Methods this route matches; `nil` matches every method.
    public var methods: [String]?
    /// `false` turns idempotency off for matching requests.
    public var enabled: Bool
    /// Global settings with this route's overrides applied.
    public var idempotency: IdempotencyConfig

    public init(pathPrefix: String, methods: [String]? = nil, enabled: Bool = true, idempotency: IdempotencyConfig = IdempotencyConfig()) {
        self.pathPrefix = pathPrefix
        self.methods = methods
        self.enabled = enabled
        self.idempotency = idempotency
    }
}

public struct LimitsConfig: Sendable, Equatable {
    public var maxHeaderBytes: Int
    public var maxHeaders: Int
    public var headerTimeout: Duration
    public var bodyTimeout: Duration
    /// Idle client keep-alive connections are closed after this long.
    public var idleTimeout: Duration
    /// Longest a client may go without reading any of the bytes queued for it (nginx's
    /// `send_timeout`), in every phase, including the final flush of a closing connection.
    public var sendTimeout: Duration
    public var maxConnections: Int

    public init(
        maxHeaderBytes: Int = 16 * 1024,
        maxHeaders: Int = 100,
        headerTimeout: Duration = .seconds(10),
        bodyTimeout: Duration = .seconds(30),
        idleTimeout: Duration = .seconds(60),
        sendTimeout: Duration = .seconds(30),
        maxConnections: Int = 10_000
    ) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.sendTimeout = sendTimeout
        self.maxConnections = maxConnections
    }
}

/// Whether records carry a scope (SPEC §3), as far as the configuration decides it. A lookup
/// (`/records`, `idemproxy records`) that disagrees can only miss, and its "no record" would be
/// a wrong answer to act on.
public enum RecordScoping: Sendable, Equatable {
    /// Every guarded request is scoped, by these headers (as configured, each once): every
    /// record has a scope, so a lookup needs one.
    case required(headers: [String])
    /// No guarded request is scoped (`scope.header: ""` everywhere): no record has a scope, so a
    /// lookup must not give one.
    case off
    /// Some guarded requests are scoped and some are not: a lookup may name either kind.
    case mixed
}

extension IdemproxyConfig {
    /// The settings guarded requests are handled with: the global ones (requests no route
    /// matches) and each enabled route's. A disabled route guards nothing.
    var guardSettings: [IdempotencyConfig] {
        [idempotency] + routes.filter(\.enabled).map(\.idempotency)
    }

    /// How records are scoped under this configuration (routes may turn scoping on or off).
    public var recordScoping: RecordScoping {
        let headers = guardSettings.map(\.scopeHeader)
        if headers.allSatisfy(\.isEmpty) { return .off }
        guard headers.allSatisfy({ !$0.isEmpty }) else { return .mixed }
        var distinct: [String] = []
        for header in headers where !distinct.contains(where: { $0.lowercased() == header.lowercased() }) { distinct.append(header) }
        return .required(headers: distinct)
    }

    /// What guarded requests do on finding an expired lease (`indeterminate`), when every one of
    /// them agrees; nil when routes differ (then it depends on the route the next request takes).
    public var expiredLeasePolicy: IndeterminateMode? {
        let policies = guardSettings.map(\.indeterminate)
        return policies.allSatisfy { $0 == policies[0] } ? policies[0] : nil
    }
}

public struct AdminConfig: Sendable, Equatable {
    /// `nil` disables the admin endpoint (`listen: ""` or `listen: null`).
    public var listen: SocketAddressSpec?
    /// Bearer token `/records` requires (SPEC §8); empty: `/records` answers only on a
    /// loopback listener.
    public var token: String

    public init(listen: SocketAddressSpec? = SocketAddressSpec(host: "127.0.0.1", port: 9090), token: String = "") {
        self.listen = listen
        self.token = token
    }

    /// Whether `/records` can answer at all: with a token, or on a listener only this machine
    /// reaches.
    public var recordsEnabled: Bool {
        guard let listen else { return false }
        return !token.isEmpty || listen.isLoopback
    }

    /// Shorter tokens draw a warning: the token is all that stands between whoever reaches
    /// `admin.listen` and reading or purging records, so it must not be guessable.
    public static let minimumTokenLength = 16

    /// What `check-config` and startup say about this section, in plain words.
    public var warnings: [String] {
        var warnings: [String] = []
        if let listen, token.isEmpty, !listen.isLoopback {
            warnings.append("admin.listen \(listen) is not a loopback address and admin.token is empty: /records (inspect and purge idempotency records) is refused with 403 there; set admin.token to use it remotely")
        }
        if !token.isEmpty, token.count < Self.minimumTokenLength {
            warnings.append("admin.token is shorter than \(Self.minimumTokenLength) characters: whoever reaches admin.listen could guess it and read or purge idempotency records; use a random one (e.g. openssl rand -hex 32)")
        }
        return warnings
    }
}

public enum LogLevel: String, Sendable, Equatable, Comparable, CaseIterable {
    case debug, info, warn, error

    private var rank: Int {
        switch self {
        case .debug: 0
        case .info: 1
        case .warn: 2
        case .error: 3
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rank < rhs.rank }
}

public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    case json, text
}

public struct LoggingConfig: Sendable, Equatable {
    public var level: LogLevel
    public var format: LogFormat
    public var accessLog: Bool

    public init(level: LogLevel = .info, format: LogFormat = .json, accessLog: Bool = true) {
        self.level = level
        self.format = format
        self.accessLog = accessLog
    }
}
