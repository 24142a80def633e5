/// Writes the Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, then
/// samples. Label values are escaped as the format requires (backslash, quote, newline).
public struct PrometheusText {
    public private(set) var text = ""

    public init() {}

    public mutating func header(_ name: String, type: String, help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    public mutating func sample(_ name: String, labels: [(String, String)] = [], value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{"
            text += labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
            text += "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    public mutating func counter(_ name: String, help: String, samples: [([(String, String)], Int)]) {
        header(name, type: "counter", help: help)
        for (labels, value) in samples { sample(name, labels: labels, value: Double(value)) }
    }

    public mutating func gauge(_ name: String, help: String, value: Int) {
        header(name, type: "gauge", help: help)
        sample(name, value: Double(value))
    }

    /// One histogram family; `series` gives each labelled histogram.
    public mutating func histogram(_ name: String, help: String, series: [([(String, String)], Histogram)]) {
        header(name, type: "histogram", help: help)
        for (labels, histogram) in series {
            let snapshot = histogram.snapshot()
            for (index, bound) in histogram.bounds.enumerated() {
                sample(name + "_bucket", labels: labels + [("le", Self.format(bound))], value: Double(snapshot.cumulative[index]))
            }
            sample(name + "_bucket", labels: labels + [("le", "+Inf")], value: Double(snapshot.count))
            sample(name + "_sum", labels: labels, value: snapshot.sum)
            sample(name + "_count", labels: labels, value: Double(snapshot.count))
        }
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// Integers without a decimal point, other values in Swift's shortest round-trip form.
    static func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
