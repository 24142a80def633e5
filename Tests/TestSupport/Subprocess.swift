import Foundation
import Glibc

/// Runs a program to completion and collects what it printed.
///
/// Output goes to temporary files this process opens and closes itself, never to `Pipe`s:
/// a `Pipe` handed to `Process` can have its descriptor closed a second time later, from
/// another thread, after the number was reused by an unrelated open file of a test running in
/// parallel (seen as EBADF on a file write elsewhere; swiftlang/swift#57827). With files, every descriptor has one
/// owner and one close.
public enum Subprocess {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// `environment` nil: this process's. `mergeOutput`: stderr goes into `stdout` too, in
    /// order. `timeoutSeconds`: SIGTERM after that long (the program's cleanup still runs).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
        mergeOutput: Bool = false, timeoutSeconds: Double? = nil
    ) throws -> Output {
        let out = try TemporaryOutput()
        let err = try TemporaryOutput()
        let process = try launch {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            if let environment { process.environment = environment }
            if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = out.handle
            process.standardError = mergeOutput ? out.handle : err.handle
            return process
        }
        let watchdog = DispatchWorkItem { process.terminate() }
        if let timeoutSeconds { DispatchQueue.global().asyncAfter(deadline: .now() + timeoutSeconds, execute: watchdog) }
        process.waitUntilExit()
        watchdog.cancel()
        return Output(status: process.terminationStatus, stdout: try out.text(), stderr: mergeOutput ? "" : try err.text())
    }

    /// An unlinked-on-close temporary file for one stream.
    private final class TemporaryOutput {
        let path: String
        let handle: FileHandle

        init() throws {
            var template = Array((NSTemporaryDirectory() + "idemproxy-out-XXXXXX").utf8CString)
            let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
            path = String(cString: template)
            handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        }

        func text() throws -> String {
            String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
        }

        deinit {
            try? handle.close()
            unlink(path)
        }
    }

    /// Runs the process `make` returns, with a fresh one again when starting fails with EBADF.
    /// Foundation closes, in the child it spawns, the descriptors it found open; one another
    /// test thread closed meanwhile fails the spawn with EBADF (nothing ran). A few tries always
    /// get through.
    public static func launch(_ make: () -> Process) throws -> Process {
        var attempt = 0
        while true {
            let process = make()
            do {
                try process.run()
                return process
            } catch let error as NSError where attempt < 5 && isBadDescriptor(error) {
                attempt += 1
                usleep(10_000)
            }
        }
    }

    private static func isBadDescriptor(_ error: NSError) -> Bool {
        if error.domain == NSPOSIXErrorDomain && error.code == Int(EBADF) { return true }
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError { return isBadDescriptor(underlying) }
        return false
    }
}
