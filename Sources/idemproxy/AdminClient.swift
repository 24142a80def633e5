import Config
import EventLoop
import Foundation
import Glibc

/// A blocking HTTP/1.1 client for one request to the proxy's own admin endpoint (used by
/// `idemproxy records` with the memory store). One request per connection, `Connection: close`,
/// the body read to the end of the connection; a few seconds' timeout on every step.
enum AdminClient {
    struct Response {
        var status: Int
        var body: [UInt8]
        var bodyText: String { String(decoding: body, as: UTF8.self) }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// `listen` is where the admin endpoint listens; a wildcard address is reached on loopback.
    static func request(method: String, path: String, listen: SocketAddressSpec, token: String, timeoutSeconds: Int = 5) throws -> Response {
        var host = listen.host
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "0.0.0.0" || host.isEmpty { host = "127.0.0.1" }
        if host == "::" { host = "::1" }
        // Resolved as the proxy resolved it to listen (IPv4 first for a name with both), so a
        // name like `localhost`, listed as `::1` first on some hosts, reaches the same socket.
        let address: Socket.Address
        do {
            address = try Socket.Address.resolve(host: host, port: listen.port)
        } catch {
            throw Failure(description: "cannot resolve \(host): \(error)")
        }
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: String(cString: strerror(errno))) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard address.withSockaddr({ connect(fd, $0, $1) }) == 0 else {
            throw Failure(description: String(cString: strerror(errno)))
        }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(listen)\r\nConnection: close\r\n"
        if !token.isEmpty { request += "Authorization: Bearer \(token)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else { throw Failure(description: "receive: \(String(cString: strerror(errno)))") }
            received.append(contentsOf: chunk[0..<n])
        }
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = received.indices.first(where: { received[$0...].starts(with: separator) }) else {
            throw Failure(description: "incomplete response")
        }
        let statusLine = String(decoding: received[..<headEnd], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw Failure(description: "not an HTTP response: \(statusLine)")
        }
        return Response(status: status, body: Array(received[(headEnd + 4)...]))
    }
}
