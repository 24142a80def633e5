import Foundation
import Glibc

/// A fault-injecting TCP relay that tests put between the proxy and a real redis-server, so
/// Redis failures happen on real sockets (in the manner of toxiproxy) instead of in a mock.
/// Each relayed connection is served by one thread that polls both sockets and a wake socket;
/// that thread is the only one that ever closes the connection's descriptors, so a fault
/// injected from the test thread can never hit a descriptor number the kernel has reused.
public final class FaultRelay: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public let port: UInt16
    /// The threads retain the core, not the relay, so dropping the relay runs deinit (and stop()).
    private let core: Core

    /// Listens on 127.0.0.1 (ephemeral port) and relays every accepted connection to 127.0.0.1:targetPort.
    public init(targetPort: UInt16) throws {
        core = try Core(targetPort: targetPort)
        port = core.port
    }

    deinit { core.stop() }

    /// "redis://127.0.0.1:<port>/0"
    public var url: String { "redis://127.0.0.1:\(port)/0" }

    /// Resets every relayed connection now (SO_LINGER 0 then close, on both the client side and
    /// the server side), discarding any withheld bytes. Returns once the resets have happened.
    public func cutAll() { core.cutAll() }

    /// While true, new connections are accepted and reset at once (a blackout: the client sees
    /// ECONNRESET/EOF, nothing reaches the server).
    public var refuseNew: Bool {
        get { core.locked { core.refuseNew } }
        set { core.locked { core.refuseNew = newValue } }
    }

    /// While true, bytes from the server to the client are held back (buffered, in order) instead
    /// of forwarded; setting it back to false delivers what was held (unless cutAll() discarded
    /// it). Client-to-server bytes keep flowing.
    public var withholdReplies: Bool {
        get { core.locked { core.withhold } }
        set { core.locked { core.withhold = newValue; if !newValue { core.links.values.forEach(core.wake) } } }
    }

    /// Arms a one-shot fault: after `n` more complete RESP commands have been forwarded
    /// client→server on any connection, that connection is reset (client and server side) right
    /// after forwarding the n-th command, so the command reached Redis but its reply never reaches
    /// the client. Bytes after that command in the same read are dropped. `n <= 0` disarms.
    public func resetAfterCommands(_ n: Int) { core.locked { core.armed = n > 0 ? n : nil } }

    /// Complete RESP commands forwarded client→server since start (all connections). Empty
    /// inline lines and `*0`/`*-1` headers are not counted, because Redis ignores them too.
    public var commandsRelayed: Int { core.locked { core.commands } }

    /// Connections accepted since start (including refused ones).
    public var connectionsAccepted: Int { core.locked { core.accepted } }

    /// Stops listening and resets every connection; idempotent; also called from deinit. Returns
    /// once every relay thread has exited (or after five seconds, so a bug cannot hang a test run).
    public func stop() { core.stop() }
}

/// The state shared by the relay's threads, guarded by `condition`.
private final class Core: @unchecked Sendable {
    let port: UInt16
    let targetPort: UInt16
    private let listenFD: Int32
    private let condition = NSCondition()
    var refuseNew = false
    var withhold = false
    var armed: Int?
    var commands = 0
    var accepted = 0
    var links: [ObjectIdentifier: Link] = [:]
    private var stopped = false
    private var threads = 0

    init(targetPort: UInt16) throws {
        self.targetPort = targetPort
        // CLOEXEC everywhere: a redis-server spawned by another test must not inherit a relayed
        // socket, or closing (and resetting) it here would not actually end the connection.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FaultRelay.Failure(description: "socket: errno \(errno)") }
        var address = Core.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard bound == 0, listen(fd, 128) == 0 else { let code = errno; close(fd); throw FaultRelay.Failure(description: "bind/listen: errno \(code)") }
        listenFD = fd
        port = UInt16(bigEndian: address.sin_port)
        threads = 1
        Thread { [self] in acceptLoop() }.start()
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return address
    }

    func locked<T>(_ body: () -> T) -> T { condition.lock(); defer { condition.unlock() }; return body() }

    /// Pokes a link's thread out of poll(2). Caller holds the lock, which is what makes writing
    /// to the wake socket safe: the link thread closes it only under the lock, after `finished`.
    func wake(_ link: Link) {
        guard !link.finished else { return }
        var byte: UInt8 = 1
        _ = send(link.wakeWrite, &byte, 1, Int32(MSG_NOSIGNAL))
    }

    /// Marks the links cut, wakes them and waits (lock held) until their threads have reset them.
    private func cutAndWait(_ targets: [Link], deadline: Date) {
        for link in targets { link.cut = true; wake(link) }
        while targets.contains(where: { !$0.finished }), condition.wait(until: deadline) {}
    }

    func cutAll() { locked { cutAndWait(Array(links.values), deadline: Date(timeIntervalSinceNow: 5)) } }

    func stop() {
        locked {
            // shutdown() wakes the blocked accept(2) and makes the kernel refuse new connections;
            // the accept thread itself closes the descriptor, so it is never used after close.
            if !stopped { stopped = true; shutdown(listenFD, Int32(SHUT_RDWR)) }
            let deadline = Date(timeIntervalSinceNow: 5)
            cutAndWait(Array(links.values), deadline: deadline)
            while threads > 0, condition.wait(until: deadline) {}
        }
    }

    /// Resets a socket: with a zero linger, close(2) sends RST and drops unsent data.
    static func reset(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            let code = errno
            condition.lock()
            if stopped { condition.unlock(); if fd >= 0 { Core.reset(fd) }; break }
            if fd < 0 { condition.unlock(); if code != EINTR { usleep(1000) }; continue }
            accepted += 1
            var pair: [Int32] = [-1, -1]
            let kind = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
            if refuseNew || socketpair(AF_UNIX, kind, 0, &pair) != 0 { condition.unlock(); Core.reset(fd); continue }
            let link = Link(wakeRead: pair[0], wakeWrite: pair[1])
            links[ObjectIdentifier(link)] = link
            threads += 1
            condition.unlock()
            Thread { [self] in serve(link, client: fd) }.start()
        }
        close(listenFD)
        locked { threads -= 1; condition.broadcast() }
    }

    private func serve(_ link: Link, client: Int32) {
        defer {
            locked {
                link.finished = true
                close(link.wakeRead); close(link.wakeWrite)
                links[ObjectIdentifier(link)] = nil
                threads -= 1; condition.broadcast()
            }
        }
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = Core.loopback(port: targetPort)
        let connected = server >= 0 && withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        guard connected else {
            // Redis is down: the client sees a reset, as it would from a dead server.
            if server >= 0 { close(server) }
            Core.reset(client)
            return
        }
        var one: Int32 = 1
        for fd in [client, server] {
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        switch relay(link, client: client, server: server) {
        case .orderly:
            close(client); close(server)
        case .armedCommandSent:
            // Wait (up to a second) until Redis has acknowledged every byte and answered
            // something. Resetting at once lost the command in testing: redis-server in
            // protected mode rejects, unexecuted, a connection that is already reset when it
            // calls accept(2) (getpeername fails, so the peer is not "local"). And a zero-linger
            // close discards whatever our kernel has not sent yet. Waiting for an answer also
            // means the command has normally run before the client sees the reset.
            var queued: Int32 = 0
            var answer = pollfd(fd: server, events: Int16(POLLIN), revents: 0)
            for _ in 0..<1000 {
                if locked({ link.cut }) || ioctl(server, UInt(TIOCOUTQ), &queued) != 0 { break }
                if queued == 0 && poll(&answer, 1, 0) != 0 { break }
                usleep(1000)
            }
            fallthrough
        case .fault:
            Core.reset(client); Core.reset(server)
        }
    }

    private enum Outcome { case orderly, fault, armedCommandSent }

    /// Moves bytes both ways until the connection ends in order (both sides sent EOF and all
    /// was delivered), must be reset, or has sent the command resetAfterCommands armed. The
    /// sockets are non-blocking, so the thread only blocks in poll(2), where wakes reach it.
    private func relay(_ link: Link, client: Int32, server: Int32) -> Outcome {
        let limit = 1 << 20
        var toServer: [UInt8] = [], toClient: [UInt8] = []
        var clientEOF = false, serverEOF = false, serverShut = false, clientShut = false
        var resetPending = false
        var scanner = CommandScanner()
        var chunk = [UInt8](repeating: 0, count: 65536)
        func again() -> Bool { errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
        func flush(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
            let n = buffer.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { buffer.removeFirst(n) }
            return n > 0 || again()
        }
        while true {
            let (cut, withhold) = locked { (link.cut, self.withhold) }
            if cut { return .fault }
            if resetPending && toServer.isEmpty { return .armedCommandSent }
            // An EOF from one peer becomes a half-close towards the other once its bytes are out.
            if clientEOF && toServer.isEmpty && !serverShut { shutdown(server, Int32(SHUT_WR)); serverShut = true }
            if serverEOF && toClient.isEmpty && !clientShut { shutdown(client, Int32(SHUT_WR)); clientShut = true }
            if serverShut && clientShut { return .orderly }
            var clientEvents: Int32 = 0, serverEvents: Int32 = 0
            if !clientEOF && !resetPending && toServer.count < limit { clientEvents |= POLLIN }
            if !withhold && !toClient.isEmpty { clientEvents |= POLLOUT }
            if !serverEOF && toClient.count < limit { serverEvents |= POLLIN }
            if !toServer.isEmpty { serverEvents |= POLLOUT }
            // A negative fd is ignored by poll(2), so an idle side cannot spin on POLLHUP/POLLERR.
            var fds = [pollfd(fd: clientEvents != 0 ? client : -1, events: Int16(clientEvents), revents: 0),
                       pollfd(fd: serverEvents != 0 ? server : -1, events: Int16(serverEvents), revents: 0),
                       pollfd(fd: link.wakeRead, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 3, -1) < 0 { if errno == EINTR { continue } else { return .fault } }
            if fds[2].revents != 0 { while recv(link.wakeRead, &chunk, chunk.count, 0) > 0 {} }
            let ready = Int16(POLLHUP | POLLERR)
            if clientEvents & POLLIN != 0, fds[0].revents & (Int16(POLLIN) | ready) != 0 {
                let n = recv(client, &chunk, chunk.count, 0)
                if n == 0 { clientEOF = true } else if n < 0 { if !again() { return .fault } } else {
                    var forward = n
                    for end in scanner.scan(chunk[0..<n]) {
                        guard countCommand() else { continue }
                        // The armed command: forward through its last byte, drop the rest, reset.
                        forward = end
                        resetPending = true
                        break
                    }
                    toServer.append(contentsOf: chunk[0..<forward])
                }
            }
            if serverEvents & POLLIN != 0, fds[1].revents & (Int16(POLLIN) | ready) != 0 {
                let n = recv(server, &chunk, chunk.count, 0)
                if n == 0 { serverEOF = true } else if n < 0 { if !again() { return .fault } } else { toClient.append(contentsOf: chunk[0..<n]) }
            }
            if serverEvents & POLLOUT != 0, fds[1].revents & (Int16(POLLOUT) | ready) != 0, !flush(server, &toServer) { return .fault }
            // Checked again right before sending, so no reply slips out after withholdReplies = true returned.
            if clientEvents & POLLOUT != 0, fds[0].revents & (Int16(POLLOUT) | ready) != 0, !locked({ self.withhold }), !flush(client, &toClient) { return .fault }
        }
    }

    /// Counts one forwarded command; true if it is the one an armed resetAfterCommands waits for.
    private func countCommand() -> Bool {
        locked {
            commands += 1
            guard let remaining = armed else { return false }
            armed = remaining > 1 ? remaining - 1 : nil
            return remaining == 1
        }
    }
}

/// One relayed connection, as seen by the threads that may fault it. Guarded by Core's lock.
private final class Link: @unchecked Sendable {
    let wakeRead: Int32, wakeWrite: Int32
    var cut = false
    var finished = false
    init(wakeRead: Int32, wakeWrite: Int32) { self.wakeRead = wakeRead; self.wakeWrite = wakeWrite }
}

/// Finds where complete commands end in a client→server byte stream fed in arbitrary pieces:
/// RESP arrays of bulk strings (`*<n>\r\n` then n times `$<len>\r\n<bytes>\r\n`) or inline
/// commands (a line not starting with '*'). Malformed input only throws the count off.
struct CommandScanner {
    private enum State { case start, inline, arrayHeader, bulkHeader, bulkBody }
    private var state = State.start
    private var line: [UInt8] = []
    private var bulksLeft = 0
    private var bodyLeft = 0

    /// Returns, for each command completed inside `bytes`, the offset just past its last byte,
    /// relative to `bytes.startIndex`.
    mutating func scan(_ bytes: ArraySlice<UInt8>) -> [Int] {
        var ends: [Int] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let byte = bytes[i]
            switch state {
            case .start:
                // Blank lines between commands are ignored, as Redis ignores them.
                if byte == UInt8(ascii: "*") { state = .arrayHeader; line = [] } else if byte != 13 && byte != 10 { state = .inline }
                i += 1
            case .inline:
                i += 1
                if byte == 10 { ends.append(i - bytes.startIndex); state = .start }
            case .arrayHeader, .bulkHeader:
                i += 1
                if byte != 10 { if line.count < 24 && byte != 13 && byte != UInt8(ascii: "$") { line.append(byte) }; continue }
                let value = Int(String(decoding: line, as: UTF8.self)) ?? -1
                line = []
                if state == .arrayHeader {
                    // `*0` and `*-1` are skipped by Redis without a reply, so they are not commands.
                    if value > 0 { bulksLeft = value; state = .bulkHeader } else { state = .start }
                } else {
                    bodyLeft = value + 2
                    state = value >= 0 ? .bulkBody : .start
                }
            case .bulkBody:
                let take = min(bodyLeft, bytes.endIndex - i)
                i += take
                bodyLeft -= take
                if bodyLeft == 0 {
                    bulksLeft -= 1
                    if bulksLeft == 0 { ends.append(i - bytes.startIndex); state = .start } else { state = .bulkHeader }
                }
            }
        }
        return ends
    }
}
