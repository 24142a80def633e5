/// Everything that is wrong with a configuration file.
///
/// One error carries every problem found in the file, in file order, so an
/// operator can fix them all in one go. Each problem names the file, the line
/// and column, and the key path (`routes[1].match.path_prefix`).
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// One problem in the file.
    public struct Issue: Sendable, Equatable, CustomStringConvertible {
        /// The file name as given to the loader.
        public var file: String
        /// 1-based line, when the problem has a position in the file.
        public var line: Int?
        /// 1-based column (in Unicode scalars), when known.
        public var column: Int?
        /// Dotted key path with `[i]` for list items; empty for file-level problems.
        public var path: String
        /// What is wrong.
        public var message: String

        public init(file: String, line: Int?, column: Int?, path: String, message: String) {
            self.file = file
            self.line = line
            self.column = column
            self.path = path
            self.message = message
        }

        /// `file:line:column: key.path: message`
        public var description: String {
            var text = ""
            if let line {
                text += "\(file):\(line):"
                if let column { text += "\(column):" }
                text += " "
            }
            if !path.isEmpty { text += "\(path): " }
            text += message
            return text
        }
    }

    /// All problems, ordered by position in the file.
    public var issues: [Issue]

    public init(issues: [Issue]) {
        self.issues = issues
    }

    /// One line per problem.
    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }
}
