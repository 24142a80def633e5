import Foundation
import Glibc

/// A blocking loopback client that sends raw bytes and reads raw responses, so tests control
/// every byte on the wire (malformed requests, pipelining, slow senders).
public final class TestClient {
    public let fd: Int32
    public private(set) var buffer: [UInt8] = []

    public struct Response: Sendable {
        public var status: Int
        public var head: String
        public var body: [UInt8]
        /// The head exactly as received (`head` is a lossy text decoding of it).
        public var headBytes: [UInt8] = []
        public var bodyText: String { String(decoding: body, as: UTF8.self) }
        public func values(_ name: String) -> [String] {
            head.components(separatedBy: "\r\n").dropFirst().compactMap { line in
                guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == name.lowercased() else { return nil }
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        public func value(_ name: String) -> String? { values(name).first }

        /// The field lines of `headBytes` (the start line skipped) as the exact bytes
        /// received: name, and value with its surrounding OWS trimmed.
        public static func fieldLines(_ headBytes: [UInt8]) -> [(name: [UInt8], value: [UInt8])] {
            var lines: [[UInt8]] = []
            var start = 0
            var i = 0
            while i + 1 < headBytes.count {
                if headBytes[i] == 13 && headBytes[i + 1] == 10 {
                    lines.append(Array(headBytes[start..<i]))
                    i += 2
                    start = i
                } else {
                    i += 1
                }
            }
            return lines.dropFirst().compactMap { line in
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return nil }
                var value = Array(line[(colon + 1)...])
                while let f = value.first, f == 32 || f == 9 { value.removeFirst() }
                while let l = value.last, l == 32 || l == 9 { value.removeLast() }
                return (Array(line[..<colon]), value)
            }
        }
    }

    public enum ClientError: Error, Sendable { case connectFailed(Int32), closed, timeout, malformed(String) }

    /// `receiveBuffer` sets SO_RCVBUF before connecting, when the window is negotiated.
    ///
    /// `fd` is assigned only once the connect succeeded: a class whose stored properties are
    /// all set runs its `deinit` even when its initialiser then throws, so closing a refused
    /// socket here and again in `deinit` would close whatever another thread opened under the
    /// same number in between (seen as EBADF reading an unrelated file).
    public init(port: UInt16, timeoutSeconds: Int = 10, receiveBuffer: Int32? = nil) throws {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if socketFD < 0 { throw ClientError.connectFailed(errno) }
        if var size = receiveBuffer {
            setsockopt(socketFD, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { let code = errno; close(socketFD); throw ClientError.connectFailed(code) }
        fd = socketFD
        setTimeout(seconds: timeoutSeconds)
    }

    public func setTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Makes the close (when this client is released) a reset (SO_LINGER 0) instead of a FIN.
    public func resetOnClose() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        guard TestUpstream.sendAll(fd, bytes) else { throw ClientError.closed }
    }

    /// Reads more bytes into the buffer; false on EOF.
    @discardableResult
    public func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &chunk, chunk.count)
        if n < 0 { throw errno == EAGAIN ? ClientError.timeout : ClientError.closed }
        if n == 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// True if the server closed the connection (EOF) within the timeout with no more data.
    public func isClosedByPeer() -> Bool {
        do { return try !fill() && buffer.isEmpty } catch ClientError.closed { return true } catch { return false }
    }

    /// Reads one complete response (Content-Length, chunked, or until close). `discardBody`
    /// counts body bytes without keeping them (large downloads).
    public func readResponse(requestMethod: String = "GET", discardBody: Bool = false, bodyCount: UnsafeMutablePointer<Int>? = nil) throws -> Response {
        var headEnd = TestUpstream.find([13, 10, 13, 10], in: buffer)
        while headEnd == nil {
            guard try fill() else { throw ClientError.closed }
            headEnd = TestUpstream.find([13, 10, 13, 10], in: buffer)
        }
        let headBytes = Array(buffer[0..<headEnd!] + [13, 10])
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        let parts = head.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw ClientError.malformed(head) }
        var response = Response(status: status, head: head, body: [])
        response.headBytes = headBytes
        if status < 200 { return try readResponse(requestMethod: requestMethod, discardBody: discardBody, bodyCount: bodyCount) }
        if requestMethod == "HEAD" || status == 204 || status == 304 { return response }
        var count = 0
        if let length = response.value("content-length").flatMap({ Int($0) }) {
            var remaining = length
            while remaining > 0 {
                if buffer.isEmpty { guard try fill() else { throw ClientError.closed } }
                let take = min(remaining, buffer.count)
                if !discardBody { response.body.append(contentsOf: buffer[0..<take]) }
                count += take
                buffer.removeFirst(take)
                remaining -= take
            }
        } else if response.value("transfer-encoding")?.lowercased() == "chunked" {
            while true {
                var lineEnd = TestUpstream.find([13, 10], in: buffer)
                while lineEnd == nil { guard try fill() else { throw ClientError.closed }; lineEnd = TestUpstream.find([13, 10], in: buffer) }
                guard let size = Int(String(decoding: buffer[0..<lineEnd!], as: UTF8.self), radix: 16) else { throw ClientError.malformed("chunk size") }
                buffer.removeFirst(lineEnd! + 2)
                if size == 0 {
                    while buffer.count < 2 { guard try fill() else { throw ClientError.closed } }
                    buffer.removeFirst(2)
                    break
                }
                while buffer.count < size + 2 { guard try fill() else { throw ClientError.closed } }
                if !discardBody { response.body.append(contentsOf: buffer[0..<size]) }
                count += size
                buffer.removeFirst(size + 2)
            }
        } else {
            while try fill() {}
            count = buffer.count
            if !discardBody { response.body = buffer }
            buffer.removeAll()
        }
        bodyCount?.pointee = count
        return response
    }
}
