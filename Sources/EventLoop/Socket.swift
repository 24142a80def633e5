import CSystemShims
import Glibc

/// Thin, non-blocking socket operations on raw file descriptors. Every call goes through
/// `syscallRetrying`, so `EINTR` never leaks out and would-block is a value.
public enum Socket {
    /// An IPv4 or IPv6 socket address resolved once (never on a loop thread per request).
    public struct Address: Sendable, CustomStringConvertible {
        var storage: sockaddr_storage
        var length: socklen_t
        public let description: String
        /// The resolved IP as text (what clients that take IP literals, like hiredis, need).
        public let ipText: String

        /// Resolves `host` (a literal or a name) with getaddrinfo; call at startup only.
        public static func resolve(host: String, port: UInt16) throws(IOError) -> Address {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            let rc = getaddrinfo(bare, String(port), &hints, &result)
            guard rc == 0, let first = result else {
                throw IOError(errno: EHOSTUNREACH, operation: "resolve \(host): \(String(cString: gai_strerror(rc)))")
            }
            defer { freeaddrinfo(result) }
            // Prefer IPv4 when a name resolves to both, like most proxies' default.
            var chosen = first
            var cursor: UnsafeMutablePointer<addrinfo>? = first
            while let entry = cursor {
                if entry.pointee.ai_family == AF_INET { chosen = entry; break }
                cursor = entry.pointee.ai_next
            }
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: chosen.pointee.ai_addr, count: Int(chosen.pointee.ai_addrlen)))
            }
            let text = chosen.pointee.ai_family == AF_INET6 ? "[\(bare)]:\(port)" : "\(bare):\(port)"
            return Address(storage: storage, length: chosen.pointee.ai_addrlen, description: text, ipText: Socket.peerText(&storage))
        }

        public var family: Int32 { Int32(storage.ss_family) }

        /// The address as the socket calls take it (for a blocking client's `connect`).
        public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
            withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
        }

        /// The port, from the stored address (network order at the same offset for v4 and v6).
        public var port: UInt16 {
            withUnsafeBytes(of: storage) { UInt16($0[2]) << 8 | UInt16($0[3]) }
        }
    }

    /// Creates a listening socket. `reusePort` gives each event loop its own accept queue so
    /// the kernel spreads connections across loops (SO_REUSEPORT, Linux ≥ 3.9).
    public static func listen(on address: Address, reusePort: Bool, backlog: Int32 = 1024) throws(IOError) -> Int32 {
        let fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw IOError(errno: errno, operation: "socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        var storage = address.storage
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, address.length) }
        }
        if bound != 0 {
            let code = errno
            Glibc.close(fd)
            throw IOError(errno: code, operation: "bind \(address)")
        }
        if Glibc.listen(fd, backlog) != 0 {
            let code = errno
            Glibc.close(fd)
            throw IOError(errno: code, operation: "listen \(address)")
        }
        return fd
    }

    /// The port a socket is bound to (tests bind port 0 and ask).
    public static func localPort(_ fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return withUnsafeBytes(of: &storage) { raw in
            // sin_port and sin6_port sit at the same offset, in network order.
            UInt16(raw[2]) << 8 | UInt16(raw[3])
        }
    }

    /// Accepts one connection as a non-blocking socket; returns the peer's IP text too.
    public static func accept(_ listener: Int32) throws(IOError) -> IOResult<(fd: Int32, peer: String)> {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try syscallRetrying("accept4") {
            Int(withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    csys_accept4(listener, $0, &length, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
                }
            })
        }
        guard case .processed(let fd) = result else { return .wouldBlock }
        return .processed((Int32(fd), peerText(&storage)))
    }

    static func peerText(_ storage: inout sockaddr_storage) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        if Int32(storage.ss_family) == AF_INET {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count))
                    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                }
            }
        } else if Int32(storage.ss_family) == AF_INET6 {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count))
                    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                }
            }
        }
        return "unknown"
    }

    /// Starts a non-blocking connect. `.processed(fd)` means connected or in progress
    /// (writability reports completion); errors that are known at once are thrown.
    public static func connect(to address: Address) throws(IOError) -> Int32 {
        let fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw IOError(errno: errno, operation: "socket") }
        setNoDelay(fd)
        var storage = address.storage
        while true {
            let rc = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
            }
            if rc == 0 || errno == EINPROGRESS { return fd }
            if errno == EINTR { continue }
            let code = errno
            Glibc.close(fd)
            throw IOError(errno: code, operation: "connect \(address)")
        }
    }

    /// The pending error of a socket after a non-blocking connect (0 when connected).
    public static func pendingError(_ fd: Int32) -> Int32 {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
        return code
    }

    /// Disables Nagle: requests and responses are written whole, and delaying them only adds latency.
    public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscallRetrying("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Writes with MSG_NOSIGNAL so a closed peer is EPIPE, never SIGPIPE.
    @inline(__always)
    public static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscallRetrying("send") { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reports whether a connection that expects no input (an idle pooled upstream connection,
    /// an admin connection waiting for its answer) is still usable: no bytes pending, no EOF,
    /// no error. A byte from an idle upstream is unsolicited (a 408 or garbage), so it is
    /// unusable too.
    public static func isIdleConnectionAlive(_ fd: Int32) -> Bool {
        let rc = peekByte(fd)
        if rc < 0 { return errno == EAGAIN || errno == EWOULDBLOCK }
        return false
    }

    /// Input waits unread on `fd`: a byte, or an orderly EOF (not an error, not nothing yet).
    public static func hasInputWaiting(_ fd: Int32) -> Bool { peekByte(fd) >= 0 }

    /// At least one byte waits unread on `fd` (an EOF alone does not count).
    public static func hasBytesWaiting(_ fd: Int32) -> Bool { peekByte(fd) > 0 }

    /// Bytes written to `fd` that the peer has not acknowledged (-1 on error): while any
    /// remain, a reset would discard them before the peer has them.
    public static func unacknowledgedBytes(_ fd: Int32) -> Int { Int(csys_unacknowledged_bytes(fd)) }

    /// Makes the coming `close` send a reset (SO_LINGER with a zero timeout) instead of an
    /// orderly FIN, discarding what is unsent.
    public static func resetOnClose(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    /// `recv` of one byte left in place, without blocking: 1 a byte waits, 0 EOF, -1 with
    /// `errno` (EAGAIN: nothing yet).
    private static func peekByte(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
    }

    public static func shutdownWrite(_ fd: Int32) { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    public static func close(_ fd: Int32) { Glibc.close(fd) }
}
