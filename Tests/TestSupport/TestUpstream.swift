import Foundation
import Glibc
import Synchronization

/// A real HTTP/1.1 origin on a loopback socket, one thread per connection, that records every
/// byte it receives. Tests use the recording to prove what the proxy did (and did not) forward.
public final class TestUpstream: @unchecked Sendable {
    /// What the origin does with one parsed request.
    public enum Behaviour: Sendable {
        /// Answer with this status, headers and body (Content-Length framing).
        case respond(status: Int, headers: [(String, String)], body: [UInt8])
        /// Answer with a chunked body made of these pieces.
        case chunked(status: Int, pieces: [[UInt8]])
        /// Answer, then close the connection with the body framed by EOF.
        case untilClose(status: Int, body: [UInt8])
        /// Read the request and never answer.
        case silent
        /// Close the connection right after reading the request.
        case closeImmediately
        /// Stream `total` bytes of body with Content-Length.
        case download(total: Int)
        /// Wait, then answer.
        case delayed(seconds: Double, status: Int, body: [UInt8])
        /// Announce `declared` body bytes, send `sent` of them, then close (a broken response).
        case partial(status: Int, declared: Int, sent: Int)
        /// Send these bytes as the whole response (for bytes a String cannot carry, e.g. obs-text).
        case raw([UInt8])
        /// Send each part, pausing `gapSeconds` between parts, then end the connection as told.
        case sequence([[UInt8]], gapSeconds: Double, ending: Ending)
    }

    /// How a `sequence` response leaves the connection.
    public enum Ending: Sendable {
        /// Keep it open for the next request.
        case keepOpen
        /// An orderly close (FIN).
        case close
        /// A reset (RST: SO_LINGER with a zero timeout, then close).
        case reset
    }

    public struct Request: Sendable {
        public var head: String
        public var body: [UInt8]
        public var bodyCount = 0
        public var method: String { String(head.prefix { $0 != " " }) }
        public var target: String { head.split(separator: " ", maxSplits: 2).dropFirst().first.map(String.init) ?? "" }
        /// Header values by name (case-insensitive), in order.
        public func values(_ name: String) -> [String] {
            head.components(separatedBy: "\r\n").dropFirst().compactMap { line in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                guard line[..<colon].lowercased() == name.lowercased() else { return nil }
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
    }

    public typealias Responder = @Sendable (Request) -> Behaviour

    public let port: UInt16
    /// Requests parsed so far whose method is `method`.
    public func count(method: String) -> Int { requests.filter { $0.method == method }.count }
    private let listenFD: Int32
    private let state: Mutex<(requests: [Request], raw: [UInt8], connections: Int, behaviour: Responder)>
    private let stopped = Atomic<Bool>(false)
    private let earlyAnswer = Mutex<(@Sendable (Request) -> [UInt8]?)?>(nil)
    private let connectionHandler = Mutex<(@Sendable (Int32) -> Void)?>(nil)
    /// Seconds to wait after a request head before reading its body (a slow reader).
    public var bodyReadDelay: Double = 0
    /// Records request bodies; off for multi-GiB uploads (only counted then).
    public let recordBodies: Bool

    public init(port requestedPort: UInt16 = 0, recordBodies: Bool = true, behaviour: @escaping Responder = { _ in .respond(status: 200, headers: [], body: Array("ok".utf8)) }) {
        self.recordBodies = recordBodies
        state = Mutex(([], [], 0, behaviour))
        let listenFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listenFD = listenFD
        var one: Int32 = 1
        setsockopt(listenFD, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = requestedPort.bigEndian
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(listenFD, 512)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listenFD, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    public func setBehaviour(_ behaviour: @escaping Responder) {
        state.withLock { $0.behaviour = behaviour }
    }

    /// Answers a request as soon as its head has arrived, before its body (an upload refused
    /// early, RFC 9110 §15 allows it): `answer` returns the bytes to send then, or nil for the
    /// usual answer after the body. The body that follows is read and discarded until the
    /// connection closes.
    public func setEarlyAnswer(_ answer: @escaping @Sendable (Request) -> [UInt8]?) {
        earlyAnswer.withLock { $0 = answer }
    }

    /// Hands each new connection's descriptor to `handler` instead of serving it: an upstream
    /// whose timing a test scripts byte by byte. The descriptor is closed when it returns.
    public func setConnectionHandler(_ handler: @escaping @Sendable (Int32) -> Void) {
        connectionHandler.withLock { $0 = handler }
    }

    public var requests: [Request] { state.withLock { $0.requests } }
    public var rawBytes: [UInt8] { state.withLock { $0.raw } }
    public var rawText: String { String(decoding: rawBytes, as: UTF8.self) }
    public var connectionCount: Int { state.withLock { $0.connections } }

    public func stop() {
        // The accept thread closes the socket when it sees the flag: closing it here could
        // let that thread's next accept() run on a number another test has reopened.
        // Shut down before raising the flag: once the flag is up the accept thread may close the
        // socket, and its number could belong to another test by the time this call ran.
        shutdown(listenFD, Int32(SHUT_RDWR))
        stopped.store(true, ordering: .releasing)
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 { if stopped.load(ordering: .acquiring) { break } else { continue } }
            state.withLock { $0.connections += 1 }
            let thread = Thread { [self] in serve(fd) }
            thread.start()
        }
        close(listenFD)
    }

    private func record(_ bytes: ArraySlice<UInt8>) {
        if recordBodies { state.withLock { $0.raw.append(contentsOf: bytes) } }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        if let handler = connectionHandler.withLock({ $0 }) { return handler(fd) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { return false }
            record(chunk[0..<n])
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        while true {
            var headEnd = Self.find([13, 10, 13, 10], in: buffer)
            while headEnd == nil {
                guard fill() else { return }
                headEnd = Self.find([13, 10, 13, 10], in: buffer)
            }
            let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
            buffer.removeFirst(headEnd! + 4)
            var request = Request(head: head, body: [])
            if let early = earlyAnswer.withLock({ $0 })?(request) {
                state.withLock { $0.requests.append(request) }
                guard respond(fd, .raw(early), method: request.method) else { return }
                buffer.removeAll()
                while fill() { buffer.removeAll() }
                return
            }
            if bodyReadDelay > 0 { usleep(UInt32(bodyReadDelay * 1_000_000)) }
            if let length = request.values("content-length").first.flatMap({ Int($0) }) {
                var remaining = length
                while remaining > 0 {
                    if buffer.isEmpty { guard fill() else { return } }
                    let take = min(remaining, buffer.count)
                    if recordBodies { request.body.append(contentsOf: buffer[0..<take]) }
                    request.bodyCount += take
                    buffer.removeFirst(take)
                    remaining -= take
                }
            } else if request.values("transfer-encoding").first?.lowercased() == "chunked" {
                while true {
                    var lineEnd = Self.find([13, 10], in: buffer)
                    while lineEnd == nil { guard fill() else { return }; lineEnd = Self.find([13, 10], in: buffer) }
                    let sizeText = String(decoding: buffer[0..<lineEnd!], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
                    guard let size = Int(sizeText, radix: 16) else { return }
                    buffer.removeFirst(lineEnd! + 2)
                    if size == 0 {
                        // Trailer section up to the empty line.
                        while true {
                            var end = Self.find([13, 10], in: buffer)
                            while end == nil { guard fill() else { return }; end = Self.find([13, 10], in: buffer) }
                            buffer.removeFirst(end! + 2)
                            if end == 0 { break }
                        }
                        break
                    }
                    while buffer.count < size + 2 { guard fill() else { return } }
                    if recordBodies { request.body.append(contentsOf: buffer[0..<size]) }
                    request.bodyCount += size
                    buffer.removeFirst(size + 2)
                }
            }
            let behaviour = state.withLock { state -> Responder in
                state.requests.append(request)
                return state.behaviour
            }(request)
            if !respond(fd, behaviour, method: request.method) { return }
        }
    }

    /// Writes all of `bytes` to a blocking socket; false once the peer is gone.
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    private func respond(_ fd: Int32, _ behaviour: Behaviour, method: String) -> Bool {
        func send(_ bytes: [UInt8]) -> Bool { Self.sendAll(fd, bytes) }
        let noBody = method == "HEAD"
        switch behaviour {
        case .respond(let status, let headers, let body):
            var head = "HTTP/1.1 \(status) X\r\nContent-Length: \(body.count)\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            head += "\r\n"
            return send(Array(head.utf8) + (noBody ? [] : body))
        case .raw(let bytes):
            return send(bytes)
        case .sequence(let parts, let gap, let ending):
            for (index, part) in parts.enumerated() {
                if index > 0 && gap > 0 { usleep(UInt32(gap * 1_000_000)) }
                guard send(part) else { return false }
            }
            switch ending {
            case .keepOpen:
                return true
            case .close:
                return false
            case .reset:
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                return false
            }
        case .chunked(let status, let pieces):
            var bytes = Array("HTTP/1.1 \(status) X\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            for piece in pieces where !piece.isEmpty {
                bytes += Array(String(piece.count, radix: 16).utf8) + [13, 10] + piece + [13, 10]
            }
            bytes += Array("0\r\n\r\n".utf8)
            return send(bytes)
        case .untilClose(let status, let body):
            _ = send(Array("HTTP/1.1 \(status) X\r\nConnection: close\r\n\r\n".utf8) + body)
            return false
        case .silent:
            var scratch = [UInt8](repeating: 0, count: 1024)
            while read(fd, &scratch, 1024) > 0 {}
            return false
        case .closeImmediately:
            return false
        case .download(let total):
            guard send(Array("HTTP/1.1 200 OK\r\nContent-Length: \(total)\r\n\r\n".utf8)) else { return false }
            let block = [UInt8](repeating: 0x61, count: 256 * 1024)
            var remaining = total
            while remaining > 0 {
                let n = min(remaining, block.count)
                let sent = block.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return false }
                remaining -= sent
            }
            return true
        case .partial(let status, let declared, let sent):
            _ = send(Array("HTTP/1.1 \(status) X\r\nContent-Length: \(declared)\r\n\r\n".utf8) + [UInt8](repeating: 0x7A, count: sent))
            return false
        case .delayed(let seconds, let status, let body):
            usleep(UInt32(seconds * 1_000_000))
            return send(Array("HTTP/1.1 \(status) X\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        }
    }

    public static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0] {
                var match = true
                for j in 1..<needle.count where haystack[i + j] != needle[j] { match = false; break }
                if match { return i }
            }
            i += 1
        }
        return nil
    }
}

extension TestUpstream {
    /// CLOCK_MONOTONIC in milliseconds, for tests that time what a peer saw.
    public static func nowMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    /// Reads a request head off `fd` (a connection handler's first step); false if the
    /// connection ended before it was complete.
    public static func readHead(_ fd: Int32) -> Bool {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while find([13, 10, 13, 10], in: buffer) == nil {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { return false }
            buffer += chunk[0..<n]
        }
        return true
    }

    /// Reads until EOF or an error; returns the bytes and the errno (0 for an orderly EOF).
    public static func readToEnd(_ fd: Int32) -> (bytes: [UInt8], error: Int32) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n == 0 { return (bytes, 0) }
            if n < 0 { return (bytes, errno) }
            bytes += chunk[0..<n]
        }
    }

    /// Body bytes equal to `byte` (the first head skipped: "Connection: close" holds two 'c's).
    public static func count(_ byte: UInt8, inBodyOf bytes: [UInt8]) -> Int {
        let start = find([13, 10, 13, 10], in: bytes).map { $0 + 4 } ?? 0
        return bytes[start...].reduce(0) { $0 + ($1 == byte ? 1 : 0) }
    }

    /// How a read ended, for messages: an orderly EOF or the error.
    public static func endText(_ error: Int32) -> String { error == 0 ? "orderly EOF" : String(cString: strerror(error)) }

    /// Reads and discards what arrives on `fd` for `millis`, or until it ends: an upstream that
    /// keeps taking an upload it does not use.
    public static func discardInput(_ fd: Int32, forMillis millis: Int) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let end = nowMillis() + millis
        while nowMillis() < end {
            if poll(&p, 1, 100) == 1 { if read(fd, &chunk, chunk.count) <= 0 { return } }
        }
    }
}
