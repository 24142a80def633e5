import Config
import HTTP1
import Idempotency

/// One set of idempotency settings (the global ones or a route's), converted once into the
/// shapes the request path uses, so no request re-derives them.
///
/// A class: every guarded request holds its policy, and copying a struct of this many strings
/// and arrays costs a retain and a release for each of them, twice per request.
final class GuardPolicy: Sendable {
    let keyHeader: String            // lowercased field name
    /// `keyHeader` and `scopeHeader` as bytes, for matching request fields.
    let keyHeaderBytes: [UInt8]
    let scopeHeaderBytes: [UInt8]?
    let keySyntax: Idempotency.KeySyntax
    let keyMaxLength: Int
    let methods: [HTTPMethod]
    let required: Bool
    let ttl: Duration
    let lease: Duration
    let leaseMillis: UInt64
    let waitForInFlight: Bool
    let waitTimeoutMillis: UInt64
    let indeterminate: IndeterminatePolicy
    let releaseStatuses: [Int]
    let maxRequestBody: Int
    let maxStoredBody: Int
    let scopeHeader: String?         // lowercased; nil when scoping is disabled
    /// The scope header as configured, for messages.
    let scopeHeaderDisplayName: String
    let scopeMissing: ScopeMissing
    let fingerprint: FingerprintPolicy
    /// `fingerprint.headers`, lowercased, for matching request fields.
    let fingerprintHeaderNames: [String]
    let keepHeaders: [String]

    init(_ config: IdempotencyConfig) {
        keyHeader = config.header.lowercased()
        keySyntax = config.keySyntax == .strict ? .strict : .lenient
        keyMaxLength = config.keyMaxLength
        methods = config.methods.map(HTTPMethod.init(name:))
        required = config.required
        ttl = config.ttl
        lease = config.lease
        leaseMillis = config.lease.milliseconds
        waitForInFlight = config.concurrent == .wait
        waitTimeoutMillis = config.waitTimeout.milliseconds
        indeterminate = config.indeterminate == .hold ? .hold : .release
        releaseStatuses = config.releaseStatuses
        maxRequestBody = config.maxRequestBody
        maxStoredBody = config.maxStoredBody
        scopeHeader = config.scopeHeader.isEmpty ? nil : config.scopeHeader.lowercased()
        keyHeaderBytes = Array(keyHeader.utf8)
        scopeHeaderBytes = scopeHeader.map { Array($0.utf8) }
        scopeHeaderDisplayName = config.scopeHeader
        scopeMissing = config.scopeMissing == .reject ? .reject : .forwardUnguarded
        fingerprint = FingerprintPolicy(
            headers: config.fingerprintHeaders, body: config.fingerprintBody == .json ? .json : .raw,
            ignoreFields: config.ignoreFields)
        keepHeaders = config.replayKeepHeaders
        fingerprintHeaderNames = config.fingerprintHeaders.map { $0.lowercased() }
    }
}

/// `scope.missing` (SPEC §3).
enum ScopeMissing: Sendable {
    /// `400 missing-scope`.
    case reject
    /// Forwarded without a claim, counted as `unscoped`.
    case forwardUnguarded
}

/// Decides which requests are guarded: the first matching route's settings, else the global
/// ones, and only for the methods those settings guard (SPEC §2).
final class GuardTable: Sendable {
    let config: IdemproxyConfig
    let global: GuardPolicy
    let routes: [GuardPolicy?]         // nil for a disabled route
    /// Every method any policy guards: other methods skip the route lookup entirely.
    let anyGuardedMethods: [HTTPMethod]
    /// Key and scope header names of every policy, lowercased: a Connection field may not
    /// remove them (SPEC §5).
    let protectedFieldNames: [String]

    init(config: IdemproxyConfig) {
        self.config = config
        global = GuardPolicy(config.idempotency)
        routes = config.routes.map { $0.enabled ? GuardPolicy($0.idempotency) : nil }
        var methods = global.methods
        for policy in routes.compactMap({ $0 }) { methods.append(contentsOf: policy.methods) }
        anyGuardedMethods = methods
        var names: [String] = []
        for policy in [global] + routes.compactMap({ $0 }) {
            for name in [policy.keyHeader, policy.scopeHeader].compactMap({ $0 }) where !names.contains(name) { names.append(name) }
        }
        protectedFieldNames = names
    }

    func policy(method: HTTPMethod, methodName: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer) -> GuardPolicy? {
        guard anyGuardedMethods.contains(method) else { return nil }
        let chosen: GuardPolicy
        if let index = config.routeIndex(forPath: path, method: methodName) {
            guard let routePolicy = routes[index] else { return nil }
            chosen = routePolicy
        } else {
            chosen = global
        }
        return chosen.methods.contains(method) ? chosen : nil
    }
}
