import Foundation
import Testing
import TestSupport

/// `scripts/demo` is the project's one-command explanation, so CI runs it (quick mode, on the
/// binary this suite built) and checks the claim it prints: retries without idemproxy execute
/// charges twice, retries through it never do and get replays instead.
@Suite struct DemoScriptTests {
    @Test func retriesDuplicateChargesDirectlyAndReplayThroughTheProxy() throws {
        try #require(FileManager.default.isExecutableFile(atPath: ProxyProcess.binary), "build the idemproxy executable first (swift build)")
        var root = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        root.removeLast(3)  // Tests/ProxyTests/DemoScriptTests.swift
        var environment = ProcessInfo.processInfo.environment
        environment["DEMO_QUICK"] = "1"
        environment["IDEMPROXY_BIN"] = ProxyProcess.binary
        environment["DEMO_CHARGES"] = nil
        environment["DEMO_SEED"] = nil
        // Both streams in one: a failure's explanation is on stderr. SIGTERM after 90 s runs
        // the script's cleanup.
        let output = try Subprocess.run(
            "/bin/bash", [root.joined(separator: "/") + "/scripts/demo"], environment: environment, mergeOutput: true, timeoutSeconds: 90)
        let text = output.stdout

        #expect(output.status == 0, "scripts/demo failed:\n\(text)")
        let line = try #require(text.split(separator: "\n").last { $0.hasPrefix("DEMO_RESULT ") }, "no DEMO_RESULT line:\n\(text)")
        var result: [String: Int] = [:]
        for field in line.split(separator: " ").dropFirst() {
            let parts = field.split(separator: "=")
            if parts.count == 2 { result[String(parts[0])] = Int(parts[1]) }
        }
        let directIntended = try #require(result["direct_intended"]), directExecuted = try #require(result["direct_executed"])
        let proxyIntended = try #require(result["proxy_intended"]), proxyExecuted = try #require(result["proxy_executed"])
        let replays = try #require(result["proxy_replays"])
        #expect(directExecuted > directIntended, "no duplicates without the proxy:\n\(text)")
        #expect(proxyExecuted == proxyIntended, "duplicates through the proxy:\n\(text)")
        #expect(replays > 0, "no replays through the proxy:\n\(text)")
    }
}
