#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a scalar could not be turned into a value; the message completes
/// `key.path: <message>`.
struct ValueProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Text-to-value conversions for the scalar types of the schema.
enum ValueParser {
    // MARK: Durations

    static let durationExample = "a duration such as 250ms, 2s, 5m or 24h"

    /// `250ms`, `30s`, `5m`, `24h`, also compounds such as `1h30m`; `0` alone is zero.
    static func duration(_ text: String) throws(ValueProblem) -> Duration {
        let bytes = Array(text.utf8)
        if bytes == [UInt8(ascii: "0")] { return .zero }
        guard !bytes.isEmpty else { throw ValueProblem("expected \(durationExample), got \"\"") }
        if bytes.allSatisfy(isDigit) {
            throw ValueProblem("expected \(durationExample), got \"\(text)\" (a unit is required)")
        }
        var total: Int64 = 0
        var index = 0
        while index < bytes.count {
            var number: Int64 = 0
            let start = index
            while index < bytes.count, isDigit(bytes[index]) {
                let (times10, overflow1) = number.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(Int64(bytes[index] - UInt8(ascii: "0")))
                if overflow1 || overflow2 { throw ValueProblem("duration \"\(text)\" is too large") }
                number = sum
                index += 1
            }
            let unitStart = index
            while index < bytes.count, isLetter(bytes[index]) { index += 1 }
            guard index > start, unitStart > start, index > unitStart else {
                throw ValueProblem("expected \(durationExample), got \"\(text)\"")
            }
            let unit = String(decoding: bytes[unitStart..<index], as: UTF8.self)
            let scale: Int64
            switch unit {
            case "ms": scale = 1_000_000
            case "s": scale = 1_000_000_000
            case "m": scale = 60 * 1_000_000_000
            case "h": scale = 3600 * 1_000_000_000
            default:
                throw ValueProblem("expected \(durationExample), got \"\(text)\" (unknown unit \"\(unit)\"; use ms, s, m or h)")
            }
            let (part, overflow1) = number.multipliedReportingOverflow(by: scale)
            let (sum, overflow2) = total.addingReportingOverflow(part)
            if overflow1 || overflow2 { throw ValueProblem("duration \"\(text)\" is too large") }
            total = sum
        }
        return .nanoseconds(total)
    }

    /// Shortest exact rendering in the config's own units (`1h30m`, `250ms`, `0s`).
    static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        var nanos = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        if nanos == 0 { return "0s" }
        var text = nanos < 0 ? "-" : ""
        nanos = abs(nanos)
        if nanos % 1_000_000 != 0 { return text + "\(nanos)ns" }
        var millis = nanos / 1_000_000
        let units: [(Int64, String)] = [(3_600_000, "h"), (60_000, "m"), (1000, "s"), (1, "ms")]
        for (size, name) in units where millis >= size {
            text += "\(millis / size)\(name)"
            millis %= size
        }
        return text
    }

    // MARK: Sizes

    static let sizeExample = "a size such as 512, 16KiB, 1MiB or 1GiB"

    /// Plain bytes or a `KiB`/`MiB`/`GiB` multiple (a trailing `B` and one space are allowed).
    static func size(_ text: String) throws(ValueProblem) -> Int {
        let bytes = Array(text.utf8)
        var index = 0
        var number = 0
        while index < bytes.count, isDigit(bytes[index]) {
            let (times10, overflow1) = number.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(bytes[index] - UInt8(ascii: "0")))
            if overflow1 || overflow2 { throw ValueProblem("size \"\(text)\" is too large") }
            number = sum
            index += 1
        }
        guard index > 0 else { throw ValueProblem("expected \(sizeExample), got \"\(text)\"") }
        if index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
        let unit = String(decoding: bytes[index...], as: UTF8.self)
        let scale: Int
        switch unit {
        case "", "B": scale = 1
        case "KiB": scale = 1 << 10
        case "MiB": scale = 1 << 20
        case "GiB": scale = 1 << 30
        case "K", "KB", "k", "kB", "kb", "Ki", "M", "MB", "mb", "Mi", "G", "GB", "gb", "Gi":
            throw ValueProblem("expected \(sizeExample), got \"\(text)\" (use the 1024-based units KiB, MiB or GiB)")
        default:
            throw ValueProblem("expected \(sizeExample), got \"\(text)\"")
        }
        let (value, overflow) = number.multipliedReportingOverflow(by: scale)
        if overflow { throw ValueProblem("size \"\(text)\" is too large") }
        return value
    }

    /// `1GiB`, `16KiB`, `1536` (exact rendering in the largest unit that divides).
    static func formatSize(_ size: Int) -> String {
        for (shift, name) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] where size != 0 && size % (1 << shift) == 0 {
            return "\(size >> shift)\(name)"
        }
        return "\(size)"
    }

    // MARK: Scalars

    static func integer(_ text: String) throws(ValueProblem) -> Int {
        var digits = text
        if text.contains("_"), !text.hasPrefix("_"), !text.hasSuffix("_"), !text.contains("__") {
            digits = text.replacing("_", with: "")
        }
        guard let value = Int(digits) else { throw ValueProblem("expected an integer, got \"\(text)\"") }
        return value
    }

    static func bool(_ text: String) throws(ValueProblem) -> Bool {
        switch text {
        case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON": return true
        case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF": return false
        default: throw ValueProblem("expected true or false, got \"\(text)\"")
        }
    }

    static func choice<E: RawRepresentable & CaseIterable>(_ text: String, as _: E.Type) throws(ValueProblem) -> E where E.RawValue == String {
        if let value = E(rawValue: text) { return value }
        let names = E.allCases.map(\.rawValue)
        let list = names.count == 2 ? "\(names[0]) or \(names[1])" : names.dropLast().joined(separator: ", ") + " or " + names.last!
        var message = "expected \(list), got \"\(text)\""
        if let close = names.first(where: { $0 == text.lowercased() || $0 == text.lowercased().replacing("-", with: "_") }) {
            message += " (did you mean \(close)?)"
        }
        throw ValueProblem(message)
    }

    // MARK: Tokens and methods

    /// RFC 9110 `token` (field names, method names).
    static func isToken(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenChar)
    }

    static func isTokenChar(_ byte: UInt8) -> Bool {
        if isDigit(byte) || isLetter(byte) { return true }
        switch byte {
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    static func headerName(_ text: String) throws(ValueProblem) -> String {
        guard isToken(text) else {
            throw ValueProblem("expected a header name (letters, digits and !#$%&'*+-.^_`|~), got \"\(text)\"")
        }
        return text
    }

    /// A method name as a request line carries it: an uppercase token.
    static func methodName(_ text: String) throws(ValueProblem) -> String {
        guard isToken(text) else { throw ValueProblem("expected an HTTP method such as POST, got \"\(text)\"") }
        guard !text.utf8.contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }) else {
            throw ValueProblem("method names are case-sensitive; use \(text.uppercased()), got \"\(text)\"")
        }
        return text
    }

    static let guardableMethods = ["POST", "PATCH", "PUT", "DELETE"]

    /// A method idempotency keys can guard.
    static func guardedMethod(_ text: String) throws(ValueProblem) -> String {
        let method = try methodName(text)
        switch method {
        case "POST", "PATCH", "PUT", "DELETE":
            return method
        case "GET", "HEAD", "OPTIONS", "TRACE":
            throw ValueProblem("\(method) is a safe method and needs no idempotency key; guarded methods are POST, PATCH, PUT and DELETE")
        default:
            throw ValueProblem("\(method) cannot be guarded; guarded methods are POST, PATCH, PUT and DELETE")
        }
    }

    // MARK: JSON Pointer

    static func jsonPointer(_ text: String) throws(ValueProblem) -> String {
        guard text.isEmpty || text.hasPrefix("/") else {
            throw ValueProblem("expected a JSON Pointer such as /meta/request_id (empty or starting with /), got \"\(text)\"")
        }
        let bytes = Array(text.utf8)
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "~") {
            let next = index + 1 < bytes.count ? bytes[index + 1] : 0
            guard next == UInt8(ascii: "0") || next == UInt8(ascii: "1") else {
                throw ValueProblem("invalid JSON Pointer \"\(text)\": ~ must be followed by 0 or 1 (~0 is ~, ~1 is /)")
            }
        }
        return text
    }

    // MARK: Addresses

    static let listenExample = "host:port with an IPv4 address, [IPv6 address] or localhost, such as 0.0.0.0:8080"

    /// A listen address; the host must be numeric or `localhost`. Port 0 asks for any free port.
    static func listenAddress(_ text: String) throws(ValueProblem) -> SocketAddressSpec {
        let (rawHost, portText, bracketed) = try splitHostPort(text, example: listenExample)
        guard let portText else {
            throw ValueProblem("expected \(listenExample), got \"\(text)\" (the port is missing)")
        }
        guard let port = UInt16(portText), portText.utf8.allSatisfy(isDigit) else {
            throw ValueProblem("port must be between 0 and 65535, got \"\(portText)\"")
        }
        var host = rawHost
        if bracketed {
            guard isIPv6Literal(host) else { throw ValueProblem("\"\(host)\" is not an IPv6 address") }
        } else if host.isEmpty {
            host = "0.0.0.0"
        } else if host.lowercased() == "localhost" {
            host = "127.0.0.1"
        } else if !isIPv4Literal(host) {
            throw ValueProblem("expected \(listenExample), got \"\(text)\" (listen hosts must be numeric or localhost)")
        }
        return SocketAddressSpec(host: host, port: port)
    }

    /// Splits `host:port` / `[v6]:port` / `host`.
    private static func splitHostPort(_ text: String, example: String) throws(ValueProblem) -> (host: String, port: String?, bracketed: Bool) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw ValueProblem("expected \(example), got \"\(text)\" (missing ])")
            }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (host, nil, true) }
            guard rest.hasPrefix(":") else { throw ValueProblem("expected \(example), got \"\(text)\"") }
            return (host, String(rest.dropFirst()), true)
        }
        let colons = text.count(where: { $0 == ":" })
        if colons > 1 {
            throw ValueProblem("expected \(example), got \"\(text)\" (write IPv6 addresses in brackets: [::1]:8080)")
        }
        guard let colon = text.firstIndex(of: ":") else { return (text, nil, false) }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]), false)
    }

    static func isIPv4Literal(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }

    static func isIPv6Literal(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }

    /// DNS name (letters, digits, `-`, `_`, dots; labels of 1…63) or an IPv4 literal.
    static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63, !label.hasPrefix("-"), !label.hasSuffix("-") else { return false }
            guard label.utf8.allSatisfy({ isDigit($0) || isLetter($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
                return false
            }
        }
        return true
    }

    /// Host and port of a URL authority; the port must be 1…65535.
    private static func urlHostPort(_ authority: String, defaultPort: UInt16, example: String, url: String) throws(ValueProblem) -> (String, UInt16) {
        let (host, portText, bracketed) = try splitHostPort(authority, example: example)
        if bracketed {
            guard isIPv6Literal(host) else { throw ValueProblem("\"\(host)\" in \"\(url)\" is not an IPv6 address") }
        } else if host.isEmpty {
            throw ValueProblem("expected \(example), got \"\(url)\" (the host is missing)")
        } else if !isHostName(host) {
            throw ValueProblem("\"\(host)\" in \"\(url)\" is not a valid host name or address")
        }
        guard let portText else { return (host, defaultPort) }
        guard portText.utf8.allSatisfy(isDigit), let port = UInt16(portText), port > 0 else {
            throw ValueProblem("port must be between 1 and 65535, got \"\(portText)\" in \"\(url)\"")
        }
        return (host, port)
    }

    /// `scheme://rest` with a case-insensitive scheme.
    private static func splitScheme(_ text: String) -> (scheme: String, rest: Substring)? {
        guard let range = text.firstRange(of: "://") else { return nil }
        return (text[..<range.lowerBound].lowercased(), text[range.upperBound...])
    }

    static let upstreamExample = "an http:// URL such as http://127.0.0.1:3000"

    struct UpstreamURL {
        var host: String
        var port: UInt16
        var pathPrefix: String
    }

    /// `http://host[:port][/path/prefix]`.
    static func upstreamURL(_ text: String) throws(ValueProblem) -> UpstreamURL {
        guard let (scheme, rest) = splitScheme(text) else {
            throw ValueProblem("expected \(upstreamExample), got \"\(text)\"")
        }
        if scheme == "https" {
            throw ValueProblem("https upstreams are not supported; terminate TLS in front (got \"\(text)\")")
        }
        guard scheme == "http" else { throw ValueProblem("expected \(upstreamExample), got \"\(text)\"") }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        let tail = rest[authorityEnd...]
        if authority.contains("@") {
            throw ValueProblem("credentials in the upstream URL are not supported, got \"\(text)\"")
        }
        let (host, port) = try urlHostPort(authority, defaultPort: 80, example: upstreamExample, url: text)
        if tail.contains("?") || tail.contains("#") {
            throw ValueProblem("the upstream URL must not have a query or fragment, got \"\(text)\"")
        }
        guard tail.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ValueProblem("the upstream URL path must be printable ASCII (percent-encode other bytes), got \"\(text)\"")
        }
        var path = Substring(tail)
        while path.hasSuffix("/") { path = path.dropLast() }
        return UpstreamURL(host: host, port: port, pathPrefix: String(path))
    }

    /// `host:port` of a Sentinel (a name or an address; the port defaults to 26379).
    static func sentinelNode(_ text: String) throws(ValueProblem) -> SocketAddressSpec {
        let (host, port) = try urlHostPort(text, defaultPort: 26379, example: "host:port such as 10.0.0.7:26379", url: text)
        return SocketAddressSpec(host: host, port: port)
    }

    /// `host:port` of a Redis Cluster node (the port defaults to 6379).
    static func clusterNode(_ text: String) throws(ValueProblem) -> SocketAddressSpec {
        let (host, port) = try urlHostPort(text, defaultPort: 6379, example: "host:port such as 10.0.0.7:6379", url: text)
        return SocketAddressSpec(host: host, port: port)
    }

    static let redisExample = "a URL such as redis://127.0.0.1:6379/0, redis://:password@host:6379/0 or rediss://host:6380/0"

    struct RedisURL {
        /// `rediss://`: TLS.
        var tls: Bool
        var host: String
        var port: UInt16
        var username: String?
        var password: String?
        var database: Int
    }

    /// `redis[s]://[[user]:password@]host[:port][/db]`; a lone `secret@` is a password.
    static func redisURL(_ text: String) throws(ValueProblem) -> RedisURL {
        guard let (scheme, rest) = splitScheme(text) else {
            throw ValueProblem("expected \(redisExample), got \"\(redactedURL(text))\"")
        }
        guard scheme == "redis" || scheme == "rediss" else {
            throw ValueProblem("expected \(redisExample), got \"\(redactedURL(text))\"")
        }
        var username: String?
        var password: String?
        var location = rest
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            location = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = percentDecoded(userinfo[..<colon])
                let secret = percentDecoded(userinfo[userinfo.index(after: colon)...])
                username = user.isEmpty ? nil : user
                password = secret.isEmpty ? nil : secret
            } else {
                let secret = percentDecoded(userinfo)
                password = secret.isEmpty ? nil : secret
            }
        }
        let shown = redactedURL(text)
        if location.contains("?") || location.contains("#") {
            throw ValueProblem("the Redis URL must not have a query or fragment, got \"\(shown)\"")
        }
        let slash = location.firstIndex(of: "/") ?? location.endIndex
        let (host, port) = try urlHostPort(String(location[..<slash]), defaultPort: 6379, example: redisExample, url: shown)
        var database = 0
        let path = location[slash...].dropFirst()
        if !path.isEmpty {
            guard path.utf8.allSatisfy(isDigit), let number = Int(path) else {
                throw ValueProblem("the Redis database must be a non-negative integer, got \"\(path)\" in \"\(shown)\"")
            }
            database = number
        }
        return RedisURL(tls: scheme == "rediss", host: host, port: port, username: username, password: password, database: database)
    }

    /// The URL with any password replaced by `***`, for messages.
    static func redactedURL(_ text: String) -> String {
        guard let schemeEnd = text.firstRange(of: "://"), let at = text.lastIndex(of: "@"), at > schemeEnd.upperBound else {
            return text
        }
        let userinfo = text[schemeEnd.upperBound..<at]
        let user = userinfo.firstIndex(of: ":").map { userinfo[..<$0] + ":" } ?? ""
        return text[..<schemeEnd.upperBound] + user + "***" + text[at...]
    }

    /// Decodes `%XX` escapes; anything else is kept as written.
    static func percentDecoded(_ text: some StringProtocol) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return String(text) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
               let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Paths

    /// A route path prefix: starts with `/`, printable ASCII, no query or fragment.
    static func pathPrefix(_ text: String) throws(ValueProblem) -> String {
        guard text.hasPrefix("/") else {
            throw ValueProblem("expected a path prefix starting with /, got \"\(text)\"")
        }
        guard text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ValueProblem("path prefixes must be printable ASCII without spaces (percent-encode other bytes), got \"\(text)\"")
        }
        guard !text.contains("?"), !text.contains("#") else {
            throw ValueProblem("path prefixes match the path only and must not contain ? or #, got \"\(text)\"")
        }
        return text
    }

    // MARK: Bytes

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    static func isBearerToken(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        let body = bytes.prefix { $0 != UInt8(ascii: "=") }
        guard !body.isEmpty, bytes[body.count...].allSatisfy({ $0 == UInt8(ascii: "=") }) else { return false }
        return body.allSatisfy { byte in
            isDigit(byte) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z")) || "-._~+/".utf8.contains(byte)
        }
    }

    static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// RFC 6901 helpers.
enum JSONPointer {
    /// Unescaped reference tokens of a valid pointer.
    static func referenceTokens(_ pointer: String) -> [String] {
        guard !pointer.isEmpty else { return [] }
        return pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            String($0.replacing("~1", with: "/").replacing("~0", with: "~"))
        }
    }
}
