import Glibc

/// Structured log lines on stderr, one JSON object per line (or plain text), filtered by level.
/// Writes are single `write(2)` calls of whole lines, so lines from different loops never interleave.
public struct Log: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var name: String { ["debug", "info", "warn", "error"][rawValue] }
    }

    public var minimum: Level
    public var json: Bool

    public init(minimum: Level = .info, json: Bool = true) {
        self.minimum = minimum
        self.json = json
    }

    public func debug(_ message: String, _ fields: [String: String] = [:]) { write(.debug, message, fields) }
    public func info(_ message: String, _ fields: [String: String] = [:]) { write(.info, message, fields) }
    public func warning(_ message: String, _ fields: [String: String] = [:]) { write(.warning, message, fields) }
    public func error(_ message: String, _ fields: [String: String] = [:]) { write(.error, message, fields) }

    public func write(_ level: Level, _ message: String, _ fields: [String: String]) {
        guard level >= minimum else { return }
        var line: String
        if json {
            line = "{\"level\":\"\(level.name)\",\"msg\":"
            ProblemResponse.appendJSONString(message, to: &line)
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
                line += ",\"\(key)\":"
                ProblemResponse.appendJSONString(value, to: &line)
            }
            line += "}\n"
        } else {
            line = "\(level.name.uppercased()) \(message)"
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
            line += "\n"
        }
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
