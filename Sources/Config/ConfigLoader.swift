import Foundation
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads and validates the YAML configuration.
public enum ConfigLoader {
    /// Reads the file at `path` and validates it. Every problem found is in
    /// the thrown error, not just the first.
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> IdemproxyConfig {
        let text: String
        switch readFile(path) {
        case .success(let contents): text = contents
        case .failure(let reason):
            throw ConfigError(issues: [ConfigError.Issue(file: path, line: nil, column: nil, path: "", message: "cannot read \(path): \(reason)")])
        }
        return try parse(yaml: text, fileName: path, environment: environment)
    }

    /// Validates configuration text; `fileName` only labels the problems.
    public static func parse(
        yaml: String,
        fileName: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> IdemproxyConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml, .default, .default, .utf8)
        } catch {
            throw ConfigError(issues: [syntaxIssue(error, fileName: fileName)])
        }
        let reader = TreeReader(fileName: fileName, environment: environment)
        let start = Position(line: 1, column: 1)
        let config = SchemaDecoder(reader: reader).decode(
            Field(node: root ?? Node([(Node, Node)]()), path: "", mark: Position(root?.mark) ?? start))
        guard let config, reader.issues.isEmpty else {
            let ordered = reader.issues.enumerated().sorted { a, b in
                let left = (a.element.line ?? 0, a.element.column ?? 0, a.offset)
                let right = (b.element.line ?? 0, b.element.column ?? 0, b.offset)
                return left < right
            }.map(\.element)
            throw ConfigError(issues: ordered)
        }
        return config
    }

    private static func syntaxIssue(_ error: any Error, fileName: String) -> ConfigError.Issue {
        func issue(_ mark: Position?, _ message: String) -> ConfigError.Issue {
            ConfigError.Issue(file: fileName, line: mark?.line, column: mark?.column, path: "", message: message)
        }
        guard let yamlError = error as? YamlError else {
            return issue(nil, "invalid YAML: \(error)")
        }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            var message = "invalid YAML: \(problem)"
            if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
            return issue(Position(mark), message)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.map { "\"\($0)\"" }.joined(separator: ", ")
            return issue(Position(context.mark), "invalid YAML: duplicate key \(names) in one mapping")
        case .reader(let problem, let offset, _, let text):
            var mark: Position?
            if let offset {
                let prefix = text.prefix(offset)
                let line = prefix.count(where: { $0 == "\n" }) + 1
                let column = prefix.reversed().prefix(while: { $0 != "\n" }).count + 1
                mark = Position(line: line, column: column)
            }
            return issue(mark, "invalid YAML: \(problem)")
        default:
            return issue(nil, "invalid YAML: \(yamlError)")
        }
    }

    private static func readFile(_ path: String) -> Result<String, ReadFailure> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(ReadFailure(errno)) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(ReadFailure(errno))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(ReadFailure(message: "the file is not valid UTF-8"))
        }
        return .success(text)
    }

    private struct ReadFailure: Error, CustomStringConvertible {
        let description: String
        init(message: String) { description = message }
        init(_ code: Int32) { description = String(cString: strerror(code)) }
    }
}
