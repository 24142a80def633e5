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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.joined(separator: "/") + "/scripts/demo"]
        var environment = ProcessInfo.processInfo.environment
        environment["DEMO_QUICK"] = "1"
        environment["IDEMPROXY_BIN"] = ProxyProcess.binary
        environment["DEMO_CHARGES"] = nil
        environment["DEMO_SEED"] = nil
        process.environment = environment
        // One pipe for both streams: a failure's explanation is on stderr, and two pipes read
        // one after the other could fill and block the script.
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // SIGTERM runs the script's cleanup; without it a hang would hold the pipe open.
        let watchdog = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 90, execute: watchdog)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        watchdog.cancel()

        #expect(process.terminationStatus == 0, "scripts/demo failed:\n\(text)")
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
