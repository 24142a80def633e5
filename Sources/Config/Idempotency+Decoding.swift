import Yams

/// Idempotency fields as set at one level (global section or one route),
/// each with the place it was set.
struct IdempotencyOverrides {
    var header: Located<String>?
    var keySyntax: Located<KeySyntax>?
    var keyMaxLength: Located<Int>?
    var methods: Located<[String]>?
    var required: Located<Bool>?
    var ttl: Located<Duration>?
    var lease: Located<Duration>?
    var concurrent: Located<ConcurrentMode>?
    var waitTimeout: Located<Duration>?
    var indeterminate: Located<IndeterminateMode>?
    var releaseStatuses: Located<[Int]>?
    var maxRequestBody: Located<Int>?
    var maxStoredBody: Located<Int>?
    var scopeHeader: Located<String>?
    var scopeMissing: Located<ScopeMissingMode>?
    var fingerprintHeaders: Located<[String]>?
    var fingerprintBody: Located<FingerprintBodyMode>?
    var ignoreFields: Located<[String]>?
    var replayKeepHeaders: Located<[String]>?

    /// Keys an idempotency level may set (global section and routes alike).
    static let keys = [
        "header", "key_syntax", "key_max_length", "methods", "required", "ttl", "lease",
        "concurrent", "wait_timeout", "indeterminate", "release_statuses", "max_request_body",
        "max_stored_body", "scope", "fingerprint", "replay",
    ]

    static let maxBody = 1 << 30

    /// Headers that are re-framed or connection-specific and so can never be replayed.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    func applied(to base: IdempotencyConfig) -> IdempotencyConfig {
        var config = base
        if let header { config.header = header.value }
        if let keySyntax { config.keySyntax = keySyntax.value }
        if let keyMaxLength { config.keyMaxLength = keyMaxLength.value }
        if let methods { config.methods = methods.value }
        if let required { config.required = required.value }
        if let ttl { config.ttl = ttl.value }
        if let lease { config.lease = lease.value }
        if let concurrent { config.concurrent = concurrent.value }
        if let waitTimeout { config.waitTimeout = waitTimeout.value }
        if let indeterminate { config.indeterminate = indeterminate.value }
        if let releaseStatuses { config.releaseStatuses = releaseStatuses.value }
        if let maxRequestBody { config.maxRequestBody = maxRequestBody.value }
        if let maxStoredBody { config.maxStoredBody = maxStoredBody.value }
        if let scopeHeader { config.scopeHeader = scopeHeader.value }
        if let scopeMissing { config.scopeMissing = scopeMissing.value }
        if let fingerprintHeaders { config.fingerprintHeaders = fingerprintHeaders.value }
        if let fingerprintBody { config.fingerprintBody = fingerprintBody.value }
        if let ignoreFields { config.ignoreFields = ignoreFields.value }
        if let replayKeepHeaders { config.replayKeepHeaders = replayKeepHeaders.value }
        return config
    }
}

extension TreeReader {
    private func located<T>(_ view: MappingView, _ key: String, _ convert: (Field) -> T?) -> Located<T>? {
        guard let field = view.field(key), let value = convert(field) else { return nil }
        return Located(value: value, path: field.path, mark: field.mark)
    }

    /// Reads the idempotency keys of `view`; the caller rejects unknown keys.
    func idempotencyOverrides(_ view: MappingView) -> IdempotencyOverrides {
        var o = IdempotencyOverrides()
        o.header = located(view, "header") { field in
            value(field, expected: "a header name", ValueParser.headerName)
        }
        o.keySyntax = located(view, "key_syntax") { choice($0, as: KeySyntax.self) }
        o.keyMaxLength = located(view, "key_max_length") { integer($0, in: 1...1024) }
        o.methods = located(view, "methods") { field in
            uniqueList(field, example: "[POST, PATCH]", identity: { $0 }) { item in
                value(item, expected: "an HTTP method", ValueParser.guardedMethod)
            }
        }
        o.required = located(view, "required") { bool($0) }
        o.ttl = located(view, "ttl") { duration($0, atLeast: .seconds(1)) }
        o.lease = located(view, "lease") { duration($0, atLeast: .seconds(1)) }
        o.concurrent = located(view, "concurrent") { choice($0, as: ConcurrentMode.self) }
        o.waitTimeout = located(view, "wait_timeout") { duration($0) }
        o.indeterminate = located(view, "indeterminate") { choice($0, as: IndeterminateMode.self) }
        o.releaseStatuses = located(view, "release_statuses") { field in
            uniqueList(field, example: "[429, 503]", identity: { String($0) }) { integer($0, in: 100...599) }
        }
        o.maxRequestBody = located(view, "max_request_body") { size($0, in: 1...IdempotencyOverrides.maxBody) }
        o.maxStoredBody = located(view, "max_stored_body") { size($0, in: 1...IdempotencyOverrides.maxBody) }

        if let scopeField = view.field("scope"), let scope = mapping(scopeField) {
            rejectUnknownKeys(scope, known: ["header", "missing"])
            o.scopeMissing = located(scope, "missing") { choice($0, as: ScopeMissingMode.self) }
            o.scopeHeader = located(scope, "header") { field in
                if Self.isNull(field.node) { return "" }
                return value(field, expected: "a header name or \"\"") { (text: String) throws(ValueProblem) -> String in
                    text.isEmpty ? "" : try ValueParser.headerName(text)
                }
            }
        }
        if let fingerprintField = view.field("fingerprint"), let fingerprint = mapping(fingerprintField) {
            rejectUnknownKeys(fingerprint, known: ["headers", "body", "ignore_fields"])
            o.fingerprintHeaders = located(fingerprint, "headers") { headerList($0) }
            o.fingerprintBody = located(fingerprint, "body") { choice($0, as: FingerprintBodyMode.self) }
            o.ignoreFields = located(fingerprint, "ignore_fields") { field in
                uniqueList(field, example: "[/meta/request_id]", identity: { $0 }) { item in
                    value(item, expected: "a JSON Pointer", ValueParser.jsonPointer)
                }
            }
        }
        if let replayField = view.field("replay"), let replay = mapping(replayField) {
            rejectUnknownKeys(replay, known: ["keep_headers"])
            o.replayKeepHeaders = located(replay, "keep_headers") { field in
                guard let items = list(field, example: "[Set-Cookie]") else { return nil }
                guard let headers = headerList(field) else { return nil }
                var valid = true
                for (item, header) in zip(items, headers) where IdempotencyOverrides.hopByHop.contains(header.lowercased()) {
                    report(item, "\(header) is a hop-by-hop header and is never replayed")
                    valid = false
                }
                return valid ? headers : nil
            }
        }
        return o
    }

    /// Checks rules between fields of `merged`, blaming the fields `level` set.
    /// A rule broken only by fields inherited from the parent was reported there.
    func validateCombination(_ merged: IdempotencyConfig, setAt level: IdempotencyOverrides) {
        if merged.ttl < merged.lease {
            let ttl = ValueParser.format(merged.ttl)
            let lease = ValueParser.format(merged.lease)
            if let place = level.ttl {
                report(place.path, at: place.mark, "must be at least lease (\(lease)), got \(ttl)")
            } else if let place = level.lease {
                report(place.path, at: place.mark, "must not exceed ttl (\(ttl)), got \(lease)")
            }
        }
        if !merged.ignoreFields.isEmpty, merged.fingerprintBody != .json {
            if let place = level.ignoreFields {
                report(place.path, at: place.mark, "ignore_fields needs fingerprint.body: json (body is \(merged.fingerprintBody.rawValue))")
            } else if let place = level.fingerprintBody {
                report(place.path, at: place.mark, "body: \(merged.fingerprintBody.rawValue) cannot drop the inherited ignore_fields; set ignore_fields: [] here too")
            }
        }
    }
}
