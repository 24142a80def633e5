import Yams

/// A 1-based line and column in the file.
struct Position {
    var line: Int
    var column: Int

    init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    init?(_ mark: Mark?) {
        guard let mark else { return nil }
        self.init(line: mark.line, column: mark.column)
    }
}

/// A value in the document together with its key path and the position
/// problems with it are reported at (the key for mapping values, the item
/// itself for list items).
struct Field {
    let node: Node
    let path: String
    let mark: Position?

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

/// A value with the place it was set, for cross-field checks after merging.
struct Located<Value> {
    var value: Value
    var path: String
    var mark: Position?
}

/// The entries of one mapping, by key text.
struct MappingView {
    let path: String
    /// Where "missing key" problems are reported: the mapping's own key.
    let mark: Position?
    let entries: [(name: String, key: Node, value: Node)]

    func field(_ name: String) -> Field? {
        guard let entry = entries.first(where: { $0.name == name }) else { return nil }
        return Field(node: entry.value, path: path.isEmpty ? name : "\(path).\(name)", mark: Position(entry.key.mark) ?? mark)
    }

    func contains(_ name: String) -> Bool { entries.contains { $0.name == name } }
}

/// Scalar text after environment expansion, remembering what was written.
struct ScalarText {
    let value: String
    let written: String

    /// `"value"`, plus the written form when expansion changed it.
    var shown: String {
        value == written ? "\"\(value)\"" : "\"\(value)\" (from \"\(written)\")"
    }
}

/// Walks the composed YAML tree, converting values and collecting every problem.
final class TreeReader {
    let fileName: String
    let environment: [String: String]
    private(set) var issues: [ConfigError.Issue] = []

    init(fileName: String, environment: [String: String]) {
        self.fileName = fileName
        self.environment = environment
    }

    func report(_ path: String, at mark: Position?, _ message: String) {
        issues.append(ConfigError.Issue(file: fileName, line: mark?.line, column: mark?.column, path: path, message: message))
    }

    func report(_ field: Field, _ message: String) {
        report(field.path, at: field.mark, message)
    }

    // MARK: Structure

    static func isNull(_ node: Node) -> Bool {
        guard case .scalar = node else { return false }
        return node.tag.rawValue == Tag.Name.null.rawValue
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        case .scalar: isNull(node) ? "no value" : "a scalar"
        }
    }

    /// The mapping at `field`; `null` reads as an empty mapping.
    func mapping(_ field: Field) -> MappingView? {
        if Self.isNull(field.node) {
            return MappingView(path: field.path, mark: field.mark, entries: [])
        }
        guard case .mapping(let mapping) = field.node else {
            report(field, "expected a mapping of keys, got \(describe(field.node))")
            return nil
        }
        var entries: [(String, Node, Node)] = []
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key, !Self.isNull(key) else {
                report(field.path, at: Position(key.mark) ?? field.mark, "keys must be plain strings, got \(Self.kind(key))")
                continue
            }
            entries.append((scalar.string, key, value))
        }
        return MappingView(path: field.path, mark: field.mark, entries: entries)
    }

    /// Reports every key of `view` not in `known`, with a suggestion where one is close.
    func rejectUnknownKeys(_ view: MappingView, known: [String], explain: (String) -> String? = { _ in nil }) {
        for entry in view.entries where !known.contains(entry.name) {
            let path = view.path.isEmpty ? entry.name : "\(view.path).\(entry.name)"
            var message = "unknown key"
            if let reason = explain(entry.name) {
                message += reason
            } else if entry.name == "<<" {
                message += "; YAML merge keys are not supported"
            } else if let suggestion = Suggestion.closest(to: entry.name, among: known) {
                message += " (did you mean \(suggestion)?)"
            } else {
                message += " (expected one of: \(known.joined(separator: ", ")))"
            }
            report(path, at: Position(entry.key.mark) ?? view.mark, message)
        }
    }

    /// The items of a list, each with its `[i]` path and own position.
    func list(_ field: Field, example: String) -> [Field]? {
        guard case .sequence(let sequence) = field.node else {
            report(field, "expected a list such as \(example), got \(describe(field.node))")
            return nil
        }
        return sequence.enumerated().map { index, node in
            Field(node: node, path: "\(field.path)[\(index)]", mark: Position(node.mark) ?? field.mark)
        }
    }

    // MARK: Scalars

    /// The expanded text of a scalar; `what` completes "expected …" when it is not one.
    func text(_ field: Field, expected what: String) -> ScalarText? {
        guard case .scalar(let scalar) = field.node, !Self.isNull(field.node) else {
            report(field, "expected \(what), got \(describe(field.node))")
            return nil
        }
        do {
            let value = try EnvironmentExpansion.expand(scalar.string, environment: environment)
            return ScalarText(value: value, written: scalar.string)
        } catch {
            switch error {
            case .unset(let name):
                report(field, "environment variable \(name) is not set (write ${\(name):-default} to give a default)")
            case .malformed(let reference, let reason):
                report(field, "invalid variable reference \"\(reference)\": \(reason)")
            }
            return nil
        }
    }

    /// Converts a scalar with `parse`, reporting its problem at the field.
    func value<T>(_ field: Field, expected what: String, _ parse: (String) throws(ValueProblem) -> T) -> T? {
        guard let text = text(field, expected: what) else { return nil }
        do {
            return try parse(text.value)
        } catch {
            var message = error.message
            if text.value != text.written { message += " (from \"\(text.written)\")" }
            report(field, message)
            return nil
        }
    }

    func string(_ field: Field) -> String? {
        text(field, expected: "a string")?.value
    }

    func bool(_ field: Field) -> Bool? {
        value(field, expected: "true or false", ValueParser.bool)
    }

    func integer(_ field: Field, in range: ClosedRange<Int>) -> Int? {
        guard let number = value(field, expected: "an integer", ValueParser.integer) else { return nil }
        guard range.contains(number) else {
            report(field, "must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
            return nil
        }
        return number
    }

    /// A duration of at least `minimum` (`exclusive`: greater than).
    func duration(_ field: Field, atLeast minimum: Duration = .zero, exclusive: Bool = false) -> Duration? {
        guard let duration = value(field, expected: ValueParser.durationExample, ValueParser.duration) else { return nil }
        if exclusive, duration <= minimum {
            report(field, "must be greater than \(ValueParser.format(minimum)), got \(ValueParser.format(duration))")
            return nil
        }
        if duration < minimum {
            report(field, "must be at least \(ValueParser.format(minimum)), got \(ValueParser.format(duration))")
            return nil
        }
        return duration
    }

    func size(_ field: Field, in range: ClosedRange<Int>) -> Int? {
        guard let size = value(field, expected: ValueParser.sizeExample, ValueParser.size) else { return nil }
        guard range.contains(size) else {
            let low = range.lowerBound == 1 ? "greater than 0" : "at least \(ValueParser.formatSize(range.lowerBound))"
            report(field, "must be \(low) and at most \(ValueParser.formatSize(range.upperBound)), got \(ValueParser.formatSize(size))")
            return nil
        }
        return size
    }

    func choice<E: RawRepresentable & CaseIterable>(_ field: Field, as type: E.Type) -> E? where E.RawValue == String {
        let names = E.allCases.map(\.rawValue).joined(separator: " or ")
        return value(field, expected: names) { (text: String) throws(ValueProblem) -> E in
            try ValueParser.choice(text, as: type)
        }
    }

    /// A list whose items each convert with `item`; duplicates (compared by
    /// `identity`) are reported at the repeated item.
    func uniqueList<T>(
        _ field: Field,
        example: String,
        identity: (T) -> String,
        item: (Field) -> T?
    ) -> [T]? {
        guard let items = list(field, example: example) else { return nil }
        var result: [T] = []
        var seen: Set<String> = []
        var failed = false
        for itemField in items {
            guard let value = item(itemField) else {
                failed = true
                continue
            }
            let key = identity(value)
            if !seen.insert(key).inserted {
                report(itemField, "\(key) is listed twice")
                failed = true
                continue
            }
            result.append(value)
        }
        return failed ? nil : result
    }

    func headerList(_ field: Field) -> [String]? {
        uniqueList(field, example: "[Content-Type]", identity: { $0.lowercased() }) { item in
            value(item, expected: "a header name", ValueParser.headerName)
        }
    }

    private func describe(_ node: Node) -> String {
        if case .scalar(let scalar) = node, !Self.isNull(node) {
            return "\"\(scalar.string)\""
        }
        return Self.kind(node)
    }
}

/// "Did you mean" suggestions for unknown keys.
enum Suggestion {
    static func closest(to key: String, among candidates: [String]) -> String? {
        let folded = fold(key)
        if let same = candidates.first(where: { fold($0) == folded }) { return same }
        var best: (String, Int)?
        for candidate in candidates {
            let distance = editDistance(Array(folded.utf8), Array(fold(candidate).utf8))
            let length = candidate.utf8.count
            let limit = length < 4 ? 1 : max(2, min(3, length / 3))
            if distance <= limit, distance < (best?.1 ?? .max) { best = (candidate, distance) }
        }
        if let best { return best.0 }
        // `listen_port` → `listen`, `timeout` → `idle_timeout`: a shared word.
        return candidates.first { candidate in
            candidate.utf8.count >= 4 && (key.hasPrefix(candidate + "_") || key.hasSuffix("_" + candidate))
        }
    }

    /// Lowercased without `_` and `-`, so `connectTimeout` finds `connect_timeout`.
    private static func fold(_ text: String) -> String {
        String(text.lowercased().unicodeScalars.filter { $0 != "_" && $0 != "-" })
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
