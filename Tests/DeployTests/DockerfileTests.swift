import Foundation
import Testing

/// The Dockerfile builds through scripts/build (the one place the release build is defined)
/// and copies only files that exist and reach the build context.
@Suite struct DockerfileTests {
    struct Instruction {
        var keyword: String
        var arguments: String
    }

    struct Stage {
        var name: String?
        var instructions: [Instruction]
    }

    /// The Dockerfile's stages, continuation lines joined and comments dropped.
    static func stages() throws -> [Stage] {
        var logical: [String] = []
        var pending = ""
        for raw in try repositoryFile("Dockerfile").split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || (line.isEmpty && pending.isEmpty) { continue }
            if line.hasSuffix("\\") {
                pending += line.dropLast() + " "
            } else {
                logical.append(pending + line)
                pending = ""
            }
        }
        var stages: [Stage] = []
        for line in logical where !line.isEmpty {
            let parts = line.split(separator: " ", maxSplits: 1)
            let instruction = Instruction(keyword: parts[0].uppercased(), arguments: parts.count > 1 ? String(parts[1]) : "")
            if instruction.keyword == "FROM" {
                let words = instruction.arguments.split(separator: " ")
                let name = words.count == 3 && words[1].uppercased() == "AS" ? String(words[2]) : nil
                stages.append(Stage(name: name, instructions: []))
            } else {
                try #require(!stages.isEmpty, "\(line) before FROM")
                stages[stages.count - 1].instructions.append(instruction)
            }
        }
        return stages
    }

    /// The sources of a `COPY` without `--from` (every word but the flags and the destination).
    static func copySources(_ instruction: Instruction) -> [String]? {
        let words = instruction.arguments.split(separator: " ").map(String.init)
        if words.contains(where: { $0.hasPrefix("--from=") }) { return nil }
        let paths = words.filter { !$0.hasPrefix("--") }
        return Array(paths.dropLast())
    }

    static func dockerignore() throws -> [String] {
        try repositoryFile(".dockerignore").split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    @Test func buildStageBuildsThroughScriptsBuild() throws {
        let stages = try Self.stages()
        #expect(stages.count == 2)
        let build = try #require(stages.first { $0.name == "build" })
        let runs = build.instructions.filter { $0.keyword == "RUN" }
        #expect(!runs.isEmpty)
        for run in runs {
            #expect(run.arguments.contains("scripts/build"), "RUN without scripts/build: \(run.arguments)")
        }
        #expect(runs.contains { $0.arguments.contains("scripts/build --static-swift-stdlib") })
        // The build itself is scripts/build's: no toolchain command in the Dockerfile.
        for stage in stages {
            for instruction in stage.instructions {
                #expect(!instruction.arguments.contains("swift build"), "\(instruction.keyword) \(instruction.arguments)")
            }
        }
        // The build stage has what SwiftPM needs to load the package and scripts/build to run.
        let copied = Set(build.instructions.filter { $0.keyword == "COPY" }.compactMap(Self.copySources).joined())
        #expect(copied.isSuperset(of: ["scripts", "Package.swift", "Sources", "Tests"]), "\(copied)")
        let script = repositoryRoot + "/scripts/build"
        #expect(FileManager.default.isExecutableFile(atPath: script))
        #expect(try repositoryFile("scripts/build").contains("swift build -c release --product idemproxy"))
    }

    @Test func everyCopiedFileExistsAndIsInTheContext() throws {
        let ignored = try Self.dockerignore()
        var sources: [String] = []
        for stage in try Self.stages() {
            for instruction in stage.instructions where instruction.keyword == "COPY" || instruction.keyword == "ADD" {
                if instruction.arguments.contains("--from=") {
                    // Copies out of an earlier stage name that stage.
                    let from = instruction.arguments.split(separator: " ").first { $0.hasPrefix("--from=") }
                    let stageName = from.map { String($0.dropFirst("--from=".count)) }
                    #expect(try Self.stages().contains { $0.name == stageName }, "\(instruction.arguments)")
                    continue
                }
                sources += Self.copySources(instruction) ?? []
            }
        }
        #expect(!sources.isEmpty)
        for source in sources {
            #expect(repositoryFileExists(source), "COPY \(source): no such file")
            // A pattern excludes the path itself or a directory above it (a pattern below a
            // copied directory, such as Tests/Fuzz, leaves the rest of it in).
            let excluded = ignored.filter { pattern in
                fnmatch(pattern, source, 0) == 0 || source.hasPrefix(pattern + "/")
            }
            #expect(excluded.isEmpty, "COPY \(source) is excluded by .dockerignore \(excluded)")
        }
        // What the build must not ship: build outputs and the repository's history.
        for pattern in [".build", ".git"] {
            #expect(ignored.contains(pattern), ".dockerignore lacks \(pattern)")
        }
    }

    @Test func runtimeStageRunsAsTheUserTheDeploymentExpects() throws {
        let runtime = try #require(try Self.stages().last)
        let user = try #require(runtime.instructions.last { $0.keyword == "USER" }?.arguments)
        let uid = user.split(separator: ":").first.map(String.init)
        // Numeric, so Kubernetes can verify runAsNonRoot; the same user deployment.yaml names.
        #expect(uid == "10001")
        #expect(try KubernetesManifestTests.proxyContainer()["securityContext", "runAsUser"].int == 10001)
        // The image's default command reads the path the manifests mount their config at.
        let command = try #require(runtime.instructions.last { $0.keyword == "CMD" }?.arguments)
        #expect(command.contains("/etc/idemproxy/idemproxy.yaml"))
    }
}
