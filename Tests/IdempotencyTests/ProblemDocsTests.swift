import Foundation
import Testing
import Idempotency

/// Every problem `type` URI resolves to a section of docs/problems.md (RFC 9457 §3.1.1: the
/// URI should lead to documentation), so a type added to the code without its documentation,
/// or documentation left behind for a type that is gone, fails here.
@Suite struct ProblemDocsTests {
    /// Statuses a type is sent with besides its default one.
    static let otherStatuses: [ProblemType: [Int]] = [.outcomeUnknown: [502, 504]]

    static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/IdempotencyTests/ProblemDocsTests.swift
        return parts.joined(separator: "/")
    }()

    /// The `## ` sections of docs/problems.md: GitHub anchor → text up to the next heading.
    static func sections() throws -> [(anchor: String, text: String)] {
        let text = try String(contentsOfFile: repositoryRoot + "/docs/problems.md", encoding: .utf8)
        var sections: [(anchor: String, text: String)] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") {
                sections.append((anchor(String(line.dropFirst(3))), ""))
            } else if !sections.isEmpty {
                sections[sections.count - 1].text += line + "\n"
            }
        }
        return sections
    }

    /// GitHub's heading anchor: lowercased, punctuation other than `-` and `_` removed,
    /// spaces turned into hyphens.
    static func anchor(_ heading: String) -> String {
        String(heading.lowercased().compactMap { character -> Character? in
            if character == " " { return "-" }
            return character.isLetter || character.isNumber || character == "-" || character == "_" ? character : nil
        })
    }

    @Test(arguments: ProblemType.allCases)
    func everyTypeHasASectionNamingItsStatus(_ type: ProblemType) throws {
        let matching = try Self.sections().filter { $0.anchor == type.rawValue }
        try #require(matching.count == 1, "docs/problems.md needs exactly one '## \(type.rawValue)' section")
        for status in [type.defaultStatus] + (Self.otherStatuses[type] ?? []) {
            #expect(matching[0].text.contains(String(status)), "the \(type.rawValue) section does not mention \(status)")
        }
    }

    @Test func noSectionForATypeThatDoesNotExist() throws {
        let known = Set(ProblemType.allCases.map(\.rawValue))
        for section in try Self.sections() {
            #expect(known.contains(section.anchor), "docs/problems.md has a section '\(section.anchor)' for no problem type")
        }
    }

    @Test func theReadmeTableLinksEveryType() throws {
        let readme = try String(contentsOfFile: Self.repositoryRoot + "/README.md", encoding: .utf8)
        for type in ProblemType.allCases {
            #expect(readme.contains("[`\(type.uri)`](docs/problems.md#\(type.rawValue))"), "README does not link \(type.rawValue)")
        }
    }
}
