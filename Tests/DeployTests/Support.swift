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

/// What `idemproxy check-config` printed and how it exited.
struct CheckConfigResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the built binary's `check-config` on `yaml` (written to a temporary file) with exactly
/// `environment`, so nothing from the test's own environment (REDIS_URL, say) leaks in.
func checkConfig(_ yaml: String, environment: [String: String]) throws -> CheckConfigResult {
    let directory = NSTemporaryDirectory() + "idemproxy-deploy-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/idemproxy.yaml"
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: ProxyProcess.binary)
    process.arguments = ["check-config", "--config", path]
    process.environment = environment
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // The outputs are a few lines: reading to the end before waiting cannot fill a pipe.
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CheckConfigResult(
        status: process.terminationStatus,
        stdout: String(decoding: stdout, as: UTF8.self),
        stderr: String(decoding: stderr, as: UTF8.self))
}
