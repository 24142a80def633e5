import Foundation
import Testing
import TestSupport
import Yams

/// The repository root (this file is Tests/DeployTests/Support.swift).
let repositoryRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

/// The contents of `path`, relative to the repository root.
func repositoryFile(_ path: String) throws -> String {
    try String(contentsOfFile: repositoryRoot + "/" + path, encoding: .utf8)
}

func repositoryFileExists(_ path: String) -> Bool {
    FileManager.default.fileExists(atPath: repositoryRoot + "/" + path)
}

struct YAMLFailure: Error, CustomStringConvertible {
    var description: String
}

/// Every document of a (possibly multi-document) YAML text, as Yams builds them: mappings as
/// `[String: Any]` (keys made strings), sequences as `[Any]`, scalars as their resolved type.
func yamlDocuments(_ text: String, name: String) throws -> [Any] {
    var sequence = try Yams.load_all(yaml: text)
    var documents: [Any] = []
    while let document = sequence.next() { documents.append(normalised(document)) }
    if let error = sequence.error { throw YAMLFailure(description: "\(name): \(error)") }
    return documents
}

/// Yams gives mappings as `[AnyHashable: Any]`; manifests only have string keys.
private func normalised(_ value: Any) -> Any {
    if let mapping = value as? [AnyHashable: Any] {
        var result: [String: Any] = [:]
        for (key, item) in mapping { result["\(key.base)"] = normalised(item) }
        return result
    }
    if let list = value as? [Any] { return list.map(normalised) }
    return value
}

/// Walks `[String: Any]` / `[Any]` trees: `tree["spec", "template", "spec"]`.
struct Tree {
    let value: Any?

    init(_ value: Any?) { self.value = value }

    subscript(_ path: String...) -> Tree {
        var current = value
        for key in path { current = (current as? [String: Any])?[key] }
        return Tree(current)
    }

    var map: [String: Any]? { value as? [String: Any] }
    var list: [Tree] { (value as? [Any])?.map(Tree.init) ?? [] }
    var string: String? { value as? String }
    var int: Int? { value as? Int }
    var bool: Bool? { value as? Bool }
    /// A scalar as YAML text would show it (`9090` and `"9090"` both give "9090").
    var text: String? {
        switch value {
        case let string as String: return string
        case let int as Int: return String(int)
        case let bool as Bool: return String(bool)
        default: return nil
        }
    }
    /// The element of a list whose `name` is `name`.
    func named(_ name: String) -> Tree? { list.first { $0["name"].string == name } }
}

/// Runs the built binary's `check-config` on `yaml` (written to a temporary file) with exactly
/// `environment`, so nothing from the test's own environment (REDIS_URL, say) leaks in.
func checkConfig(_ yaml: String, environment: [String: String]) throws -> IdemproxyCLI.Run {
    try IdemproxyCLI.run(["check-config"], yaml: yaml, environment: environment, inheritEnvironment: false)
}
